// The slices that feed the notebook's overview cells (issue 8), next to those of trace.ts: the
// attention summary a run recorded, one whole logits row, and a PCA of residual rows. Each returns
// fresh arrays (the engine transfers them) and says, in a UsageError, what to capture or pass when
// the trace cannot answer.

import type { ModelConfig } from './config.ts';
import { UsageError } from './errors.ts';
import { ATTENTION_HOOKS, canonicalHookName } from './hooks.ts';
import { pca } from './pca.ts';
import {
  checkPosition, positionRange, traceEntry, type AttentionSummarySlice, type LogitsQuery, type LogitsSlice,
  type OutputHead, type PcaQuery, type PcaSlice, type SliceMeta, type StoredTrace,
} from './trace.ts';

type Body<T> = Omit<T, keyof SliceMeta>;

export function attentionSummarySlice(t: StoredTrace): Body<AttentionSummarySlice> {
  const s = t.attentionSummary;
  if (!s) {
    throw new UsageError(`trace ${t.handle.id}`, 'holds no attention summary',
      'Ask the run for one: run({ tokens, summary: { attention: { size: 24 } } })');
  }
  return {
    nLayers: s.nLayers, nHeads: s.nHeads, nPos: s.nPos, size: s.size,
    thumbs: s.thumbs.slice(), entropy: s.entropy.slice(), first: s.first.slice(), prev: s.prev.slice(),
    induction: s.induction.slice(),
  };
}

/**
 * The logits row at a position: the stored row when the trace keeps it (the run's own logits, or
 * a captured hook_logits), else the last layer's residual through the session's output head —
 * the final RMSNorm and the unembedding with the same kernels (the logit lens's path), which on
 * the CPU backend gives the model's logits bit for bit.
 */
export function logitsSlice(c: ModelConfig, head: OutputHead, t: StoredTrace, q: LogitsQuery = {}): Body<LogitsSlice> {
  const n = t.handle.nPos, V = c.vocabSize, d = c.dModel;
  const p = checkPosition(q.position ?? n - 1, n, 'logits position');
  const start = t.handle.logitsStart;
  if (p >= start) return { position: p, data: t.logits.slice((p - start) * V, (p - start + 1) * V) };
  const captured = t.data.get('hook_logits');                                 // [nPos, vocab]
  if (captured) return { position: p, data: captured.data.slice(p * V, (p + 1) * V) };
  const last = `blocks.${c.nLayers - 1}.hook_resid_post`;
  const resid = t.data.get(last);                                             // [nPos, d_model]
  if (!resid) {
    throw new UsageError(`trace ${t.handle.id}`, `holds logits from position ${start} on, not ${p}, and no ${last} to compute them from`,
      `Run with logits: 'all', or capture '${last}'`);
  }
  return { position: p, data: head(resid.data.slice(p * d, (p + 1) * d), 1) };
}

/** Most components a PCA slice gives (a plot shows two or three). */
export const PCA_MAX_COMPONENTS = 16;

export function pcaSlice(t: StoredTrace, q: PcaQuery): Body<PcaSlice> {
  if (!q || !Array.isArray(q.hooks) || q.hooks.length === 0) {
    throw new UsageError('pca hooks', 'must be a non-empty list of hook names', "For example hooks: ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']");
  }
  const n = t.handle.nPos;
  const [p0, p1] = positionRange(q.positions, n, 'pca positions');
  const hooks = q.hooks.map((h) => {
    if (typeof h !== 'string') throw new UsageError('pca hooks', `${String(h)} is not a hook name`);
    return canonicalHookName(h);
  });
  const entries = hooks.map((name) => {
    const leaf = name.slice(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
    if (ATTENTION_HOOKS.has(leaf)) throw new UsageError('pca hooks', `${name} is an attention pattern ([heads, q, k]), not rows of positions`, 'Use [pos, d_model] hooks such as blocks.*.hook_resid_post');
    return traceEntry(t, name, 'pca rows');
  });
  const dim = entries[0]!.data.length / n;
  entries.forEach((e, i) => {
    if (e.data.length / n !== dim) {
      throw new UsageError('pca hooks', `${hooks[i]} has rows of ${e.data.length / n} values but ${hooks[0]} of ${dim}`, 'Fit hooks of one row size together (e.g. the residual stream of every layer)');
    }
  });
  const k = q.components ?? 2;
  const most = Math.min(dim, PCA_MAX_COMPONENTS);
  if (!Number.isInteger(k) || k < 1 || k > most) throw new UsageError('pca components', `${k} must be an integer from 1 to ${most}`);
  // views of the asked positions: nothing is copied
  const r = pca(entries.map((e) => e.data.subarray(p0 * dim, p1 * dim)), dim, k);
  return { hooks, positionStart: p0, nPos: p1 - p0, components: k, points: r.points, explained: Float32Array.from(r.explained) };
}
