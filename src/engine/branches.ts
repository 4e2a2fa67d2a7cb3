// Generation that branches: a tree of token sequences grown after one prompt. Each branch holds
// its WHOLE generated sequence (so any branch can be run or compared on its own) and the point
// where it left its parent: tokens [0, forkAt) are the parent's, token forkAt is where it differs.
// Forking at step k of a branch makes a new branch that shares its first k tokens.
//
// The tree is plain data (no engine): the generate cell keeps it, stores it in the notebook as
// JSON, and runs `prompt + branch.tokens` through the engine, whose KV cache keeps the longest
// common prefix of consecutive runs (session.ts), so moving between branches recomputes only the
// positions after the shared prefix.
//
// Random numbers: the draw for position i of a sequence is drawUniform(seed, i), a function of
// the seed and the position alone, not of a stream consumed step by step. So forking at step k and
// continuing gives the same tokens as a fresh generation from the forked prefix with the same seed,
// and a branch can be stepped, undone and stepped again without changing its future.

import { UsageError } from './errors.ts';

/** One generated token and what the sampler said of it. */
export interface GeneratedToken {
  id: number;
  /** Probability under the raw softmax (temperature 1, no filters). */
  pBefore: number;
  /** Probability in the distribution it was drawn from (1 for greedy). */
  pAfter: number;
  /** The uniform number drawn for it; null when greedy or chosen by hand (a fork). */
  u: number | null;
  /** The most likely alternatives at this step, most likely first (ids and raw probabilities). */
  alternatives?: { id: number; p: number }[];
}

export interface Branch {
  readonly id: string;
  /** The branch it was forked from; null for the root. */
  parent: string | null;
  /** Tokens [0, forkAt) are shared with the parent; tokens[forkAt] is where it departs. */
  forkAt: number;
  tokens: GeneratedToken[];
  /** Why generation stopped, when it did: an end token, the length asked for, or the context. */
  stopped?: 'eos' | 'length' | 'context';
}

/** 32-bit mix (splitmix32's finaliser). */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The uniform number in [0, 1) for position `position` of a generation seeded with `seed`: a hash
 * of both (two rounds of splitmix32 mixing, 53 bits from two words), so that it does not depend on
 * what was drawn before.
 */
export function drawUniform(seed: number, position: number): number {
  if (!Number.isInteger(position) || position < 0) throw new UsageError('drawUniform', `position is ${position}; it must be an integer ≥ 0`);
  const s = mix((seed >>> 0) ^ 0x9e3779b9);
  const hi = mix(s ^ mix(position + 0x632be5ab));
  const lo = mix(hi ^ 0x2545f491 ^ mix(position ^ 0x5bd1e995));
  return ((hi >>> 5) * 67108864 + (lo >>> 6)) / 9007199254740992;
}

export interface BranchTreeJson {
  branches: { id: string; parent: string | null; forkAt: number; tokens: GeneratedToken[]; stopped?: Branch['stopped'] }[];
}

export class BranchTree {
  private readonly branches = new Map<string, Branch>();
  private next = 1;
  readonly rootId: string;

  constructor(rootId = 'main') {
    this.rootId = rootId;
    this.branches.set(rootId, { id: rootId, parent: null, forkAt: 0, tokens: [] });
  }

  get(id: string): Branch {
    const b = this.branches.get(id);
    if (!b) throw new UsageError('branch', `there is no branch "${id}"`, 'It may have been deleted; pick one from the tree');
    return b;
  }

  has(id: string): boolean {
    return this.branches.has(id);
  }

  /** Every branch, the root first, then in the order they were made. */
  list(): Branch[] {
    return [...this.branches.values()];
  }

  children(id: string): Branch[] {
    return this.list().filter((b) => b.parent === id);
  }

  /** Appends a generated token to a branch. */
  append(id: string, token: GeneratedToken): void {
    const b = this.get(id);
    b.tokens.push(token);
    delete b.stopped;
  }

  /** Drops a branch's tokens from `length` on (undo of steps); not before its fork point. */
  truncate(id: string, length: number): void {
    const b = this.get(id);
    if (!Number.isInteger(length) || length < 0) throw new UsageError('branch truncate', `length is ${length}; it must be an integer ≥ 0`);
    const floor = b.parent === null ? 0 : b.forkAt + 1;
    if (length < floor) throw new UsageError('branch truncate', `branch "${id}" starts at step ${b.forkAt}; it cannot be cut to ${length} tokens`, 'Delete the branch instead');
    b.tokens.length = Math.min(length, b.tokens.length);
    delete b.stopped;
  }

  /**
   * A new branch that shares the first `at` tokens of branch `id` and continues with `token`
   * instead of what `id` has at step `at`. Forking with the token the branch already has there
   * returns the existing branch (nothing to fork). A fork at the end of a branch is a fork too:
   * the new branch continues where `id` stops, differently.
   */
  fork(id: string, at: number, token: GeneratedToken): Branch {
    const b = this.get(id);
    if (!Number.isInteger(at) || at < 0 || at > b.tokens.length) {
      throw new UsageError('branch fork', `step ${at} is outside branch "${id}" (0 to ${b.tokens.length})`);
    }
    if (at < b.tokens.length && b.tokens[at]!.id === token.id) return b;
    // an existing sibling that already took this token at this step
    for (const c of this.children(id)) if (c.forkAt === at && c.tokens[at]?.id === token.id) return c;
    let nid: string;
    do nid = `b${this.next++}`; while (this.branches.has(nid));
    const fresh: Branch = { id: nid, parent: id, forkAt: at, tokens: [...b.tokens.slice(0, at).map((t) => ({ ...t })), token] };
    this.branches.set(nid, fresh);
    return fresh;
  }

