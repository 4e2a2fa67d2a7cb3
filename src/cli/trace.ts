// glassbox trace MODEL --prompt T --hooks GLOB --out FILE.npz|.json: records named activations.

import { writeFileSync } from 'node:fs';
import type { Command } from './main.ts';
import { parse, str, flag, onePositional } from './args.ts';
import { loadModel, promptIds, backendFlag, PROMPT_OPTIONS } from './load.ts';
import { npy, zip } from './npz.ts';
import { UsageError } from '../engine/errors.ts';

export const trace: Command = {
  summary: 'Records the activations named by --hooks (a name, a comma list or a glob such as blocks.*.attn.hook_pattern) to .npz (numpy) or .json.',
  usage: 'glassbox trace MODEL (--prompt T | --tokens 1,2,3) --hooks GLOB[,GLOB] --out FILE.npz|FILE.json [--backend cpu|webgpu] [--json]',
  async run(argv) {
    const p = parse('trace', argv, { ...PROMPT_OPTIONS, hooks: { type: 'string' }, out: { type: 'string' } });
    const hooks = str(p, 'hooks');
    const out = str(p, 'out');
    if (!hooks) throw new UsageError('glassbox trace', '--hooks is required', "e.g. --hooks 'blocks.*.attn.hook_pattern'");
    if (!out || !/\.(npz|json)$/.test(out)) throw new UsageError('--out', 'must name a .npz or .json file');
    const loaded = await loadModel(onePositional(p, 'trace'), str(p, 'tokenizer'), backendFlag(p));
    const tokens = promptIds(p, loaded, 'trace');
    // The token ids always travel with the activations.
    const spec = [...hooks.split(',').map((s) => s.trim()).filter(Boolean), 'hook_tokens'];
    const { trace: t } = await loaded.session.runAsync(tokens, { capture: spec });
    const names = [...t.keys()];
    if (out.endsWith('.npz')) {
      const files = names.map((name) => ({ name: `${name}.npy`, data: npy(t.get(name)!.data, t.get(name)!.shape) }));
      writeFileSync(out, zip(files));
    } else {
      const obj: Record<string, { shape: number[]; data: number[] }> = {};
      for (const name of names) obj[name] = { shape: t.get(name)!.shape, data: Array.from(t.get(name)!.data) };
      writeFileSync(out, JSON.stringify({ tokens, activations: obj }));
    }
    const summary = { out, tokens: tokens.length, activations: names.map((n) => ({ name: n, shape: t.get(n)!.shape })) };
    if (flag(p, 'json')) console.log(JSON.stringify(summary));
    else console.log(`${out}: ${names.length} activations over ${tokens.length} tokens\n${summary.activations.map((a) => `  ${a.name} [${a.shape.join(', ')}]`).join('\n')}`);
  },
};
