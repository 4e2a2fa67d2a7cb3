// The sampler chain's settings: names and defaults follow llama.cpp's (camelCased), and every
// stage is off by default except temperature 1, so `{}` samples from the plain softmax.
// Validation names the field, what is wrong, and what it must be.

import { UsageError } from '../errors.ts';

/** The reorderable stages, with llama.cpp's --sampler-seq names. The draw always comes last. */
export const STAGES = ['logit_bias', 'penalties', 'dry', 'top_n_sigma', 'top_k', 'typ_p', 'top_p', 'min_p', 'xtc', 'temperature'] as const;
export type StageName = (typeof STAGES)[number];

/** llama.cpp's default order (logit bias, which llama.cpp always applies first, included). */
export const DEFAULT_ORDER: readonly StageName[] = Object.freeze([...STAGES]);
/** With mirostat on, llama.cpp runs only the logit bias and the temperature before it. */
export const MIROSTAT_ORDER: readonly StageName[] = Object.freeze(['logit_bias', 'temperature'] as StageName[]);

export interface ChainOptions {
  /** The stages in the order they run; a stage left out does not run. 'dist' may end the list (llama.cpp's spelling). */
  order?: readonly string[];
  /** Added to the logit of each listed id; −Infinity bans it. A Map or an {id: bias} object. */
  logitBias?: ReadonlyMap<number, number> | Readonly<Record<number, number>>;
  /** Repetition penalty (divide positive logits, multiply negative) of tokens in the window; 1 = off. */
  repeatPenalty?: number;
  /** Subtracted per occurrence in the window; 0 = off. */
  frequencyPenalty?: number;
  /** Subtracted once if the token is in the window; 0 = off. */
  presencePenalty?: number;
  /** The penalties' window: the last N tokens; −1 = all, 0 = off. Default 64. */
  repeatLastN?: number;
  /** DRY penalty scale; 0 = off. */
  dryMultiplier?: number;
  /** DRY growth per token of repeat; ≥ 1. Default 1.75. */
  dryBase?: number;
  /** Repeats this long are free. Default 2. */
  dryAllowedLength?: number;
  /** DRY's window: the last N tokens; −1 = all (default), 0 = off. */
  dryLastN?: number;
  /** Token sequences a DRY repeat may not cross (token ids; tokenize "\n", ":", "\"", "*" for llama.cpp's defaults). */
  drySequenceBreakers?: readonly (readonly number[])[];
  /** Keep logits ≥ max − n·σ; 0 = off. */
  topNSigma?: number;
  /** Keep the k most likely; 0 = off. */
  topK?: number;
  /** Locally typical sampling mass; 1 = off. */
  typicalP?: number;
  /** Nucleus mass; 1 = off, 0 keeps the most likely alone. */
  topP?: number;
  /** Keep tokens ≥ minP × the most likely's probability; 0 = off. */
  minP?: number;
  /** How often XTC acts; 0 = off. */
  xtcProbability?: number;
  /** XTC's "top choice" probability; > 0.5 = off. Default 0.1. */
  xtcThreshold?: number;
  /** Temperature; 0 = greedy. Default 1. */
  temperature?: number;
  /** Dynamic temperature range (± around temperature); 0 = off. */
  dynatempRange?: number;
  /** Dynamic temperature exponent. Default 1. */
  dynatempExponent?: number;
  /** The fewest candidates typical-p, top-p, min-p and XTC leave. Default 1. */
  minKeep?: number;
  /** 0 = off (draw from the distribution), 1 or 2 = mirostat's version. */
  mirostat?: number;
  /** Mirostat's target surprise τ in bits. Default 5. */
  mirostatTau?: number;
  /** Mirostat's learning rate η. Default 0.1. */
  mirostatEta?: number;
  /** Mirostat 1: how many top tokens estimate the Zipf exponent. Default 100. */
  mirostatM?: number;
}

/** Options after validation: every field present, the bias a Map, the order resolved. */
export interface ResolvedOptions extends Required<Omit<ChainOptions, 'order' | 'logitBias'>> {
  order: readonly StageName[];
  logitBias: ReadonlyMap<number, number>;
}

const DEFAULTS = {
  repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, repeatLastN: 64,
  dryMultiplier: 0, dryBase: 1.75, dryAllowedLength: 2, dryLastN: -1, drySequenceBreakers: [] as readonly (readonly number[])[],
  topNSigma: 0, topK: 0, typicalP: 1, topP: 1, minP: 0, xtcProbability: 0, xtcThreshold: 0.1,
  temperature: 1, dynatempRange: 0, dynatempExponent: 1, minKeep: 1,
  mirostat: 0, mirostatTau: 5, mirostatEta: 0.1, mirostatM: 100,
};

function bad(field: string, value: unknown, want: string): UsageError {
  const shown = typeof value === 'number' || typeof value === 'string' ? String(value) : JSON.stringify(value);
  return new UsageError('sampler', `${field} is ${shown}; it must be ${want}`);
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);

