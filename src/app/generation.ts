// Generation for the notebook's generate cell, on the page's side: one step = run the prompt and
// the branch's tokens (the session keeps the KV cache of the longest common prefix, so a step
// costs one position and moving to another branch recomputes only what follows the shared part),
// take the last logits row, choose the next token with the sampler chain (runChain) and the
// position's own random numbers (drawUniform(seed, position): forks reproduce), append it.
//
// The branch tree lives in the notebook (the cell's `branches` setting, a compact JSON string
// validated by BranchTree.fromJSON on the way in), so the Markdown stays the whole state. The
// probabilities are stored at 4 significant digits and u at 6 decimals; they are rounded when the
// token is made, so a tree in memory and the same tree read back from the notebook are equal
// (mirostat's μ is replayed from the stored pAfter).
//
// GenerationController turns the generate element's requests ('glassbox-generate' events) into
// steps: one action at a time per cell, play and run cancellable (pause, another model, the
// prompt changing under it), never blocking the page (it yields between steps).

import { BranchTree, type BranchTreeJson, type GeneratedToken } from '../engine/branches.ts';
import { CancelledError, UsageError } from '../engine/errors.ts';
import {
  type ChainResult, finalDistribution, type MirostatState, mirostatStart, mirostatUpdate, probReader, type ResolvedOptions, resolveOptions, runChain,
} from '../engine/sampling/index.ts';
import type { CallOptions, LogitsQuery, LogitsSlice, ModelInfo, RunRequest, TraceHandle, Tokenized } from '../engine/api.ts';
import { drawsAt, rawOnce, samplerSettings } from '../../cells/plot/sampling.ts';
import type { GenerateOutput } from '../../cells/plot/generate.ts';

/** What generation needs of the engine (the worker client, or an in-thread Engine). */
export interface GenerationClient {
  run(request: RunRequest, options?: CallOptions): Promise<TraceHandle>;
  logits(trace: TraceHandle, query?: LogitsQuery): Promise<LogitsSlice>;
}

export interface GenerationEnv {
  client: GenerationClient;
  /** The context length: a sequence never grows past it. */
  nCtx: number;
  vocabSize: number;
  /** Ids that end generation (EOS and the other end-of-generation ids). */
  stopIds: ReadonlySet<number>;
}

export interface StepRequest {
  promptIds: readonly number[];
  tree: BranchTree;
  branch: string;
  options: ResolvedOptions;
  seed: number;
  /** The engine slot of the runs ('generate:<cell id>'). */
  slot: string;
  signal?: AbortSignal;
}

/** 'token': one appended; 'eos': an end token was drawn (not appended); 'context': the context is full. */
export type StepOutcome = 'token' | 'eos' | 'context';

/** How many alternatives each generated token keeps. */
export const ALTERNATIVES = 5;

const sig4 = (v: number) => +v.toPrecision(4);
const u6 = (u: number) => Math.floor(u * 1e6) / 1e6;

/** The ids that end generation for a model: its EOS, the config's other end ids, the tokenizer's EOS. */
export function stopIdsOf(model: Pick<ModelInfo, 'config' | 'tokenizer'>): Set<number> {
  const ids = new Set<number>();
  const c = model.config;
  if (c.eosId !== null && c.eosId !== undefined) ids.add(c.eosId);
  for (const id of c.eosIds ?? []) ids.add(id);
  if (model.tokenizer?.eosId !== null && model.tokenizer?.eosId !== undefined) ids.add(model.tokenizer.eosId);
  for (const id of model.tokenizer?.eogIds ?? []) ids.add(id);
  return ids;
}

/** The chain options and seed of a cell's sampler settings (UsageError naming a bad one). */
export function chainOf(settings: Readonly<Record<string, unknown>>): { options: ResolvedOptions; seed: number } {
  const s = samplerSettings(settings);
  return { options: resolveOptions(s.options), seed: s.seed };
}

/** Mirostat's state before the next token of a branch: μ replayed from the stored pAfter of its tokens (those of p 0, forks the chain had cut, are left out). */
export function mirostatBefore(tokens: readonly GeneratedToken[], o: ResolvedOptions): MirostatState | undefined {
  if (!o.mirostat) return undefined;
  let st = mirostatStart(o.mirostatTau);
  for (const t of tokens) if (t.pAfter > 0) st = mirostatUpdate(st, t.pAfter, { tau: o.mirostatTau, eta: o.mirostatEta });
  return st;
}

/**
 * The next token after `history` (prompt and generated ids) from its logits row: runChain with the
 * random numbers of position history.length. Pure; the token record is rounded as stored.
 */
