// The cell kinds a notebook knows: for each, how its fenced body is read, the schema its settings
// are checked against, and what it reads (the edges of the reactive graph). Adding a kind of cell
// is one `registerCellKind` line here plus one element in cells/.

import { UsageError } from '../engine/errors.ts';
import type { ModelConfig } from '../engine/config.ts';
import type { Cell } from './format.ts';
import type { Problem, Scalar, Settings, Value } from './settings.ts';

// ---------------------------------------------------------------------------------------------
// Schemas: small value checkers that name what they expect

/** What a bound may depend on: the loaded model's shape, when one is loaded. */
export interface CheckContext {
  config?: Pick<ModelConfig, 'nLayers' | 'nHeads' | 'nCtx' | 'vocabSize'>;
}

export interface FieldSpec {
  /** Words for the message: "an integer ≥ 0", "true or false". */
  readonly expected: string;
  /** null when the value fits; otherwise the reason, without the key (the caller names it). */
  check(v: Value, ctx: CheckContext): string | null;
  readonly default?: Value;
  readonly required?: boolean;
}
export type Schema = Readonly<Record<string, FieldSpec>>;

const show = (v: Value): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.join(', ')}]` : String(v));
const mismatch = (f: FieldSpec, v: Value) => `expected ${f.expected}, got ${show(v)}`;
type Opts = { default?: Value; required?: boolean };

export function str(opts: Opts = {}): FieldSpec {
  return { ...opts, expected: 'a string', check(v) { return typeof v === 'string' ? null : mismatch(this, v); } };
}

export function bool(opts: Opts = {}): FieldSpec {
  return { ...opts, expected: 'true or false', check(v) { return typeof v === 'boolean' ? null : mismatch(this, v); } };
}

/** A number in [min, max]; `integer` for counts and indices; `below` bounds it by the loaded model. */
export function num(o: Opts & { min?: number; max?: number; minExclusive?: boolean; integer?: boolean;
  below?: [what: string, of: (c: NonNullable<CheckContext['config']>) => number] } = {}): FieldSpec {
  const range = o.min !== undefined && o.max !== undefined ? ` in ${o.minExclusive ? '(' : '['}${o.min}, ${o.max}]`
    : o.min !== undefined ? ` ${o.minExclusive ? '>' : '≥'} ${o.min}` : o.max !== undefined ? ` ≤ ${o.max}` : '';
  return {
    default: o.default, required: o.required,
    expected: `${o.integer ? 'an integer' : 'a number'}${range}`,
    check(v, ctx) {
      if (typeof v !== 'number' || (o.integer && !Number.isInteger(v))) return mismatch(this, v);
      if (o.min !== undefined && (o.minExclusive ? v <= o.min : v < o.min)) return mismatch(this, v);
      if (o.max !== undefined && v > o.max) return mismatch(this, v);
      if (o.below && ctx.config) {
        const n = o.below[1](ctx.config);
        if (v >= n) return `${v} is out of range: the loaded model has ${n} ${o.below[0]} (0 to ${n - 1})`;
      }
      return null;
    },
  };
}

export function int(o: Parameters<typeof num>[0] = {}): FieldSpec {
  return num({ ...o, integer: true });
}

/** One of the given words. */
export function oneOf(words: readonly string[], opts: Opts = {}): FieldSpec {
  return { ...opts, expected: words.map((w) => JSON.stringify(w)).join(' or '),
    check(v) { return typeof v === 'string' && words.includes(v) ? null : mismatch(this, v); } };
}

/** A list (`[a, b]` or `- a` lines) whose items fit `item`; a single item is accepted as a list of one. */
export function list(item: FieldSpec, opts: Opts = {}): FieldSpec {
  return { ...opts, expected: `a list of ${item.expected.replace(/^an? /, '')}s`,
    check(v, ctx) {
      const items = Array.isArray(v) ? (v as Scalar[]) : [v as Scalar];
      for (const [i, x] of items.entries()) {
        const bad = item.check(x, ctx);
        if (bad) return Array.isArray(v) ? `item ${i + 1}: ${bad}` : mismatch(this, v);
      }
      return null;
    } };
}

/** Either of several specs ("all" or a list of head indices). */
export function either(...specs: FieldSpec[]): FieldSpec {
  return { default: specs[0]!.default, expected: specs.map((s) => s.expected).join(', or '),
    check(v, ctx) {
      const results = specs.map((s) => s.check(v, ctx));
      if (results.includes(null)) return null;
      // Report the bound message of the spec whose type matched, rather than the generic one.
      const typed = results.find((r) => r && !r.startsWith('expected'));
      return typed ?? mismatch(this, v);
    } };
}

// ---------------------------------------------------------------------------------------------
// Cell kinds

/**
 * An edge of the reactive graph.
 * - `{ cell }`: the other cell's output (this cell recomputes after it, whenever it recomputes);
 * - `{ cell, key }`: one setting of another cell (a selected token or head, a shared slider);
 * - `{ input }`: something outside the document ('model': the loaded model).
 */
export type Dependency = { cell: string; key?: undefined; input?: undefined } | { cell: string; key: string; input?: undefined } | { input: string; cell?: undefined; key?: undefined };

/** What a kind's `reads` can ask about the notebook around the cell. Reads must depend on nothing
 *  else (the graph reuses a cell's answer while its settings, the prompt above and names stay). */
export interface ReadContext {
  readonly cell: Cell;
  /** The prompt this cell reads: the one named by `ref` (an id or a name), else the nearest
   *  prompt cell above. Empty (and a problem recorded) when there is none. */
  prompt(ref: Value | undefined): Dependency[];
  /** A cell by id or name. */
  find(ref: string): Cell | undefined;
  /** Records a problem that stops the cell from computing (an unresolved reference). */
  problem(message: string): void;
}

export interface CellKind {
  readonly kind: string;
  /** 'settings': the fenced body is `key: value` lines. 'text': the body is the text verbatim
   *  (settings.text), other settings sit in the info string (```prompt chat name=story).
   *  'prose': not fenced; the Markdown between cells (only the built-in markdown kind). */
  readonly body: 'settings' | 'text' | 'prose';
  readonly schema: Schema;
  reads(settings: Settings, ctx: ReadContext): Dependency[];
  /** Settings that only change how the cell is drawn (a highlighted head, a selected token):
   *  changing one recomputes nothing in the cell itself, only cells that read that key. */
  readonly view: readonly string[];
  readonly label: string;
  /** Its output is Tokenized-shaped (prompt, generate): other cells may name it as their prompt. */
  readonly tokens?: boolean;
}