/** Checks every field and fills in the defaults. Throws UsageError naming the first bad field. */
export function resolveOptions(o: ChainOptions = {}): ResolvedOptions {
  const r = { ...DEFAULTS } as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) r[k] = v;
  const num = (f: string, ok: (v: number) => boolean, want: string) => {
    if (!isNum(r[f]) || !ok(r[f] as number)) throw bad(f, r[f], want);
  };
  const int = (f: string, min: number, want: string) => {
    if (!isInt(r[f]) || (r[f] as number) < min) throw bad(f, r[f], want);
  };
  num('repeatPenalty', (v) => v > 0, 'a number > 0 (1 turns it off)');
  num('frequencyPenalty', () => true, 'a finite number (0 turns it off)');
  num('presencePenalty', () => true, 'a finite number (0 turns it off)');
  int('repeatLastN', -1, 'an integer ≥ −1 (−1: the whole history, 0: off)');
  num('dryMultiplier', (v) => v >= 0, 'a number ≥ 0 (0 turns it off)');
  num('dryBase', (v) => v >= 1, 'a number ≥ 1');
  int('dryAllowedLength', 0, 'an integer ≥ 0');
  int('dryLastN', -1, 'an integer ≥ −1 (−1: the whole history, 0: off)');
  const breakers = r.drySequenceBreakers;
  if (!Array.isArray(breakers) || !breakers.every((b) => Array.isArray(b) && b.length > 0 && b.every((id) => isInt(id) && id >= 0))) {
    throw bad('drySequenceBreakers', breakers, 'a list of non-empty lists of token ids (integers ≥ 0)');
  }
  num('topNSigma', (v) => v >= 0, 'a number ≥ 0 (0 turns it off)');
  int('topK', 0, 'an integer ≥ 0 (0 turns it off)');
  num('typicalP', (v) => v >= 0 && v <= 1, 'in [0, 1] (1 turns it off)');
  num('topP', (v) => v >= 0 && v <= 1, 'in [0, 1] (1 turns it off)');
  num('minP', (v) => v >= 0 && v <= 1, 'in [0, 1] (0 turns it off)');
  num('xtcProbability', (v) => v >= 0 && v <= 1, 'in [0, 1] (0 turns it off)');
  num('xtcThreshold', (v) => v >= 0 && v <= 1, 'in [0, 1] (above 0.5 turns it off)');
  num('temperature', (v) => v >= 0, 'a number ≥ 0 (0 is greedy)');
  num('dynatempRange', (v) => v >= 0, 'a number ≥ 0 (0 turns dynamic temperature off)');
  num('dynatempExponent', (v) => v >= 0, 'a number ≥ 0');
  int('minKeep', 0, 'an integer ≥ 0');
  if (r.mirostat !== 0 && r.mirostat !== 1 && r.mirostat !== 2) throw bad('mirostat', r.mirostat, '0 (off), 1 or 2');
  num('mirostatTau', (v) => v >= 0, 'a number ≥ 0 (bits)');
  num('mirostatEta', (v) => v >= 0, 'a number ≥ 0');
  int('mirostatM', 1, 'an integer ≥ 1');

  const bias = new Map<number, number>();
  const given = o.logitBias;
  if (given !== undefined) {
    if (typeof given !== 'object' || given === null) throw bad('logitBias', given, 'a Map or an object from token id to bias');
    const entries = given instanceof Map ? [...given.entries()] : Object.entries(given).map(([k, v]) => [Number(k), v] as const);
    for (const [id, v] of entries) {
      if (!isInt(id) || id < 0) throw bad(`logitBias key ${String(id)}`, id, 'a token id (an integer ≥ 0)');
      if (!(typeof v === 'number' && (Number.isFinite(v) || v === -Infinity))) throw bad(`logitBias[${id}]`, v, 'a finite number, or −Infinity to ban the token');
      bias.set(id, v);
    }
  }

  let order: readonly StageName[];
  if (o.order === undefined) order = r.mirostat === 0 ? DEFAULT_ORDER : MIROSTAT_ORDER;
  else {
    if (!Array.isArray(o.order)) throw bad('order', o.order, `a list of stage names from ${STAGES.join(', ')}`);
    const names = o.order.at(-1) === 'dist' ? o.order.slice(0, -1) : o.order;
    const seen = new Set<string>();
    for (const name of names) {
      if (!(STAGES as readonly string[]).includes(name)) {
        const hint = name === 'dist' ? "'dist' (the draw) can only come last" : `the stages are ${STAGES.join(', ')}`;
        throw new UsageError('sampler', `order has an unknown stage '${String(name)}'`, hint);
      }
      if (seen.has(name)) throw new UsageError('sampler', `order lists '${name}' twice`, 'Each stage runs at most once; remove the repeat');
      seen.add(name);
    }
    order = Object.freeze(names.slice() as StageName[]);
  }
  const out: ResolvedOptions = Object.freeze({ ...(r as unknown as ResolvedOptions), order, logitBias: bias });
  resolved.add(out);
  return out;
}

const resolved = new WeakSet<object>();

/** Whether `o` came from resolveOptions (so runChain need not check it again). */
export function isResolved(o: object): o is ResolvedOptions {
  return resolved.has(o);
}