  /**
   * Deletes a branch; its children move to its parent (they keep their tokens; their fork point
   * becomes where they leave the new parent). The root cannot be deleted. Returns the id of the
   * branch to show instead (the parent).
   */
  remove(id: string): string {
    const b = this.get(id);
    if (b.parent === null) throw new UsageError('branch delete', 'the main branch cannot be deleted', 'Truncate it to step 0 instead');
    for (const c of this.children(id)) {
      c.parent = b.parent;
      c.forkAt = Math.min(c.forkAt, b.forkAt);
    }
    this.branches.delete(id);
    return b.parent;
  }

  /** How many leading tokens two branches share. */
  sharedPrefix(a: string, b: string): number {
    const x = this.get(a).tokens, y = this.get(b).tokens;
    let i = 0;
    while (i < x.length && i < y.length && x[i]!.id === y[i]!.id) i++;
    return i;
  }

  /** The ids of a branch's tokens. */
  ids(id: string): number[] {
    return this.get(id).tokens.map((t) => t.id);
  }

  toJSON(): BranchTreeJson {
    return { branches: this.list().map((b) => ({ id: b.id, parent: b.parent, forkAt: b.forkAt, tokens: b.tokens.map((t) => ({ ...t })), ...(b.stopped ? { stopped: b.stopped } : {}) })) };
  }

  /**
   * A tree from JSON a notebook carried (untrusted): every field is checked, parents must exist
   * and come first, fork points must be where the branch really departs. `vocabSize` bounds ids.
   */
  static fromJSON(json: unknown, vocabSize: number, where = 'branches'): BranchTree {
    const bad = (what: string) => new UsageError(where, what, 'Delete the generate cell\'s branches to start again');
    const list = (json as BranchTreeJson | null)?.branches;
    if (!Array.isArray(list) || list.length === 0) throw bad('is not a list of branches');
    if (list.length > 10_000) throw bad(`holds ${list.length} branches; at most 10,000 are read`);
    const root = list[0]!;
    if (typeof root?.id !== 'string' || root.parent !== null) throw bad('the first branch must be the root (parent null)');
    const tree = new BranchTree(root.id);
    const token = (t: unknown, i: number, bid: string): GeneratedToken => {
      const o = t as GeneratedToken;
      const prob = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
      if (!o || !Number.isInteger(o.id) || o.id < 0 || o.id >= vocabSize) throw bad(`branch "${bid}" token ${i}: id must be an integer in [0, ${vocabSize})`);
      if (!prob(o.pBefore) || !prob(o.pAfter)) throw bad(`branch "${bid}" token ${i}: pBefore and pAfter must be probabilities`);
      if (o.u !== null && !(typeof o.u === 'number' && o.u >= 0 && o.u < 1)) throw bad(`branch "${bid}" token ${i}: u must be null or in [0, 1)`);
      const alt = Array.isArray(o.alternatives)
        ? o.alternatives.slice(0, 64).filter((a) => Number.isInteger(a?.id) && a.id >= 0 && a.id < vocabSize && prob(a.p)).map((a) => ({ id: a.id, p: a.p }))
        : undefined;
      return { id: o.id, pBefore: o.pBefore, pAfter: o.pAfter, u: o.u, ...(alt ? { alternatives: alt } : {}) };
    };
    for (const [n, raw] of list.entries()) {
      if (typeof raw?.id !== 'string' || raw.id.length === 0 || raw.id.length > 64) throw bad(`branch ${n + 1} has no usable id`);
      if (n > 0 && tree.has(raw.id)) throw bad(`branch "${raw.id}" appears twice`);
      if (!Array.isArray(raw.tokens) || raw.tokens.length > 1_000_000) throw bad(`branch "${raw.id}" has no token list`);
      const tokens = raw.tokens.map((t, i) => token(t, i, raw.id));
      const stopped = raw.stopped === 'eos' || raw.stopped === 'length' || raw.stopped === 'context' ? raw.stopped : undefined;
      if (n === 0) {
        Object.assign(tree.get(root.id), { tokens, ...(stopped ? { stopped } : {}) });
        continue;
      }
      if (typeof raw.parent !== 'string' || !tree.has(raw.parent)) throw bad(`branch "${raw.id}": its parent "${String(raw.parent)}" is not an earlier branch`);
      const parent = tree.get(raw.parent);
      const at = raw.forkAt;
      if (!Number.isInteger(at) || at < 0 || at >= tokens.length || at > parent.tokens.length) throw bad(`branch "${raw.id}": forkAt ${String(at)} is not a step of it and of its parent`);
      for (let i = 0; i < at; i++) if (tokens[i]!.id !== parent.tokens[i]!.id) throw bad(`branch "${raw.id}" differs from its parent at step ${i}, before its fork point ${at}`);
      if (at < parent.tokens.length && tokens[at]!.id === parent.tokens[at]!.id) throw bad(`branch "${raw.id}" does not depart from its parent at step ${at}`);
      tree.branches.set(raw.id, { id: raw.id, parent: raw.parent, forkAt: at, tokens, ...(stopped ? { stopped } : {}) });
      const m = /^b(\d+)$/.exec(raw.id);
      if (m) tree.next = Math.max(tree.next, Number(m[1]) + 1);
    }
    return tree;
  }
}
