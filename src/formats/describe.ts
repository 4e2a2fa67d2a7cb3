// A plain summary of a model file, the same for `glassbox inspect` and the page's inspector: what
// the file is, its config, every tensor with type and shape, and its metadata with long arrays
// abbreviated (a Llama 3 GGUF carries 128k token strings).

import { parameterCount, type ModelConfig } from '../engine/config.ts';
import type { ModelFile } from './model.ts';

export interface TensorSummary {
  name: string;
  fileName: string;
  type: string;
  shape: number[];
  bytes: number;
}

export interface ModelSummary {
  format: string;
  files: { name: string; bytes: number }[];
  bytes: number;
  config: ModelConfig;
  parameters: number;
  ropeLayout: string;
  tensors: TensorSummary[];
  /** Bytes per tensor type, largest first. */
  types: { type: string; tensors: number; bytes: number }[];
  metadata: Record<string, unknown>;
}

const MAX_ARRAY = 16;

/** Abbreviates long arrays and typed arrays so that metadata prints in a screen. */
export function abbreviate(value: unknown): unknown {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const arr = Array.from(value as unknown as ArrayLike<number>);
    return arr.length > MAX_ARRAY ? `[${arr.length} values: ${arr.slice(0, 8).join(', ')}, …]` : arr;
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_ARRAY) {
      const head = value.slice(0, 8).map((v) => JSON.stringify(abbreviate(v))).join(', ');
      return `[${value.length} values: ${head}, …]`;
    }
    return value.map(abbreviate);
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && value.length > 400) return `${value.slice(0, 400)}… (${value.length} chars)`;
  if (value instanceof Map) return abbreviate(Object.fromEntries(value));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, abbreviate(v)]));
  }
  return value;
}

export function describeModel(model: ModelFile): ModelSummary {
  const tensors = model.tensors.map((t) => ({ name: t.name, fileName: t.fileName, type: t.type, shape: t.shape, bytes: t.byteLength }));
  const byType = new Map<string, { type: string; tensors: number; bytes: number }>();
  for (const t of tensors) {
    const e = byType.get(t.type) ?? { type: t.type, tensors: 0, bytes: 0 };
    e.tensors++;
    e.bytes += t.bytes;
    byType.set(t.type, e);
  }
  const files = model.sources.map((s) => ({ name: s.name, bytes: s.size }));
  return {
    format: model.format,
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    config: model.config,
    parameters: parameterCount(model.config),
    ropeLayout: model.ropeLayout,
    tensors,
    types: [...byType.values()].sort((a, b) => b.bytes - a.bytes),
    metadata: abbreviate(model.metadata) as Record<string, unknown>,
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}