export interface CellKindInput {
  kind: string;
  body?: CellKind['body'];
  schema: Schema;
  reads?: CellKind['reads'];
  view?: readonly string[];
  label?: string;
  tokens?: boolean;
}

const KIND_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

export class CellRegistry {
  private readonly kinds = new Map<string, CellKind>();

  register(input: CellKindInput): CellKind {
    if (!KIND_NAME.test(input.kind)) {
      throw new UsageError(`cell kind "${input.kind}"`, 'a kind is lowercase letters, digits and single hyphens', 'Rename it, e.g. "next-token"');
    }
    if (input.kind === 'unknown' || this.kinds.has(input.kind)) {
      throw new UsageError(`cell kind "${input.kind}"`, 'is already registered', 'Pick another name');
    }
    const kind: CellKind = {
      kind: input.kind,
      body: input.body ?? 'settings',
      schema: input.schema,
      reads: input.reads ?? (() => []),
      view: ['name', ...(input.view ?? [])],
      label: input.label ?? input.kind,
      tokens: input.tokens ?? input.kind === 'prompt',
    };
    this.kinds.set(kind.kind, kind);
    return kind;
  }

  get(kind: string): CellKind | undefined { return this.kinds.get(kind); }
  has(kind: string): boolean { return this.kinds.has(kind); }
  list(): CellKind[] { return [...this.kinds.values()]; }
}

