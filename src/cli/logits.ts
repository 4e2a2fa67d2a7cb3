// glassbox logits MODEL (--prompt T | --tokens 1,2,3) [--top N | --all]: raw logits per position.

import type { Command } from './main.ts';
import { parse, num, flag, str, onePositional } from './args.ts';
import { loadModel, promptIds, backendFlag, PROMPT_OPTIONS } from './load.ts';

/** Top n entries of one row: id, logit and softmax probability. */
export function topOfRow(row: Float32Array, n: number): { id: number; logit: number; prob: number }[] {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, n);
  return order.map((id) => ({ id, logit: row[id]!, prob: Math.exp(row[id]! - max) / sum }));
}

export const logits: Command = {
  summary: 'Raw logits of the last position (--all: every position), or the top N per position with probabilities.',
  usage: 'glassbox logits MODEL (--prompt T | --tokens 1,2,3) [--top N] [--all] [--backend cpu|webgpu] [--json]',
  async run(argv) {
    const p = parse('logits', argv, { ...PROMPT_OPTIONS, top: { type: 'string' }, all: { type: 'boolean' } });
    const loaded = await loadModel(onePositional(p, 'logits'), str(p, 'tokenizer'), backendFlag(p));
    const tokens = promptIds(p, loaded, 'logits');
    const all = flag(p, 'all');
    const top = str(p, 'top') === undefined ? 0 : num(p, 'top', 10, { min: 1, max: loaded.model.config.vocabSize, integer: true });
    const r = await loaded.session.runAsync(tokens, { logits: all ? 'all' : 'last' });
    const vocab = loaded.model.config.vocabSize;
    const rows: Float32Array[] = [];
    for (let i = 0; i * vocab < r.logits.length; i++) rows.push(r.logits.subarray(i * vocab, (i + 1) * vocab));
    if (top > 0) {
      const tops = rows.map((row) => topOfRow(row, top));
      if (flag(p, 'json')) return console.log(JSON.stringify({ tokens, top: tops }));
      const tok = loaded.tokenizer;
      tops.forEach((t, i) => {
        console.log(`position ${r.logitsStart + i}:`);
        for (const e of t) console.log(`  ${String(e.id).padStart(6)} ${JSON.stringify(tok ? tok.piece(e.id) : '').padEnd(16)} ${e.logit.toFixed(4).padStart(10)}  p=${e.prob.toFixed(4)}`);
      });
      return;
    }
    // Full rows: JSON only would be unreadable as text, so both forms print JSON.
    console.log(JSON.stringify({ tokens, logits: rows.map((row) => Array.from(row)) }));
  },
};
