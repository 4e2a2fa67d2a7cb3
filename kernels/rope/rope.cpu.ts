// Rotary position embeddings (RoPE).
//
// LAYOUT: glassbox rotates ADJACENT pairs: within each head, the pair (x[2i], x[2i+1]) is turned
// by the angle pos · freq[i]. This is the layout of GGUF files converted by llama.cpp and of
// llama2.c checkpoints; Hugging Face checkpoints (pairs (x[i], x[i + d_head/2])) have their
// wq/wk rows permuted to this layout when they are loaded (src/formats), so there is one RoPE here.
//
// FREQUENCIES: freq[i] = theta^(−2i/d_head), i < d_head/2, then
//   - "linear" scaling (position interpolation): freq / factor;
//   - "llama3" scaling (Llama 3.1/3.2): long wavelengths (> originalContext / lowFreqFactor) are
//     divided by factor, short ones (< originalContext / highFreqFactor) kept, and the band
//     between blends the two smoothly;
//   - per-frequency factors from a GGUF's `rope_freqs` tensor (llama.cpp stores the llama3
//     scaling that way): freq / factors[i]. When present they replace the "llama3" formula, which
//     they encode, rather than being applied on top of it.
//
// Angles are computed in f64 and their cos/sin stored as f32 tables, one row per position, grown
// as positions are used (never n_ctx rows up front: Llama 3.1 has a 128k context).

import type { RopeScaling } from '../../src/engine/config.ts';

export interface RopeParams {
  dHead: number;
  theta: number;
  scaling: RopeScaling | null;
  /** GGUF `rope_freqs`: [d_head / 2] divisors of each frequency, or null. */
  freqFactors: Float32Array | null;
}

/** The rotation frequency of each adjacent pair: [d_head / 2], in radians per position. */
export function ropeFrequencies(p: RopeParams): Float64Array {
  const half = p.dHead / 2;
  const freqs = new Float64Array(half);
  const s = p.scaling;
  for (let i = 0; i < half; i++) {
    let f = Math.pow(p.theta, (-2 * i) / p.dHead);
    if (p.freqFactors) {
      f /= p.freqFactors[i]!;
    } else if (s?.type === 'llama3') {
      const wavelen = (2 * Math.PI) / f;
      const lowFreqWavelen = s.originalContext / s.lowFreqFactor;
      const highFreqWavelen = s.originalContext / s.highFreqFactor;
      if (wavelen > lowFreqWavelen) {
        f /= s.factor;
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
    if (s?.type === 'linear') f /= s.factor;
    freqs[i] = f;
  }
  return freqs;
}

/** cos and sin of pos · freq[i], per position: [positions, d_head / 2] each, grown on demand. */
export class RopeTable {
  readonly freqs: Float64Array;          // [d_head / 2]
  readonly half: number;
  cos = new Float32Array(0);              // [capacity, d_head / 2]
  sin = new Float32Array(0);              // [capacity, d_head / 2]
  private capacity = 0;

  constructor(params: RopeParams) {
    this.freqs = ropeFrequencies(params);
    this.half = params.dHead / 2;
  }

  /** Makes rows 0 .. nPos−1 available (doubling, so the cost over a run stays linear). */
  ensure(nPos: number): void {
    if (nPos <= this.capacity) return;
    const cap = Math.max(nPos, this.capacity * 2, 64);
    const h = this.half;
    const cos = new Float32Array(cap * h), sin = new Float32Array(cap * h);
    cos.set(this.cos); sin.set(this.sin);
    for (let pos = this.capacity; pos < cap; pos++) {
      for (let i = 0; i < h; i++) {
        const angle = pos * this.freqs[i]!;
        cos[pos * h + i] = Math.cos(angle);
        sin[pos * h + i] = Math.sin(angle);
      }
    }
    this.cos = cos; this.sin = sin; this.capacity = cap;
  }
}

/**
 * Rotates x: [n, nHeads, dHead] in place, row t being at absolute position start + t.
 * Adjacent pairs: (x[2i], x[2i+1]) → (x[2i]·cos − x[2i+1]·sin, x[2i]·sin + x[2i+1]·cos).
 */
export function rope(x: Float32Array, n: number, nHeads: number, dHead: number, start: number, table: RopeTable): void {
  table.ensure(start + n);
  const half = dHead / 2;
  const { cos, sin } = table;
  for (let t = 0; t < n; t++) {
    const c = (start + t) * half;
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * dHead;
      for (let i = 0; i < half; i++) {
        const x0 = x[o + 2 * i]!, x1 = x[o + 2 * i + 1]!;
        const fc = cos[c + i]!, fs = sin[c + i]!;
        x[o + 2 * i] = x0 * fc - x1 * fs;
        x[o + 2 * i + 1] = x0 * fs + x1 * fc;
      }
    }
  }
}
