// glassbox generate MODEL --prompt T --max-tokens N [sampler flags] [--seed S]: text, streamed as it
// is generated (or one JSON object with --json).

import type { Command } from './main.ts';
import { parse, num, flag, str, onePositional } from './args.ts';
import { loadModel, promptIds, backendFlag, PROMPT_OPTIONS } from './load.ts';
import { generateAsync } from '../engine/generate.ts';
import { resolveOptions } from '../engine/sampling/index.ts';

export const generate: Command = {
  summary: 'Generates up to N tokens. Temperature 0 is greedy; the same seed gives the same text.',
  usage: 'glassbox generate MODEL (--prompt T | --tokens 1,2,3) --max-tokens N [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--min-p 0.05] '
    + '[--typical-p 1] [--top-n-sigma 0] [--xtc-probability 0] [--xtc-threshold 0.1] [--dynatemp-range 0] [--dynatemp-exp 1] '
    + '[--repeat-penalty 1] [--presence-penalty 0] [--frequency-penalty 0] [--repeat-last-n 64] [--dry-multiplier 0] [--dry-base 1.75] [--dry-allowed-length 2] '
    + '[--mirostat 0|1|2] [--mirostat-tau 5] [--mirostat-eta 0.1] [--sampler-order top_k,top_p,...] [--seed S] [--backend cpu|webgpu] [--json]',
  async run(argv) {
    const p = parse('generate', argv, {
      ...PROMPT_OPTIONS,
      'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' },
      'top-p': { type: 'string' }, 'min-p': { type: 'string' }, 'repeat-penalty': { type: 'string' },
      'repeat-last-n': { type: 'string' }, seed: { type: 'string' }, 'ignore-eos': { type: 'boolean' },
      'typical-p': { type: 'string' }, 'top-n-sigma': { type: 'string' }, 'xtc-probability': { type: 'string' },
      'xtc-threshold': { type: 'string' }, 'dynatemp-range': { type: 'string' }, 'dynatemp-exp': { type: 'string' },
      'presence-penalty': { type: 'string' }, 'frequency-penalty': { type: 'string' }, 'dry-multiplier': { type: 'string' },
      'dry-base': { type: 'string' }, 'dry-allowed-length': { type: 'string' }, mirostat: { type: 'string' },
      'mirostat-tau': { type: 'string' }, 'mirostat-eta': { type: 'string' }, 'sampler-order': { type: 'string' },
    });
    const loaded = await loadModel(onePositional(p, 'generate'), str(p, 'tokenizer'), backendFlag(p));
    const prompt = promptIds(p, loaded, 'generate');
    const options = {
      maxTokens: num(p, 'max-tokens', 64, { min: 0, max: loaded.model.config.nCtx, integer: true }),
      temperature: num(p, 'temperature', 0.8, { min: 0 }),
      topK: num(p, 'top-k', 40, { min: 0, integer: true }),
      topP: num(p, 'top-p', 0.95, { min: 0, max: 1 }),
      minP: num(p, 'min-p', 0.05, { min: 0, max: 1 }),
      repeatPenalty: num(p, 'repeat-penalty', 1, { min: 0 }),
      repeatLastN: num(p, 'repeat-last-n', 64, { min: -1, integer: true }),
      typicalP: num(p, 'typical-p', 1, { min: 0, max: 1 }),
      topNSigma: num(p, 'top-n-sigma', 0, { min: 0 }),
      xtcProbability: num(p, 'xtc-probability', 0, { min: 0, max: 1 }),
      xtcThreshold: num(p, 'xtc-threshold', 0.1, { min: 0, max: 1 }),
      dynatempRange: num(p, 'dynatemp-range', 0, { min: 0 }),
      dynatempExponent: num(p, 'dynatemp-exp', 1, { min: 0 }),
      presencePenalty: num(p, 'presence-penalty', 0),
      frequencyPenalty: num(p, 'frequency-penalty', 0),
      dryMultiplier: num(p, 'dry-multiplier', 0, { min: 0 }),
      dryBase: num(p, 'dry-base', 1.75, { min: 1 }),
      dryAllowedLength: num(p, 'dry-allowed-length', 2, { min: 0, integer: true }),
      // llama.cpp's default breakers, as this tokenizer spells them
      drySequenceBreakers: loaded.tokenizer
        ? ['\n', ':', '"', '*'].map((b) => loaded.tokenizer!.encode(b, { bos: false })).filter((ids) => ids.length > 0)
        : [],
      mirostat: num(p, 'mirostat', 0, { min: 0, max: 2, integer: true }),
      mirostatTau: num(p, 'mirostat-tau', 5, { min: 0 }),
      mirostatEta: num(p, 'mirostat-eta', 0.1, { min: 0 }),
      ...(str(p, 'sampler-order') !== undefined ? { order: str(p, 'sampler-order')!.split(',').map((s) => s.trim()).filter((s) => s) } : {}),
      seed: num(p, 'seed', 0, { min: 0, max: 2 ** 32 - 1, integer: true }),
      stopAtEos: !flag(p, 'ignore-eos'),
      stopIds: loaded.tokenizer?.eogIds ?? [],
    };
    resolveOptions(options);   // a bad setting fails here, before any text is written
    const json = flag(p, 'json');
    const tok = loaded.tokenizer;
    const stream = tok?.decodeStream({ stripLeadingSpace: false, skipSpecial: true });
    if (!json && tok) process.stdout.write(tok.decode(prompt, { skipSpecial: true }));
    const generated: number[] = [];
    for await (const id of generateAsync(loaded.session, prompt, options)) {
      generated.push(id);
      if (!json && stream) process.stdout.write(stream.push(id));
    }
    if (json) {
      // text: the prompt and its continuation, as a reader would see them.
      const text = tok ? tok.decode([...prompt, ...generated], { skipSpecial: true }) : '';
      console.log(JSON.stringify({ ids: [...prompt, ...generated], generated, text }));
    } else {
      if (stream) process.stdout.write(stream.flush());
      process.stdout.write(tok ? '\n' : `${generated.join(',')}\n`);
    }
  },
};