export function chooseNext(logits: Float32Array, history: readonly number[], options: ResolvedOptions, seed: number, mirostat?: MirostatState): { result: ChainResult; token: GeneratedToken } {
  const raw = rawOnce(logits);
  const result = runChain(logits, options, { history, random: drawsAt(seed, history.length), raw, ...(mirostat ? { mirostat } : {}) });
  const alternatives: { id: number; p: number }[] = [];
  const rawProb = probReader(raw);
  for (let i = 0; i < Math.min(ALTERNATIVES, raw.ids.length); i++) alternatives.push({ id: raw.ids[i]!, p: sig4(rawProb(i)) });
  // u is recorded only where it chose: not on a fallback, nor from a set of one (greedy)
  const greedy = result.fallback !== null || finalDistribution(result).ids.length === 1;
  return {
    result,
    token: { id: result.token, pBefore: sig4(result.pBefore), pAfter: sig4(result.pAfter), u: greedy ? null : u6(result.random.draw), alternatives },
  };
}

async function logitsAfter(env: GenerationEnv, req: StepRequest, tokens: readonly number[]): Promise<Float32Array> {
  const h = await env.client.run({ tokens, slot: req.slot }, req.signal ? { signal: req.signal } : {});
  req.signal?.throwIfAborted();
  const row = await env.client.logits(h, { position: tokens.length - 1 });
  req.signal?.throwIfAborted();
  return row.data;
}

/** The whole sequence of a branch: the prompt, then its tokens. */
export function sequenceOf(promptIds: readonly number[], tree: BranchTree, branch: string, length?: number): number[] {
  const t = tree.get(branch).tokens;
  return [...promptIds, ...t.slice(0, length ?? t.length).map((x) => x.id)];
}

/** One token on `branch`: appended, or the reason it stopped (recorded on the branch). */
export async function step(env: GenerationEnv, req: StepRequest): Promise<StepOutcome> {
  const b = req.tree.get(req.branch);
  const tokens = sequenceOf(req.promptIds, req.tree, req.branch);
  if (tokens.length === 0) throw new UsageError('generate', 'the prompt has no tokens', 'Type some text in the prompt');
  // A sequence never grows past the context, so every cell can run it (ContextLengthError-safe).
  if (tokens.length >= env.nCtx) { b.stopped = 'context'; return 'context'; }
  const logits = await logitsAfter(env, req, tokens);
  const { token } = chooseNext(logits, tokens, req.options, req.seed, mirostatBefore(b.tokens, req.options));
  if (env.stopIds.has(token.id)) { b.stopped = 'eos'; return 'eos'; }
  req.tree.append(req.branch, token);
  return 'token';
}

/**
 * A branch that takes token `tokenId` at step `at` of `branch` instead (the token it has there,
 * or the one it would draw next when `at` is its length). Runs the prefix once to record the
 * token's probabilities before and after the chain. Returns the branch to show.
 */
export async function fork(env: GenerationEnv, req: StepRequest, at: number, tokenId: number): Promise<string> {
  const b = req.tree.get(req.branch);
  if (!Number.isInteger(at) || at < 0 || at > b.tokens.length) throw new UsageError('branch fork', `step ${at} is outside branch "${req.branch}" (0 to ${b.tokens.length})`);
  if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= env.vocabSize) throw new UsageError('branch fork', `token ${tokenId} is not in the vocabulary (0 to ${env.vocabSize - 1})`);
  const prefix = sequenceOf(req.promptIds, req.tree, req.branch, at);
  if (prefix.length >= env.nCtx) throw new UsageError('branch fork', `step ${at} is at the end of the context (${env.nCtx} tokens)`);
  const logits = await logitsAfter(env, req, prefix);
  const { result, token } = chooseNext(logits, prefix, req.options, req.seed, mirostatBefore(b.tokens.slice(0, at), req.options));
  const fin = finalDistribution(result);
  const k = fin.ids.indexOf(tokenId);
  const r = result.input.ids.indexOf(tokenId);
  const chosen: GeneratedToken = {
    id: tokenId, pBefore: r < 0 ? 0 : sig4(result.input.probs[r]!), pAfter: k < 0 ? 0 : sig4(fin.probs[k]!), u: null,
    ...(token.alternatives ? { alternatives: token.alternatives } : {}),
  };
  return req.tree.fork(req.branch, at, chosen).id;
}

/** Undoes the last step of a branch; a fork's first token takes the branch away. Returns the branch to show. */
export function undoStep(tree: BranchTree, branch: string): string {
  const b = tree.get(branch);
  if (b.parent !== null && b.tokens.length <= b.forkAt + 1) return tree.remove(branch);
  if (b.tokens.length > 0) tree.truncate(branch, b.tokens.length - 1);
  else delete b.stopped;
  return branch;
}

