// Before a model is downloaded or loaded: what it needs (download, weight memory, KV cache, GPU
// buffer sizes) against what this device has, in sentences the page shows as they are. Before a
// download the numbers come from the catalog's declared sizes and shape; once the headers are open,
// from the tensor table (exact: src/formats/load.ts's weightBytes).

import type { GpuCaps } from '../../engine/gpu/device.ts';
import { weightBytes as arenaBytes } from '../../formats/load.ts';
import { loadedByteLength } from '../../formats/llama2c.ts';
import type { ModelFile } from '../../formats/model.ts';
import { formatBytes } from '../../formats/describe.ts';
import type { CatalogEntry, CatalogShape } from './catalog.ts';

/** wasm32 addresses at most 4 GiB: the weight arena's hard limit (src/engine/arena.ts). */
export const WASM_MAX_BYTES = 2 ** 32;
/** Assumed when the browser does not say (navigator.deviceMemory is Chromium-only). */
export const DEFAULT_MEMORY_BYTES = 4 * 2 ** 30;
/** The share of the device's memory a model may take: the browser, the page and the OS need the rest. */
export const MEMORY_SHARE = 0.5;
/** Context the KV-cache estimate assumes (or the model's own, when shorter). */
export const DEFAULT_CONTEXT_TOKENS = 2048;
/** Room for activations, the tokenizer and the engine's own code. */
const OVERHEAD_BYTES = 64 << 20;

export interface PreflightCaps {
  /** The WebGPU adapter's limits, when there is one (src/engine/gpu/device.ts). */
  gpu?: GpuCaps;
  /** The device's memory; default navigator.deviceMemory GiB, else 4 GiB. */
  memoryBytes?: number;
}

/** The numbers a preflight needs, from a catalog entry or from opened headers. */
export interface PreflightSizes {
  /** Bytes still to download (0 when cached or local). */
  downloadBytes: number;
  /** Bytes the weight arena will hold. */
  weightBytes: number;
  shape?: CatalogShape;
  /** The largest tensor and the bytes of one of its rows (GPU bindings split tensors by rows). */
  largest?: { name: string; bytes: number; rowBytes: number };
  /** How many files the download has. */
  files?: number;
}

export interface PreflightReport {
  downloadBytes: number;
  weightBytes: number;
  /** f32 keys and values for 1000 positions, all layers. */
  kvBytesPer1kTokens: number;
  fitsCpu: boolean;
  fitsGpu: boolean;
  /** Plain sentences: what it needs, and why it does not fit when it does not. */
  reasons: string[];
}

/** The device's memory as the browser reports it (navigator.deviceMemory, in GiB, capped at 8). */
export function deviceMemoryBytes(): number {
  const gib = (globalThis.navigator as Navigator & { deviceMemory?: number } | undefined)?.deviceMemory;
  return typeof gib === 'number' && gib > 0 ? gib * 2 ** 30 : DEFAULT_MEMORY_BYTES;
}

/** Parameters of a Llama of this shape (embedding counted once: an estimate for tied or not). */
function parameters(s: CatalogShape): number {
  const dHead = s.dHead ?? s.dModel / s.heads;
  const attn = s.dModel * dHead * (2 * s.heads + 2 * s.kvHeads);
  const ffn = 3 * s.dModel * (s.dFfn ?? 4 * s.dModel);
  return s.vocab * s.dModel + s.layers * (attn + ffn);
}

/** Sizes from a catalog entry's declared files; files in `cachedUrls` need no download. */
export function sizesFromEntry(entry: CatalogEntry, cachedUrls: Iterable<string> = []): PreflightSizes {
  const cached = new Set(cachedUrls);
  const weights = entry.files.filter((f) => f.role === 'model').reduce((a, f) => a + f.size, 0);
  const sizes: PreflightSizes = {
    downloadBytes: entry.files.filter((f) => !cached.has(f.url)).reduce((a, f) => a + f.size, 0),
    weightBytes: weights,
    files: entry.files.filter((f) => !cached.has(f.url)).length,
  };
  if (entry.shape) {
    sizes.shape = entry.shape;
    // without a tensor table: the embedding's share of the weights, by parameter count
    const embedBytes = Math.round(weights * (entry.shape.vocab * entry.shape.dModel) / parameters(entry.shape));
    sizes.largest = { name: 'the token embedding', bytes: embedBytes, rowBytes: Math.ceil(embedBytes / entry.shape.vocab) };
  }
  return sizes;
}

/** Exact sizes from an opened model's tensor table. */
export function sizesFromModel(model: ModelFile): PreflightSizes {
  const c = model.config;
  let largest: PreflightSizes['largest'];
  for (const t of model.tensors) {
    const bytes = loadedByteLength(t);
    const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, d) => a * d, 1) : 1;
    if (!largest || bytes > largest.bytes) largest = { name: t.name, bytes, rowBytes: Math.ceil(bytes / rows) };
  }
  const sizes: PreflightSizes = {
    downloadBytes: 0,
    weightBytes: arenaBytes(model),
    shape: { layers: c.nLayers, dModel: c.dModel, dFfn: c.dFfn, heads: c.nHeads, kvHeads: c.nKvHeads, dHead: c.dHead, vocab: c.vocabSize, ctx: c.nCtx },
  };
  if (largest) sizes.largest = largest;
  return sizes;
}