/**
 * Checks settings against the kind's schema. Wrong types and values out of range are errors that
 * name the key and what it expects; unknown keys are warnings (they are kept in the text).
 */
export function validateSettings(kind: CellKind, settings: Settings, ctx: CheckContext = {}): Problem[] {
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(settings)) {
    const spec = kind.schema[key];
    if (!spec) {
      problems.push({ severity: 'warning', key, message: `${kind.kind} cell: unknown setting "${key}" (kept as written; this kind reads ${Object.keys(kind.schema).join(', ')})` });
      continue;
    }
    const bad = spec.check(value, ctx);
    if (bad) problems.push({ severity: 'error', key, message: `${kind.kind} cell: "${key}": ${bad}` });
  }
  for (const [key, spec] of Object.entries(kind.schema)) {
    if (spec.required && !(key in settings)) {
      problems.push({ severity: 'error', key, message: `${kind.kind} cell: "${key}" is missing; it must be ${spec.expected}` });
    }
  }
  return problems;
}

/** The settings with each missing key's default filled in (what a cell computes with). */
export function withDefaults(kind: CellKind, settings: Settings): Settings {
  const out: Record<string, Value> = {};
  for (const [key, spec] of Object.entries(kind.schema)) if (spec.default !== undefined) out[key] = spec.default;
  return { ...out, ...settings };
}

// ---------------------------------------------------------------------------------------------
// The kinds of issue 7 (markdown, prompt, model) and the schemas of issue 8's visual cells, so
// that the demo notebooks parse and validate before their elements exist.

const name = str();
const promptRef = str();
const readsPrompt: CellKind['reads'] = (s, ctx) => ctx.prompt(s['prompt']);

