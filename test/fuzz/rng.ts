// A small seeded generator for the fuzzer (xorshift128+ on 32-bit halves is overkill here: a
// splitmix32 stream is enough and is easy to re-derive from (seed, kind, index) for one input).

/** 32-bit FNV-1a of a string: turns a kind name into part of a seed. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class FuzzRng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }

  /** The generator for input `index` of `kind` in a run seeded `seed`: independent of every
   *  other input, so one input can be re-run alone (`--index`). */
  static forInput(seed: number, kind: string, index: number): FuzzRng {
    const r = new FuzzRng(seed ^ hashString(kind));
    r.s = (r.u32() ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
    r.u32();
    return r;
  }

  u32(): number {
    let z = (this.s = (this.s + 0x9e3779b9) >>> 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** Uniform in [0, n). */
  int(n: number): number { return n <= 0 ? 0 : Math.floor((this.u32() / 4294967296) * n); }
  /** Uniform in [a, b]. */
  range(a: number, b: number): number { return a + this.int(b - a + 1); }
  chance(p: number): boolean { return this.u32() / 4294967296 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  /** A length that is usually small and now and then large (fuzzing loves both). */
  size(max: number): number {
    const r = this.int(10);
    return r < 6 ? this.int(Math.min(16, max) + 1) : r < 9 ? this.int(Math.min(256, max) + 1) : this.int(max + 1);
  }
}