function isEntry(x: unknown): x is CatalogEntry {
  return typeof x === 'object' && x !== null && Array.isArray((x as CatalogEntry).files) && typeof (x as CatalogEntry).id === 'string';
}
function isModel(x: unknown): x is ModelFile {
  return typeof x === 'object' && x !== null && Array.isArray((x as ModelFile).tensors) && Array.isArray((x as ModelFile).sources);
}

/**
 * What the model needs and whether this device can run it. `fitsCpu` false is a refusal: the
 * reasons say why. `fitsGpu` false means the CPU engine runs it (also said in the reasons).
 */
export function preflight(input: CatalogEntry | ModelFile | PreflightSizes, caps: PreflightCaps = {},
  opts: { cachedUrls?: Iterable<string>; contextTokens?: number } = {}): PreflightReport {
  const s = isEntry(input) ? sizesFromEntry(input, opts.cachedUrls) : isModel(input) ? sizesFromModel(input) : input;
  const memory = caps.memoryBytes ?? deviceMemoryBytes();
  const reasons: string[] = [];
  const dHead = s.shape ? s.shape.dHead ?? s.shape.dModel / s.shape.heads : 0;
  const kvPerToken = s.shape ? 2 * s.shape.layers * s.shape.kvHeads * dHead * 4 : 0;
  const kvBytesPer1kTokens = kvPerToken * 1000;
  const context = Math.min(opts.contextTokens ?? DEFAULT_CONTEXT_TOKENS, s.shape?.ctx ?? Infinity);

  // download
  if (s.downloadBytes > 0) {
    reasons.push(`it downloads ${formatBytes(s.downloadBytes)}${s.files && s.files > 1 ? ` in ${s.files} files` : ''}, once: the browser keeps it for the next time`);
  } else if (isEntry(input)) {
    reasons.push('it is already in the browser\'s cache: nothing to download');
  }

  // CPU: the weights live in one WebAssembly memory; the KV cache and activations beside it
  let fitsCpu = true;
  const need = s.weightBytes + kvPerToken * context + OVERHEAD_BYTES;
  if (s.weightBytes > WASM_MAX_BYTES) {
    fitsCpu = false;
    reasons.push(`this model needs ${formatBytes(s.weightBytes)} of weights; the WebAssembly engine holds at most 4 GiB. Choose a smaller or more strongly quantized model`);
  } else if (need > memory * MEMORY_SHARE) {
    fitsCpu = false;
    reasons.push(`this model needs about ${formatBytes(need)} (${formatBytes(s.weightBytes)} of weights` +
      `${kvPerToken ? ` and ${formatBytes(kvPerToken * context)} of KV cache for ${context} tokens` : ''}), ` +
      `more than half of the ${formatBytes(memory)} of memory this device reports; the browser would likely run out of memory. Choose a smaller model`);
  } else {
    reasons.push(`it needs ${formatBytes(s.weightBytes)} of memory for its weights` +
      `${kvPerToken ? `, and ${formatBytes(kvBytesPer1kTokens)} more per 1000 tokens of context` : ''}`);
  }

  // GPU: tensors are split by rows into bindings, so only a row or one position's activations must fit one
  let fitsGpu = false;
  const g = caps.gpu;
  if (!g) {
    reasons.push('no WebGPU adapter is available, so the CPU engine runs it');
  } else {
    const limit = Math.min(g.maxStorageBufferBindingSize, g.maxBufferSize);
    const widest = s.shape ? 4 * Math.max(s.shape.vocab, s.shape.dFfn ?? 0, s.shape.dModel) : 0;
    fitsGpu = true;
    if (s.largest && s.largest.rowBytes > limit) {
      fitsGpu = false;
      reasons.push(`one row of ${s.largest.name} takes ${formatBytes(s.largest.rowBytes)} but the GPU binds at most ${formatBytes(limit)}, so the CPU engine runs it`);
    } else if (widest > limit) {
      fitsGpu = false;
      reasons.push(`one position's logits take ${formatBytes(widest)} but the GPU binds at most ${formatBytes(limit)}, so the CPU engine runs it`);
    } else if (s.largest && s.largest.bytes > limit) {
      reasons.push(`the GPU's largest buffer binding is ${formatBytes(limit)}; ${s.largest.name} (${formatBytes(s.largest.bytes)}) will be split`);
    }
    if (fitsGpu && g.isFallback) reasons.push('the WebGPU adapter is a software fallback: it works, but slowly');
  }
  return { downloadBytes: s.downloadBytes, weightBytes: s.weightBytes, kvBytesPer1kTokens, fitsCpu, fitsGpu, reasons };
}
