// A binary min-heap of candidate merges, shared by both BPE flavours. Entries are kept in parallel
// number arrays (no object per entry): the merge loops push and pop one entry per candidate pair.
// Order: lower `prio` first, then the leftmost pair (lower `left`), which is the tie rule of
// SentencePiece, llama.cpp and Hugging Face alike.

export class MergeHeap {
  private prio: number[] = [];
  private left: number[] = [];
  private right: number[] = [];
  private aux: number[] = [];
  /** The entry removed by the last pop(). */
  topPrio = 0;
  topLeft = 0;
  topRight = 0;
  topAux = 0;

  get size(): number { return this.prio.length; }

  clear(): void {
    this.prio.length = 0; this.left.length = 0; this.right.length = 0; this.aux.length = 0;
  }

  private less(i: number, j: number): boolean {
    const a = this.prio[i]!, b = this.prio[j]!;
    return a < b || (a === b && this.left[i]! < this.left[j]!);
  }

  private swap(i: number, j: number): void {
    let t = this.prio[i]!; this.prio[i] = this.prio[j]!; this.prio[j] = t;
    t = this.left[i]!; this.left[i] = this.left[j]!; this.left[j] = t;
    t = this.right[i]!; this.right[i] = this.right[j]!; this.right[j] = t;
    t = this.aux[i]!; this.aux[i] = this.aux[j]!; this.aux[j] = t;
  }

  push(prio: number, left: number, right: number, aux: number): void {
    let i = this.prio.length;
    this.prio.push(prio); this.left.push(left); this.right.push(right); this.aux.push(aux);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the smallest entry into top*; false when empty. */
  pop(): boolean {
    const n = this.prio.length;
    if (n === 0) return false;
    this.topPrio = this.prio[0]!; this.topLeft = this.left[0]!;
    this.topRight = this.right[0]!; this.topAux = this.aux[0]!;
    const last = n - 1;
    if (last > 0) this.swap(0, last);
    this.prio.pop(); this.left.pop(); this.right.pop(); this.aux.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.less(l, m)) m = l;
      if (r < last && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return true;
  }
}

/**
 * An open-addressing hash map from a pair of non-negative ints to an int: the merge rank of each
 * token pair met so far. A JavaScript Map keyed by left * V + right (beyond 2^31) hashes heap
 * numbers and is several times slower.
 */
export class PairTable {
  private lefts: Int32Array;
  private rights: Int32Array;
  private values: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected = 1024) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.lefts = new Int32Array(cap).fill(-1);
    this.rights = new Int32Array(cap);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private slot(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (this.lefts[i] !== -1 && (this.lefts[i] !== a || this.rights[i] !== b)) i = (i + 1) & this.mask;
    return i;
  }

  /** The value of (a, b), or undefined. */
  get(a: number, b: number): number | undefined {
    const i = this.slot(a, b);
    return this.lefts[i] === -1 ? undefined : this.values[i];
  }

  /** Sets (a, b) unless it is already there (the first value wins: the lower merge rank). */
  setIfAbsent(a: number, b: number, v: number): void {
    const i = this.slot(a, b);
    if (this.lefts[i] !== -1) return;
    this.lefts[i] = a; this.rights[i] = b; this.values[i] = v;
    if (++this.size * 2 > this.mask) this.grow();
  }

  clear(): void {
    this.lefts.fill(-1);
    this.size = 0;
  }

  private grow(): void {
    const { lefts, rights, values } = this;
    const cap = lefts.length * 2;
    this.lefts = new Int32Array(cap).fill(-1);
    this.rights = new Int32Array(cap);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < lefts.length; i++) if (lefts[i] !== -1) this.setIfAbsent(lefts[i]!, rights[i]!, values[i]!);
  }
}