// ---------------------------------------------------------------------------------------------
// The tree in the notebook: compact JSON

/** At most this many characters of `branches` are read (a stranger's notebook). */
export const MAX_TREE_CHARS = 16 * 2 ** 20;

type CompactToken = (number | null)[];   // [id, pBefore, pAfter, u, altId, altP, altId, altP, ...]
interface CompactBranch { id: string; parent: string | null; at: number; t: CompactToken[]; stop?: string }

/** The tree as the `branches` setting: branches with their tokens as flat arrays. */
export function encodeTree(tree: BranchTree): string {
  const json = tree.toJSON();
  const b: CompactBranch[] = json.branches.map((x) => ({
    id: x.id, parent: x.parent, at: x.forkAt,
    t: x.tokens.map((t) => [t.id, sig4(t.pBefore), sig4(t.pAfter), t.u === null ? null : u6(t.u), ...(t.alternatives ?? []).flatMap((a) => [a.id, sig4(a.p)])]),
    ...(x.stopped ? { stop: x.stopped } : {}),
  }));
  return JSON.stringify({ v: 1, b });
}

/** The tree of a `branches` setting (absent: a fresh tree). Checked field by field: UsageError naming what is wrong. */
export function decodeTree(text: unknown, vocabSize: number): BranchTree {
  if (text === undefined || text === null || text === '') return new BranchTree();
  const bad = (what: string) => new UsageError('generate cell: branches', what, 'Delete the `branches` line to start again');
  if (typeof text !== 'string') throw bad('is not a JSON string');
  if (text.length > MAX_TREE_CHARS) throw bad(`is ${text.length} characters long; at most ${MAX_TREE_CHARS} are read`);
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch (e) { throw bad(`is not valid JSON (${(e as Error).message})`); }
  const list = (parsed as { b?: unknown } | null)?.b;
  if ((parsed as { v?: unknown } | null)?.v !== 1 || !Array.isArray(list)) throw bad('is not a version-1 branch list ({"v":1,"b":[…]})');
  const branches: BranchTreeJson['branches'] = list.map((x: unknown, n: number) => {
    const o = x as Partial<CompactBranch> | null;
    if (!o || typeof o !== 'object' || !Array.isArray(o.t)) throw bad(`branch ${n + 1} has no token list`);
    return {
      id: o.id as string, parent: o.parent as string | null, forkAt: o.at as number,
      tokens: o.t.map((t: unknown, i: number) => {
        if (!Array.isArray(t) || t.length < 4 || t.length % 2 !== 0) throw bad(`branch ${n + 1} token ${i}: expected [id, pBefore, pAfter, u, altId, altP, …]`);
        const alternatives: { id: number; p: number }[] = [];
        for (let k = 4; k + 1 < t.length; k += 2) alternatives.push({ id: t[k] as number, p: t[k + 1] as number });
        return { id: t[0] as number, pBefore: t[1] as number, pAfter: t[2] as number, u: t[3] as number | null, alternatives };
      }),
      ...(typeof o.stop === 'string' ? { stopped: o.stop as 'eos' } : {}),
    };
  });
  return BranchTree.fromJSON({ branches }, vocabSize, 'generate cell: branches');
}

/** The branch a cell shows: its `branch` setting when the tree has it, else the root. */
export function currentBranch(tree: BranchTree, setting: unknown): string {
  return typeof setting === 'string' && tree.has(setting) ? setting : tree.rootId;
}

// ---------------------------------------------------------------------------------------------
// The generate cell's output: Tokenized-shaped (prompt + current branch), plus the tree

/** Decoded text of single tokens, per model (a token's text after other text: no space stripped). */
const textCache = new Map<string, Map<number, string>>();

export interface TextClient {
  decode(ids: readonly number[], options?: { stripLeadingSpace?: boolean; skipSpecial?: boolean }): Promise<string>;
  pieces(ids: readonly number[]): Promise<string[]>;
}

/**
 * The text each of `ids` adds after earlier text. Tokens that are parts of one character (byte
 * tokens) decode together: the run's text goes to its last token, the others get ''.
 */