export function registerBuiltins(r: CellRegistry): CellRegistry {
  r.register({ kind: 'markdown', body: 'prose', schema: { text: str() }, label: 'Text' });
  r.register({
    kind: 'prompt', body: 'text', label: 'Prompt',
    schema: { text: str({ default: '' }), chat: bool({ default: false }), bos: bool(), name,
      selected: int({ min: 0 }) },
    reads: () => [{ input: 'model' }],     // tokens need the model's tokenizer
    view: ['selected'],
  });
  r.register({ kind: 'model', label: 'Model', schema: { block: int({ min: 0, below: ['blocks', (c) => c.nLayers] }), name },
    reads: () => [{ input: 'model' }], view: ['block'] });
  const layerOf = (o: Parameters<typeof int>[0] = {}) => int({ min: 0, below: ['layers', (c) => c.nLayers], ...o });
  const positionSpec = either(oneOf(['last'], { default: 'last' }), int({ min: 0, below: ['positions of context', (c) => c.nCtx] }));
  r.register({
    // head and mean recompute: on a long prompt the cell fetches only the head it shows
    // (src/app/compute.ts); on a short one the recompute reuses the prompt's trace (no model run)
    kind: 'attention', label: 'Attention', reads: readsPrompt, view: ['heads'],
    schema: {
      layer: layerOf({ default: 0 }),
      heads: either(oneOf(['all'], { default: 'all' }), list(int({ min: 0, below: ['heads', (c) => c.nHeads] }))),
      head: int({ min: 0, below: ['heads', (c) => c.nHeads] }),
      // view decides whether the every-layer summary is fetched (the overview), sort whether a long
      // prompt's pooled heads come with their layer's statistics: both recompute.
      view: oneOf(['heads', 'heatmap', 'lines', 'from', 'overview'], { default: 'heads' }),
      sort: oneOf(['index', 'entropy', 'first', 'prev', 'induction'], { default: 'index' }),
      mean: bool({ default: false }),
      prompt: promptRef, name,
    },
  });
  r.register({
    kind: 'next-token', label: 'Next token', reads: readsPrompt,
    // The sampler controls redraw from the cached logits row: they never rerun the model.
    view: ['temperature', 'top_k', 'top_p', 'min_p', 'show'],
    schema: {
      temperature: num({ min: 0, default: 1 }),
      top_k: int({ min: 0, default: 0 }),
      top_p: num({ min: 0, max: 1, minExclusive: true, default: 1 }),
      min_p: num({ min: 0, max: 1, default: 0 }),
      show: int({ min: 1, max: 200, default: 20 }),
      position: positionSpec,
      target: str(),
      prompt: promptRef, name,
    },
  });
  // The sampler chain's settings (llama.cpp's names), shared by the sampling and generate cells:
  // every one only changes the drawing or the next steps, never the model's run (view keys).
  const sampler: Record<string, FieldSpec> = {
    temperature: num({ min: 0, default: 1 }),
    dynatemp_range: num({ min: 0, default: 0 }), dynatemp_exponent: num({ min: 0, default: 1 }),
    top_k: int({ min: 0, default: 0 }), top_p: num({ min: 0, max: 1, default: 1 }), min_p: num({ min: 0, max: 1, default: 0 }),
    typical_p: num({ min: 0, max: 1, default: 1 }), top_n_sigma: num({ min: 0, default: 0 }),
    xtc_probability: num({ min: 0, max: 1, default: 0 }), xtc_threshold: num({ min: 0, max: 1, default: 0.1 }),
    repeat_penalty: num({ min: 0, minExclusive: true, default: 1 }), frequency_penalty: num({ min: -2, max: 2, default: 0 }),
    presence_penalty: num({ min: -2, max: 2, default: 0 }), repeat_last_n: int({ min: -1, default: 64 }),
    dry_multiplier: num({ min: 0, default: 0 }), dry_base: num({ min: 1, default: 1.75 }), dry_allowed_length: int({ min: 0, default: 2 }),
    mirostat: int({ min: 0, max: 2, default: 0 }), mirostat_tau: num({ min: 0, default: 5 }), mirostat_eta: num({ min: 0, default: 0.1 }),
    order: list(oneOf(['logit_bias', 'penalties', 'dry', 'top_n_sigma', 'top_k', 'typ_p', 'top_p', 'min_p', 'xtc', 'temperature'])),
    seed: int({ min: 0, max: 0xffffffff, default: 0 }),
  };
  const samplerKeys = Object.keys(sampler);
  r.register({
    kind: 'sampling', label: 'Sampling', reads: readsPrompt,
    view: [...samplerKeys, 'show'],
    schema: { ...sampler, show: int({ min: 1, max: 40, default: 12 }), prompt: promptRef, name },
  });
  r.register({
    kind: 'generate', label: 'Generate', tokens: true,
    // `sampler` names a sampling cell whose settings the steps use (read when a step runs).
    reads: (s, ctx) => {
      const ref = s['sampler'];
      if (typeof ref === 'string' && ref && ctx.find(ref)?.kind !== 'sampling') ctx.problem(`"sampler: ${ref}" names no sampling cell; use a sampling cell's name or id`);
      return ctx.prompt(s['prompt']);
    },
    // branches and branch change the tokens (the output): not view keys.
    view: [...samplerKeys, 'sampler', 'max_tokens', 'color', 'compare'],
    schema: {
      ...sampler, sampler: str(), max_tokens: int({ min: 1, max: 100000, default: 64 }),
      color: oneOf(['before', 'after'], { default: 'before' }), compare: str(),
      branches: str(), branch: str(),
      prompt: promptRef, name,
    },
  });
  r.register({
    kind: 'logit-lens', label: 'Logit lens', reads: readsPrompt, view: ['view'],
    schema: {
      target: str(),
      positions: either(oneOf(['all'], { default: 'all' }), int({ min: 1 })),
      view: oneOf(['grid', 'target'], { default: 'grid' }),
      prompt: promptRef, name,
    },
  });
  r.register({
    kind: 'activations', label: 'Activations', reads: readsPrompt, view: ['norm_view', 'bins', 'log_y'],
    schema: {
      hook: str(),
      layer: layerOf({ default: 0 }),
      position: positionSpec,
      neurons: list(int({ min: 0 })),
      norm_view: oneOf(['heatmap', 'lines'], { default: 'heatmap' }),
      bins: int({ min: 1, max: 400, default: 40 }),
      log_y: bool({ default: false }),
      prompt: promptRef, name,
    },
  });
  r.register({
    kind: 'embeddings', label: 'Embeddings', reads: readsPrompt, view: ['labels'],
    schema: {
      layer: either(oneOf(['last', 'all'], { default: 'last' }), layerOf()),
      labels: bool({ default: true }),
      prompt: promptRef, name,
    },
  });
  r.register({
    // direct logit attribution of `target` (typed text: its first token; default the top token)
    kind: 'attribution', label: 'Attribution', reads: readsPrompt,
    schema: { target: str(), position: positionSpec, prompt: promptRef, name },
  });
  r.register({
    // heads / neurons: "layer.index" items (quote them: 1.10 would read as the number 1.1);
    // layers: attn.L, ffn.L or L (both). Ranges are checked against the model when it runs.
    kind: 'ablate', label: 'Ablate', reads: readsPrompt, view: ['show'],
    schema: {
      heads: list(either(str(), num())), neurons: list(either(str(), num())), layers: list(either(str(), int({ min: 0 }))),
      mode: oneOf(['zero', 'mean'], { default: 'zero' }),
      target: str(), show: int({ min: 1, max: 50, default: 12 }),
      prompt: promptRef, name,
    },
  });
  r.register({
    // a steering vector (mean difference of positive and negative prompts' hook_resid_post, or a
    // control-vector GGUF kept as base64 in `vector`), and generation with and without it; every
    // key changes what is generated (the strength slider writes on release): no view keys
    kind: 'steer', label: 'Steer', reads: readsPrompt,
    schema: {
      positive: list(str()), negative: list(str()),
      layers: either(str(), int({ min: 0, below: ['layers', (c) => c.nLayers] }), list(int({ min: 0, below: ['layers', (c) => c.nLayers] }))),
      reduce: oneOf(['mean', 'last'], { default: 'mean' }),
      strength: num({ min: -10, max: 10, default: 1 }),
      tokens: int({ min: 1, max: 256, default: 24 }),
      seed: int({ min: 0, max: 0xffffffff, default: 0 }), temperature: num({ min: 0, default: 0 }),
      vector: str(), vector_file: str(),
      prompt: promptRef, name,
    },
  });
  r.register({
    // activation patching: `corrupted` is the corrupted prompt's text (the same number of tokens
    // as the prompt read); target / foil: typed text, its first token (default: the clean and the
    // corrupted run's top tokens); open ("resid:L:P" or "head:L:H") is the cell whose run is shown
    kind: 'patch', label: 'Patch', reads: readsPrompt, view: ['open'],
    schema: {
      corrupted: str(), target: str(), foil: str(), grids: list(oneOf(['resid', 'heads'])), open: str(),
      prompt: promptRef, name,
    },
  });
  return r;
}

/** A registry holding the built-in kinds (tests make their own so that test kinds do not leak). */
export function createRegistry(): CellRegistry {
  return registerBuiltins(new CellRegistry());
}

/** The registry the app uses. */
export const cellKinds: CellRegistry = createRegistry();

/** Adds a kind to the app's registry: one line per kind, beside its element in cells/. */
export function registerCellKind(input: CellKindInput): CellKind {
  return cellKinds.register(input);
}
