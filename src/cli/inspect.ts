// glassbox inspect MODEL: config, tensors (name, type, shape), tokenizer, size.

import type { Command } from './main.ts';
import { parse, str, flag, onePositional } from './args.ts';
import { modelSources } from './model-path.ts';
import { openModel } from '../formats/open.ts';
import { describeModel, formatBytes, formatCount } from '../formats/describe.ts';
import { createTokenizer } from '../tokenizer/tokenizer.ts';

export const inspect: Command = {
  summary: 'Config, tensors (name, type, shape), tokenizer and size of a model file.',
  usage: 'glassbox inspect MODEL [--tokenizer FILE] [--metadata] [--json]',
  async run(argv) {
    const p = parse('inspect', argv, { tokenizer: { type: 'string' }, metadata: { type: 'boolean' } });
    const files = await modelSources(onePositional(p, 'inspect'), str(p, 'tokenizer'));
    try {
      const model = await openModel(files.sources, { tokenizer: files.tokenizer });
      const summary = describeModel(model);
      const tok = model.tokenizer ? createTokenizer(model.tokenizer) : null;
      const tokenizer = tok && {
        kind: tok.kind, vocab_size: tok.vocabSize, bos_id: tok.bosId, eos_id: tok.eosId, add_bos: tok.addBos,
        chat_template: model.tokenizer?.chatTemplate != null,
      };
      if (flag(p, 'json')) {
        console.log(JSON.stringify({ ...summary, tokenizer }, null, 2));
        return;
      }
      const c = summary.config;
      const out: string[] = [];
      out.push(`${summary.files.map((f) => f.name).join(' + ')}: ${summary.format}, ${formatBytes(summary.bytes)}, ${formatCount(summary.parameters)} parameters`);
      out.push(`  ${c.name}: ${c.nLayers} layers, d_model ${c.dModel}, d_ffn ${c.dFfn}, ${c.nHeads} heads (${c.nKvHeads} kv, d_head ${c.dHead}), vocab ${c.vocabSize}, context ${c.nCtx}`);
      out.push(`  rms eps ${c.rmsEps}, rope theta ${c.ropeTheta}${c.ropeScaling ? ` (${c.ropeScaling.type} scaling x${c.ropeScaling.factor})` : ''}, ${summary.ropeLayout} RoPE rows, ${c.tiedEmbeddings ? 'tied' : 'separate'} unembedding, bos ${c.bosId}, eos ${c.eosId}`);
      out.push(`  types: ${summary.types.map((t) => `${t.type} x${t.tensors} (${formatBytes(t.bytes)})`).join(', ')}`);
      if (tokenizer) out.push(`  tokenizer: ${tokenizer.kind}, ${tokenizer.vocab_size} tokens, bos ${tokenizer.bos_id}, eos ${tokenizer.eos_id}${tokenizer.chat_template ? ', chat template' : ''}`);
      else out.push('  tokenizer: none in the file (give --tokenizer)');
      out.push('', 'tensors:');
      const w = Math.max(...summary.tensors.map((t) => t.name.length));
      for (const t of summary.tensors) {
        out.push(`  ${t.name.padEnd(w)}  ${t.type.padEnd(6)} [${t.shape.join(', ')}]  ${formatBytes(t.bytes)}`);
      }
      if (flag(p, 'metadata')) {
        out.push('', 'metadata:');
        for (const [k, v] of Object.entries(summary.metadata)) out.push(`  ${k} = ${JSON.stringify(v)}`);
      }
      console.log(out.join('\n'));
    } finally {
      await files.close();
    }
  },
};