export async function tokenTexts(client: TextClient, modelKey: string, ids: readonly number[]): Promise<string[]> {
  let cache = textCache.get(modelKey);
  if (!cache) { if (textCache.size > 4) textCache.clear(); cache = new Map(); textCache.set(modelKey, cache); }
  const missing = [...new Set(ids)].filter((id) => !cache!.has(id));
  const got = await Promise.all(missing.map((id) => client.decode([id], { stripLeadingSpace: false })));
  missing.forEach((id, i) => cache!.set(id, got[i]!));
  const out = ids.map((id) => cache!.get(id)!);
  for (let i = 0; i < out.length; i++) {
    if (!out[i]!.includes('\uFFFD')) continue;
    let j = i;
    while (j + 1 < out.length && out[j + 1]!.includes('\uFFFD')) j++;
    const joined = await client.decode(ids.slice(i, j + 1), { stripLeadingSpace: false });
    for (let k = i; k < j; k++) out[k] = '';
    out[j] = joined;
    i = j;
  }
  return out;
}

/** The generate cell's output for a prompt's tokens and the cell's settings. */
export async function generateOutput(client: TextClient, model: Pick<ModelInfo, 'key' | 'config'>, promptId: string, tok: Tokenized,
  settings: Readonly<Record<string, unknown>>): Promise<GenerateOutput> {
  const tree = decodeTree(settings['branches'], model.config.vocabSize);
  const branch = currentBranch(tree, settings['branch']);
  const json = tree.toJSON();
  const all = new Set<number>();
  for (const b of json.branches) for (const t of b.tokens) { all.add(t.id); for (const a of t.alternatives ?? []) all.add(a.id); }
  const list = [...all];
  const [texts, pieces] = await Promise.all([tokenTexts(client, model.key, list), list.length ? client.pieces(list) : Promise.resolve([])]);
  const textOf = new Map(list.map((id, i) => [id, texts[i]!]));
  const pieceOf = new Map(list.map((id, i) => [id, pieces[i]!]));
  const gen = tree.ids(branch);
  const genTexts = await tokenTexts(client, model.key, gen);
  let text = tok.text;
  const spans: [number, number][] = [...tok.spans];
  for (const s of genTexts) { spans.push([text.length, text.length + s.length]); text += s; }
  return {
    text, ids: [...tok.ids, ...gen], pieces: [...tok.pieces, ...gen.map((id) => pieceOf.get(id)!)], spans,
    prompt: promptId, promptLength: tok.ids.length, promptText: tok.text.length, branch, tree: json, texts: textOf, tokenPieces: pieceOf,
  };
}

// ---------------------------------------------------------------------------------------------
// The page's controller

export type GenerateActionName = 'step' | 'play' | 'pause' | 'run' | 'undo' | 'reset' | 'fork' | 'select' | 'delete';

/** The detail of a 'glassbox-generate' event (the app sets `done`). */
export interface GenerateAction {
  cellId: string;
  action: GenerateActionName;
  /** fork / select / delete: the branch acted on (default the current one). */
  branch?: string;
  /** fork: the step and the token taken there. */
  at?: number;
  token?: number;
  /** Set by the page while the event is dispatched: settles when the action is over. */
  done?: Promise<GenerateResult>;
}

export interface GenerateResult {
  /** What ended it: a token stepped, an end token, the context, N tokens, a pause or cancel, an edit done, or an error. */
  outcome: StepOutcome | 'length' | 'paused' | 'busy' | 'done' | 'error';
  steps: number;
  error?: string;
}

export const GENERATE_EVENT = 'glassbox-generate';

/** A playing generate cell writes its tree back (and its readers redraw) at most this often. */
export const PLAY_WRITE_MS = 150;
export const DEFAULT_MAX_TOKENS = 64;

/** What the controller reads from and writes to the page. */
export interface GenerationAccess {
  env(): GenerationEnv | null;
  /** The cell's prompt ids, its own settings and the sampler settings it uses; a string says why it cannot run. */
  read(cellId: string): { promptIds: readonly number[]; settings: Readonly<Record<string, unknown>>; sampler: Readonly<Record<string, unknown>> } | string;
  write(cellId: string, tree: BranchTree, branch: string): void;
}

const sameIds = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

