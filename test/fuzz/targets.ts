// One fuzz target per input kind: how an input is generated from (seed, kind, index), and the
// property it must satisfy. The property, for every file kind: it loads (and its weights stream
// into an arena, and its tokenizer encodes and decodes), or it throws one of the project's named
// errors (a GlassboxError subclass); anything else is a failure. Time and allocation limits are
// enforced by runner.ts and guard.ts.

import { readFileSync } from 'node:fs';
import { GlassboxError } from '../../src/engine/errors.ts';
import { WeightArena } from '../../src/engine/arena.ts';
import { bytesSource, type ByteSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadWeights, weightBytes } from '../../src/formats/load.ts';
import type { ModelFile } from '../../src/formats/model.ts';
import { readTokenizerData } from '../../src/tokenizer/open.ts';
import { tokenizerDataFromHfJson } from '../../src/tokenizer/hf-json.ts';
import { tokenizerDataFromLlama2cBin } from '../../src/tokenizer/llama2c-bin.ts';
import { createTokenizer, type Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import type { TokenizerData } from '../../src/tokenizer/data.ts';
import { parseNotebook, serializeNotebook } from '../../src/notebook/format.ts';
import { setSetting } from '../../src/notebook/edit.ts';
import { cellKinds } from '../../src/notebook/registry.ts';
import { sameValue, type Value } from '../../src/notebook/settings.ts';
import { BASES, getBase, sharedPath, type NamedBytes } from './corpus.ts';
import { ggufFields, llama2cFields, tokenizerBinFields, type FieldMap } from './fields.ts';
import { byteOps, jsonOps, notebookOps, randomText } from './gen.ts';
import { applyByteOp, applyTextOp, setAtPath, type JsonPath, type JsonValue, type Op } from './ops.ts';
import { FuzzRng } from './rng.ts';

export const KINDS = ['gguf', 'safetensors', 'llama2c', 'tokenizer-json', 'tokenizer-bin', 'notebook', 'prompt'] as const;
export type Kind = (typeof KINDS)[number];

/** A fuzz input: a base and the ops applied to it, or (prompts) a text and a tokenizer. */
export interface Input {
  kind: Kind; base?: string; ops?: Op[]; text?: string; tokenizer?: string;
  /** Notebooks: the edit to make (else one is picked from the input). */
  edit?: { cell: string; key: string; value: Value };
}

/** A property violation (not a named error, a wrong round trip): the input is a failure. */
export class PropertyFailure extends Error {
  override name = 'PropertyFailure';
}

/** What an input did: 'ok' (loaded, round-tripped) or the name of the error it was refused with. */
export type Outcome = string;

// ---------------------------------------------------------------------------------------------
// Generation

const fieldMaps = new Map<string, FieldMap | undefined>();
function fieldsOf(base: string, file: number, bytes: Uint8Array, kind: Kind): FieldMap | undefined {
  const key = `${base}#${file}`;
  if (!fieldMaps.has(key)) {
    const name = (getBase(base) as { files: NamedBytes[] }).files[file]!.name;
    fieldMaps.set(key, name.endsWith('.gguf') ? ggufFields(bytes)
      : kind === 'llama2c' && file === 0 ? llama2cFields(bytes)
      : name.endsWith('.bin') ? tokenizerBinFields(bytes) : undefined);
  }
  return fieldMaps.get(key);
}

/** The parts of the Llama 3 tokenizer.json that decide how it is read. */
const BIG_JSON_PATHS: JsonPath[] = [
  ['model'], ['model', 'type'], ['model', 'vocab'], ['model', 'merges'], ['model', 'merges', 0], ['model', 'merges', 280146],
  ['model', 'vocab', 'Ġthe'], ['model', 'vocab', '!'], ['model', 'ignore_merges'], ['model', 'byte_fallback'], ['added_tokens'],
  ['added_tokens', 0], ['added_tokens', 0, 'id'], ['added_tokens', 0, 'content'], ['added_tokens', 255, 'id'], ['added_tokens', 1, 'special'],
  ['pre_tokenizer'], ['pre_tokenizer', 'pretokenizers'], ['pre_tokenizer', 'pretokenizers', 0, 'pattern', 'Regex'],
  ['pre_tokenizer', 'pretokenizers', 1, 'use_regex'], ['decoder'], ['post_processor'], ['post_processor', 'processors', 1, 'single'], ['normalizer'],
];

/** Bases with 32,000-token vocabularies are slow to build a tokenizer from: picked less often. */
const SLOW_BASES = new Set(['shared:llama2-tokenizer/tokenizer.bin', 'shared:llamacpp-vocab/ggml-vocab-llama-spm.gguf']);
function pickWeighted(rng: FuzzRng, ids: string[]): string {
  const fast = ids.filter((b) => !SLOW_BASES.has(b));
  return fast.length < ids.length && rng.chance(0.1) ? rng.pick(ids.filter((b) => SLOW_BASES.has(b))) : rng.pick(fast);
}

const PROMPT_TOKENIZERS = ['tok512', 'llama2', 'llama3'];

export function generate(kind: Kind, seed: number, index: number): Input {
  const rng = FuzzRng.forInput(seed, kind, index);
  if (kind === 'prompt') {
    // Mostly short; now and then long; input 0 of every run is 100,000 characters.
    const len = index % 500 === 0 ? 100_000 : rng.chance(0.02) ? rng.range(1000, 20_000) : rng.size(300);
    return { kind, text: randomText(rng, len), tokenizer: PROMPT_TOKENIZERS[index % PROMPT_TOKENIZERS.length] };
  }
  const ids = BASES[kind]!;
  // The 9 MB tokenizer.json is slow to read (about half a second): one input in 250.
  const big = kind === 'tokenizer-json' && index % 250 === 7;
  const choices = kind === 'tokenizer-json' ? ids.filter((b) => !b.startsWith('bigjson')) : ids;
  const base = big ? 'bigjson:llama3' : pickWeighted(rng, choices);
  const b = getBase(base);
  if (b.type === 'text') return { kind, base, ops: notebookOps(rng, b.text) };
  if (b.type === 'json') return { kind, base, ops: jsonOps(rng, 0, b.json, 'json', BIG_JSON_PATHS) };
  const others = ids.filter((x) => x !== base && getBase(x).type === 'files');
  const ops: Op[] = [];
  const file = kind === 'safetensors' || kind === 'llama2c' ? (rng.chance(0.75) ? 0 : rng.int(b.files.length)) : 0;
  const f = b.files[file]!;
  if (kind === 'safetensors' && file === 0 && rng.chance(0.4)) {
    const n = Number(new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getBigUint64(0, true));
    ops.push(...jsonOps(rng, 0, JSON.parse(new TextDecoder().decode(f.bytes.subarray(8, 8 + n))), 'header-json'));
  } else if (f.name.endsWith('.json') && rng.chance(0.6)) {
    ops.push(...jsonOps(rng, file, JSON.parse(new TextDecoder().decode(f.bytes))));
  } else if ((kind === 'safetensors' || kind === 'llama2c') && file > 0 && rng.chance(0.15)) {
    ops.push({ op: 'drop-file', file });
  } else {
    let map = fieldsOf(base, file, f.bytes, kind);
    if (kind === 'safetensors' && file === 0) {
      const n = Number(new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getBigUint64(0, true));
      map = { fields: [{ at: 0, size: 8, kind: 'strlen' }], records: [], headerEnd: 8 + n };
    }
    ops.push(...byteOps(rng, file, { bytes: f.bytes, map }, file === 0 ? others : []));
  }
  return { kind, base, ops };
}

// ---------------------------------------------------------------------------------------------
// Building an input

export function materialize(input: Input): { files: NamedBytes[]; json?: JsonValue; text?: string } {
  if (input.kind === 'notebook' && input.text !== undefined) return { files: [], text: input.text }; // a saved notebook
  const b = getBase(input.base!);
  const ops = input.ops ?? [];
  if (b.type === 'text') return { files: [], text: ops.reduce(applyTextOp, b.text) };
  if (b.type === 'json') {
    let j = b.json;
    for (const o of ops) if (o.op === 'json' && !o.dup) j = setAtPath(j, o.path, o.value, o.del ?? false);
    return { files: [], json: j };
  }
  let files: (NamedBytes | null)[] = b.files.map((f) => ({ ...f }));
  const other = (id: string, k: number) => {
    const ob = getBase(id);
    return ob.type === 'files' ? (ob.files[k] ?? ob.files[0]!).bytes : new Uint8Array(0);
  };
  for (const o of ops) {
    if (o.op === 'drop-file') { files[o.file] = null; continue; }
    const k = 'file' in o && o.file !== undefined ? o.file : 0;
    const f = files[k];
    if (f) files[k] = { name: f.name, bytes: applyByteOp(f.bytes, o, other) };
  }
  return { files: files.filter((f): f is NamedBytes => f !== null) };
}

export function inputBytes(input: Input): number {
  if (input.kind === 'prompt' || input.text !== undefined) return 2 * input.text!.length;
  const b = getBase(input.base!);
  return b.type === 'files' ? b.files.reduce((s, f) => s + f.bytes.length, 0) * 2 : b.type === 'json' ? b.size : 2 * b.text.length;
}

// ---------------------------------------------------------------------------------------------
// Properties

export function isNamedError(e: unknown): e is GlassboxError {
  return e instanceof GlassboxError && e.constructor !== GlassboxError;
}

const SAMPLE = 'Once upon a time, there was a little girl named Lily. \u2603 \ud83d\ude00 \u05e9\u05dc\u05d5\u05dd\n\n  123';

/** A tokenizer built from (possibly damaged) data must encode and decode without crashing. */
function exercise(data: TokenizerData, where: string): void {
  const tok = createTokenizer(data, where);
  const ids = tok.encode(SAMPLE);
  tok.decode(ids);
  tok.encode(SAMPLE, { special: true, bos: true, eos: true });
  for (let id = 0; id < Math.min(tok.vocabSize, 300); id += 7) tok.piece(id);
}

async function loadModel(model: ModelFile): Promise<void> {
  const arena = new WeightArena(weightBytes(model));
  await loadWeights(model, arena);
  if (model.tokenizer) exercise(model.tokenizer, model.sources[0]!.name);
}

const sources = (files: NamedBytes[]): ByteSource[] => files.map((f) => bytesSource(f.bytes, f.name));

async function checkFiles(input: Input, files: NamedBytes[], json: JsonValue | undefined): Promise<void> {
  switch (input.kind) {
    case 'gguf': {
      if (files[0]!.name.startsWith('ggml-vocab')) {
        exercise(await readTokenizerData(sources(files)[0]!), files[0]!.name);
        return;
      }
      await loadModel(await openModel(sources(files)));
      return;
    }
    case 'safetensors':
      await loadModel(await openModel(sources(files)));
      return;
    case 'llama2c': {
      const [bin, tok] = sources(files);
      if (bin!.name.endsWith('.bin') && tok?.name.endsWith('.bin')) await loadModel(await openModel([bin!], { tokenizer: tok }));
      else await loadModel(await openModel(sources(files)));
      return;
    }
    case 'tokenizer-json':
      if (json !== undefined) exercise(tokenizerDataFromHfJson(json, null, 'tokenizer.json'), 'tokenizer.json');
      else exercise(await readTokenizerData(sources(files)[0]!), files[0]!.name);
      return;
    case 'tokenizer-bin': {
      const f = files[0]!;
      exercise(await readTokenizerData(bytesSource(f.bytes, f.name)), f.name);
      // As a model's tokenizer: the vocabulary size is known.
      exercise(tokenizerDataFromLlama2cBin(f.bytes, f.name, f.name === 'tok512.bin' ? 512 : 32000), f.name);
      return;
    }
    default: throw new Error(`not a file kind: ${input.kind}`);
  }
}

/** Runs one input; resolves with its outcome, or throws PropertyFailure / the unexpected error. */
export async function check(input: Input): Promise<Outcome> {
  if (input.kind === 'prompt') { await checkPrompt(input.text!, input.tokenizer!); return 'ok'; }
  const { files, json, text } = materialize(input);
  if (input.kind === 'notebook') { checkNotebook(text!, input); return 'ok'; }
  try {
    await checkFiles(input, files, json);
    return 'ok';
  } catch (e) {
    if (isNamedError(e)) return e.name;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Notebooks: never throw, round-trip byte for byte, and a setting written reads back

const SETTING_VALUES: Value[] = [0, 1, 3, 31, 2.5, -1, true, false, 'x', 'a b', 'with "quotes"', "it's", 'ends with #', '#x', 'line\nbreak',
  'tab\tin', '```', '~~~', 'null', '123', '', ' padded ', '\u202eRTL', '- dash', 'key: value', [1, 2], ['a', 'b, c'], []];

function checkNotebook(text: string, input: Input): void {
  const nb = parseNotebook(text);
  const back = serializeNotebook(nb);
  if (back !== text) {
    let i = 0;
    while (i < text.length && text[i] === back[i]) i++;
    throw new PropertyFailure(`the notebook does not round-trip: first difference at ${i}: ${JSON.stringify(text.slice(i - 10, i + 20))} became ${JSON.stringify(back.slice(i - 10, i + 20))}`);
  }
  // Edit one setting of one cell (a value its schema accepts) and read it back.
  const rng = FuzzRng.forInput(input.ops?.length ?? 0, input.base ?? 'text', text.length);
  const cells = nb.cells.filter((c) => cellKinds.get(c.kind) && c.kind !== 'markdown');
  if (cells.length === 0) return;
  const cell = input.edit ? nb.cells.find((c) => c.id === input.edit!.cell) : rng.pick(cells);
  if (!cell) throw new PropertyFailure(`the saved edit's cell ${input.edit!.cell} is not in the notebook`);
  const kind = cellKinds.get(cell.kind)!;
  const key = input.edit?.key ?? rng.pick(Object.keys(kind.schema));
  const ok = SETTING_VALUES.filter((v) => kind.schema[key]!.check(v, {}) === null);
  if (ok.length === 0) return;
  const value = input.edit?.value ?? rng.pick(ok);
  let edited;
  try {
    edited = setSetting(nb, cell.id, key, value);
  } catch (e) {
    if (isNamedError(e)) return;
    throw e;
  }
  const again = parseNotebook(serializeNotebook(edited));
  const i = edited.cells.findIndex((c) => c.id === cell.id);
  const got = again.cells[i]?.settings[key];
  const want = typeof value === 'string' && key === 'text' ? value.replace(/\r\n/g, '\n') : value;
  if (again.cells.length !== edited.cells.length || !sameValue(got, want)) {
    throw new PropertyFailure(`setting ${cell.kind} cell ${cell.id}'s "${key}" to ${JSON.stringify(value)} reads back as ${JSON.stringify(got)} (${edited.cells.length} cells became ${again.cells.length})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Prompts: encode then decode gives the text back

const promptTokenizers = new Map<string, Tokenizer>();
export async function promptTokenizer(name: string): Promise<Tokenizer> {
  let t = promptTokenizers.get(name);
  if (!t) {
    const file = { tok512: 'tinystories-260k/tok512.bin', llama2: 'llama2-tokenizer/tokenizer.model', llama3: 'llama3-tokenizer/tokenizer.json' }[name]!;
    const src = bytesSource(new Uint8Array(readFileSync(sharedPath(file))), file.split('/').pop());
    t = createTokenizer(await readTokenizerData(src), file);
    promptTokenizers.set(name, t);
  }
  return t;
}

/**
 * The text a tokenizer can give back: `s` with every lone surrogate replaced by U+FFFD. Tokens are
 * UTF-8 bytes and a lone surrogate has no UTF-8 encoding; the tokenizers encode it as U+FFFD (as
 * TextEncoder does), so U+FFFD is what decoding returns. Every other string is "valid" and must
 * come back unchanged, character for character (no normalization, no whitespace changes); but
 * see expectedRoundTrip for SentencePiece's "▁".
 */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** What decode(encode(s)) must be. SentencePiece writes a space as the meta symbol U+2581 ('▁') and
 *  decodes every '▁' as a space (SentencePiece and llama.cpp do the same), so for a SentencePiece
 *  tokenizer a '▁' in the text comes back as ' '; a byte-level BPE tokenizer gives back every
 *  well-formed string unchanged. */
export function expectedRoundTrip(s: string, kind: 'spm' | 'bpe'): string {
  const w = wellFormed(s);
  return kind === 'spm' ? w.replaceAll('\u2581', ' ') : w;
}

async function checkPrompt(text: string, name: string): Promise<void> {
  const tok = await promptTokenizer(name);
  const want = expectedRoundTrip(text, tok.kind);
  const ids = tok.encode(text, { bos: false, eos: false });
  const back = tok.decode(ids);
  if (back !== want) {
    let i = 0;
    while (i < want.length && want[i] === back[i]) i++;
    throw new PropertyFailure(`${name}: decode(encode(text)) differs from the text at ${i}: ${JSON.stringify(want.slice(i, i + 12))} became ${JSON.stringify(back.slice(i, i + 12))}`);
  }
  // Streaming decode gives the same text, and spans are ordered ranges of the text.
  const stream = tok.decodeStream();
  let streamed = '';
  for (const id of ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed !== back) throw new PropertyFailure(`${name}: streaming decode differs from decode`);
  if (text.length <= 2000) {
    const { ids: ids2, spans } = tok.encodeWithSpans(text, { bos: false, eos: false });
    if (ids2.length !== ids.length || ids2.some((x, i) => x !== ids[i])) throw new PropertyFailure(`${name}: encodeWithSpans gives other ids than encode`);
    let last = 0;
    for (const [s, e] of spans) {
      if (!(s >= 0 && e >= s && e <= text.length && s >= last - 2)) throw new PropertyFailure(`${name}: span [${s}, ${e}) is out of order or out of the text`);
      last = Math.max(last, s);
    }
  }
}
