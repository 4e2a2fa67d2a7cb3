// Mirostat (Basu et al., 2021): instead of a fixed filter, a feedback loop that keeps the
// surprise of the chosen tokens near a target τ (in bits). The state μ is a running bound on
// the surprise: each step truncates the candidates by μ, draws, and moves μ by the error,
//   μ ← μ − η · (−log2 p(chosen) − τ),
// with p the chosen token's probability in the truncated, renormalised set. μ starts at 2τ.
// Both versions are pure: the state goes in and the new state comes out.

import { type Candidates, prefix, probsOf } from './candidates.ts';

export interface MirostatState {
  /** The current surprise bound, in bits. */
  mu: number;
}

export interface MirostatOptions {
  /** Target surprise τ, in bits. llama.cpp's default 5. */
  tau: number;
  /** Learning rate η. llama.cpp's default 0.1. */
  eta: number;
}

/** The state a run starts from: μ = 2τ. */
export function mirostatStart(tau: number): MirostatState {
  return { mu: 2 * tau };
}

/**
 * Mirostat 1's truncation: estimate the Zipf exponent s of the distribution from its `m` most
 * likely tokens (least squares of ln(p_i / p_{i+1}) on ln((i+1)/i)), then keep the top k with
 *   k = (ε · 2^μ / (1 − N^−ε))^(1/s),  ε = s − 1,
 * N the vocabulary size: the k for which a Zipf source's expected surprise is μ.
 */
export function mirostatV1Truncate(c: Candidates, mu: number, m: number, nVocab: number): Candidates {
  const n = c.ids.length;
  const probs = probsOf(c);
  let sumTB = 0, sumTT = 0;
  for (let i = 0; i < m - 1 && i < n - 1; i++) {
    const t = Math.log((i + 2) / (i + 1));
    const b = Math.log(probs[i]! / probs[i + 1]!);
    sumTB += t * b;
    sumTT += t * t;
  }
  const s = sumTB / sumTT, eps = s - 1;
  const kReal = Math.pow((eps * Math.pow(2, mu)) / (1 - Math.pow(nVocab, -eps)), 1 / s);
  // a flat or single-token set makes s 0 or NaN: keep everything rather than guess
  const k = Number.isNaN(kReal) ? n : Math.max(1, Math.min(n, Math.floor(Math.min(kReal, n))));
  return prefix(c, k, { s, k });
}

/** Mirostat 2's truncation: keep the prefix whose surprise −log2 p is at most μ (at least one). */
export function mirostatV2Truncate(c: Candidates, mu: number): Candidates {
  const n = c.ids.length;
  const probs = probsOf(c);
  let k = 0;
  while (k < n && -Math.log2(probs[k]!) <= mu) k++;
  return prefix(c, Math.max(k, 1), { k: Math.max(k, 1) });
}

/** μ after drawing a token of probability `p` (in the truncated set). */
export function mirostatUpdate(state: MirostatState, p: number, o: MirostatOptions): MirostatState {
  const surprise = -Math.log2(p);
  return { mu: state.mu - o.eta * (surprise - o.tau) };
}