export class GenerationController {
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly access: GenerationAccess) {}

  busy(cellId: string): boolean { return this.running.has(cellId); }

  /** Stops a cell's play or run (every cell's when no id is given). */
  cancel(cellId?: string, reason = 'paused'): void {
    for (const [id, c] of this.running) if (cellId === undefined || id === cellId) c.abort(new CancelledError(`generate ${id}`, reason));
  }

  async handle(a: GenerateAction): Promise<GenerateResult> {
    if (a.action === 'pause') { this.cancel(a.cellId); return { outcome: 'paused', steps: 0 }; }
    if (this.running.has(a.cellId)) return { outcome: 'busy', steps: 0 };
    const ctrl = new AbortController();
    this.running.set(a.cellId, ctrl);
    try {
      return await this.act(a, ctrl.signal);
    } catch (e) {
      if (ctrl.signal.aborted || e instanceof CancelledError) return { outcome: 'paused', steps: 0 };
      return { outcome: 'error', steps: 0, error: e instanceof Error ? e.message : String(e) };
    } finally {
      if (this.running.get(a.cellId) === ctrl) this.running.delete(a.cellId);
    }
  }

  private state(cellId: string, vocabSize: number) {
    const r = this.access.read(cellId);
    if (typeof r === 'string') throw new UsageError(`generate ${cellId}`, r);
    const tree = decodeTree(r.settings['branches'], vocabSize);
    return { ...r, tree, branch: currentBranch(tree, r.settings['branch']) };
  }

  private async act(a: GenerateAction, signal: AbortSignal): Promise<GenerateResult> {
    const env = this.access.env();
    if (!env) throw new UsageError('generate', 'no model is loaded', 'Pick a model first');
    let s = this.state(a.cellId, env.vocabSize);
    const write = (tree: BranchTree, branch: string) => this.access.write(a.cellId, tree, branch);
    switch (a.action) {
      case 'select':
        write(s.tree, currentBranch(s.tree, a.branch));
        return { outcome: 'done', steps: 0 };
      case 'delete': {
        const target = a.branch ?? s.branch;
        const parent = s.tree.remove(target);
        write(s.tree, target === s.branch ? parent : s.branch);
        return { outcome: 'done', steps: 0 };
      }
      case 'undo':
        write(s.tree, undoStep(s.tree, s.branch));
        return { outcome: 'done', steps: 0 };
      case 'reset':
        write(new BranchTree(), 'main');
        return { outcome: 'done', steps: 0 };
      default:
    }
    const chain = chainOf(s.sampler);
    const req = (): StepRequest => ({ promptIds: s.promptIds, tree: s.tree, branch: s.branch, ...chain, slot: `generate:${a.cellId}`, signal });
    if (a.action === 'fork') {
      const from = a.branch ?? s.branch;
      const id = await fork(env, { ...req(), branch: from }, Number(a.at), Number(a.token));
      write(s.tree, id);
      return { outcome: 'done', steps: 0 };
    }
    if (a.action === 'step') {
      const o = await step(env, req());
      write(s.tree, s.branch);
      return { outcome: o, steps: o === 'token' ? 1 : 0 };
    }
    // play (writes every token) and run (writes at the end): at most max_tokens new tokens
    const m = s.settings['max_tokens'];
    const max = typeof m === 'number' && Number.isInteger(m) && m >= 1 ? m : DEFAULT_MAX_TOKENS;
    const prompt = s.promptIds;
    let steps = 0;
    let outcome: GenerateResult['outcome'] = 'length';
    // A play writes the tree back at most every PLAY_WRITE_MS (and at the end): each write makes
    // every cell that reads the generated text recompute and redraw, which costs more than a step.
    let written = s.settings['branches'], lastWrite = -Infinity;
    const writeSome = (force: boolean) => {
      if (!force && performance.now() - lastWrite < PLAY_WRITE_MS) return;
      write(s.tree, s.branch);
      lastWrite = performance.now();
      const r = this.access.read(a.cellId);
      written = typeof r === 'string' ? undefined : r.settings['branches'];
    };
    try {
      while (steps < max) {
        if (a.action === 'play' && steps > 0) {
          // the notebook may have changed between steps; a prompt edited (or recomputing) stops the
          // play, and a tree changed by someone else (an undo) is taken as it is now
          // (the tree as this play last wrote it, the usual case, is not decoded again: decoding
          // every step made a long play quadratic in its length)
          const r = this.access.read(a.cellId);
          if (typeof r === 'string' || !sameIds(r.promptIds, prompt)) { outcome = 'paused'; break; }
          if (r.settings['branches'] === written) s = { ...r, tree: s.tree, branch: s.branch };
          else {
            try { s = this.state(a.cellId, env.vocabSize); } catch { outcome = 'paused'; break; }
          }
        }
        const o = await step(env, req());
        if (o !== 'token') { outcome = o; break; }
        steps++;
        if (a.action === 'play') writeSome(false);
        await tick();                               // let the page draw and take input
        if (signal.aborted) { outcome = 'paused'; break; }
      }
    } catch (e) {
      if (!(signal.aborted || e instanceof CancelledError)) throw e;
      outcome = 'paused';
    }
    if (outcome === 'length') s.tree.get(s.branch).stopped = 'length';
    write(s.tree, s.branch);
    return { outcome, steps };
  }
}
