// A model whose vocabulary is hostile (issue 11): most of its tokens are HTML/SVG/script payloads
// (`<img src=x onerror=…>`, `<script>…</script>`, `"><svg onload=…>`, attribute breakouts,
// `javascript:` URLs, `]]>`, `<!--`, entity text, template syntax, bidi overrides), synthesized
// here into a GGUF whose file name and general.name are payloads too. The notebook's title, a
// prompt's name and the cells' targets are payloads as well. The app loads it, tokenizes a prompt
// made of those tokens, draws the prompt chips, next-token, sampling, logit lens (grid and
// target), attention (heads, heatmap, lines), embeddings and generate cells, hovers them and
// exports every figure. Watched the whole time: a global the payloads call, window errors
// (an injected <img> that fails to load fires one), a MutationObserver on the document and every
// shadow root for <script>, <img>, <iframe>, <object>, <embed>, <foreignObject>, on* attributes
// and javascript: URLs. Nothing may run or appear, and the pieces must show as text.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { TokenType, type SpmTokenizerData } from '../../src/tokenizer/data.ts';
import type { ModelSource } from '../../src/worker/loading/types.ts';
import type { FigureExport } from '../../cells/plot/figure.ts';
import { exportName } from '../../cells/plot/figure.ts';
import { visible } from '../../cells/prompt.ts';
import { exportHtml } from '../../src/app/export.ts';
import { until } from '../support/until.ts';

/** Each payload, with `TAG` replaced by a name: run, it calls __gbPwn(name). */
const PAYLOADS: [string, string][] = [
  ['img', '<img src=x onerror=__gbPwn(TAG)>'],
  ['script', '<script>__gbPwn(TAG)</script>'],
  ['svg-break', '"><svg onload=__gbPwn(TAG)>'],
  ['svg-break-single', "'><svg/onload=__gbPwn(TAG)>"],
  ['text-break', '</text></svg><img src=x onerror=__gbPwn(TAG)>'],
  ['title-break', '</title><script>__gbPwn(TAG)</script>'],
  ['attr-double', '" onmouseover="__gbPwn(TAG)" x="'],
  ['attr-single', "' onmouseover='__gbPwn(TAG)' x='"],
  ['js-url', 'javascript:__gbPwn(TAG)'],
  ['a-js', '<a href="javascript:__gbPwn(TAG)">x</a>'],
  ['cdata', ']]><script>__gbPwn(TAG)</script>'],
  ['comment', '<!--<img src=x onerror=__gbPwn(TAG)>-->'],
  ['iframe', '<iframe srcdoc="<script>parent.__gbPwn(TAG)</script>">'],
  ['mxss', '<math><mtext><table><mglyph><style><img src=x onerror=__gbPwn(TAG)>'],
  ['entity', '&lt;script&gt;__gbPwn(TAG)&lt;/script&gt;'],
  ['template', '{{7*7}}${7*7}<%= TAG %>'],
  ['rtl', '\u202egnp.exe\u202c'],
  ['bidi-isolate', '\u2067evil\u2069\u200b'],
];
const VARIANTS = 10;
const payload = (i: number, v: number) => PAYLOADS[i]![1].replace('TAG', `'${PAYLOADS[i]![0]}-${v}'`);

/** A SentencePiece vocabulary: controls, '▁', printable ASCII, then the payloads as user-defined
 *  tokens (matched literally in text), VARIANTS of each so that they are most of the vocabulary. */
function hostileVocab(): SpmTokenizerData {
  const tokens = ['<unk>', '<s>', '</s>', '\u2581'];
  const types = [TokenType.Unknown, TokenType.Control, TokenType.Control, TokenType.Normal];
  for (let c = 0x21; c < 0x7f; c++) { tokens.push(String.fromCharCode(c)); types.push(TokenType.Normal); }
  for (let v = 0; v < VARIANTS; v++) {
    for (let i = 0; i < PAYLOADS.length; i++) { tokens.push(payload(i, v)); types.push(TokenType.UserDefined); }
  }
  return {
    kind: 'spm', tokens, types: Uint8Array.from(types), scores: Float32Array.from(tokens, (_, i) => -i),
    bosId: 1, eosId: 2, eogIds: [], unkId: 0, padId: null, addBos: true, addEos: false, chatTemplate: null, addSpacePrefix: true,
  };
}

const FILE_NAME = `"><svg onload=__gbPwn('file-name')>.gguf`;

function hostileModel(): File {
  const vocab = hostileVocab();
  const config = { ...shapeConfig('stories260K'), name: `<img src=x onerror=__gbPwn('general-name')>`, nLayers: 2, dModel: 32, dFfn: 64,
    nHeads: 4, nKvHeads: 2, dHead: 8, nCtx: 128, vocabSize: vocab.tokens.length };
  const { files } = synthModel({ config, type: 'F32', seed: 11, format: 'gguf', vocab });
  return new File([files[0]!.bytes as Uint8Array<ArrayBuffer>], FILE_NAME);
}

const PROMPT = PAYLOADS.map((_, i) => payload(i, 0)).join(' ');

const NOTEBOOK = [
  '---',
  `title: "<script>__gbPwn('nb-title')</script>"`,
  '---',
  '# A hostile vocabulary',
  '',
  '```prompt name="<img src=x onerror=__gbPwn(\'prompt-name\')>"',
  PROMPT,
  '```',
  '',
  '```next-token',
  `target: "${payload(1, 3).replace(/"/g, '\\"')}"`,
  'show: 40',
  '```',
  '',
  '```sampling',
  'show: 40',
  '```',
  '',
  '```logit-lens',
  '```',
  '',
  '```logit-lens',
  'view: target',
  `target: "${payload(0, 2).replace(/"/g, '\\"')}"`,
  '```',
  '',
  '```attention',
  '```',
  '',
  '```attention',
  'view: lines',
  '```',
  '',
  '```attention',
  'view: heatmap',
  '```',
  '',
  '```embeddings',
  '```',
  '',
  '```generate',
  'seed: 3',
  'max_tokens: 12',
  '```',
  '',
].join('\n');

const KINDS = ['next-token', 'sampling', 'logit-lens', 'attention', 'embeddings', 'generate'] as const;
type CellEl = HTMLElement & { exportFigure?(): FigureExport | null; updateComplete: Promise<unknown>; cell: { id: string }; state: { status: string; output: unknown; error: unknown } | null };

// ---------------------------------------------------------------------------------------------
// The watch: anything that ran or appeared

const hits: string[] = [];
const found: string[] = [];
const errors: string[] = [];
const observed = new WeakSet<Node>();
const DANGEROUS = new Set(['script', 'img', 'iframe', 'object', 'embed', 'foreignobject', 'frame', 'base', 'meta', 'link', 'form', 'video', 'audio', 'math', 'style']);

/** Elements the app may legitimately have (the test page's own scripts and the app's <style>s in
 *  shadow roots are recorded before the app starts and on the way). */
function checkElement(el: Element, where: string, baseline: Set<Element>): void {
  if (baseline.has(el)) return;
  const name = el.localName.toLowerCase();
  // Lit puts its styles in adoptedStyleSheets, not <style> elements; none is expected in a shadow root.
  if (DANGEROUS.has(name)) found.push(`<${name}> in ${where}: ${el.outerHTML.slice(0, 120)}`);
  for (const a of el.attributes) {
    const n = a.name.toLowerCase();
    if (n.startsWith('on')) found.push(`${n}= on <${name}> in ${where}`);
    if (/^\s*(javascript|vbscript|data):/i.test(a.value) && /href|src|action|data|formaction/.test(n)) found.push(`${n}="${a.value.slice(0, 40)}" on <${name}> in ${where}`);
  }
}

function scan(root: Document | ShadowRoot, where: string, baseline: Set<Element>): void {
  watch(root, where, baseline);
  for (const el of root.querySelectorAll('*')) {
    checkElement(el, where, baseline);
    if (el.shadowRoot) scan(el.shadowRoot, `${where} > ${el.localName}`, baseline);
  }
}

function watch(root: Document | ShadowRoot, where: string, baseline: Set<Element>): void {
  if (observed.has(root)) return;
  observed.add(root);
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target instanceof Element) checkElement(r.target, where, baseline);
      for (const n of r.addedNodes) {
        if (!(n instanceof Element)) continue;
        checkElement(n, where, baseline);
        for (const d of n.querySelectorAll('*')) checkElement(d, where, baseline);
      }
    }
  }).observe(root, { childList: true, subtree: true, attributes: true });
}

/** An exported SVG or HTML text, parsed: the same checks. */
function checkMarkup(text: string, type: DOMParserSupportedType, where: string): Document {
  const d = new DOMParser().parseFromString(text, type);
  expect(d.querySelector('parsererror'), `${where} parses`).to.equal(null);
  for (const el of d.querySelectorAll('*')) {
    if (type === 'text/html' && ['html', 'head', 'meta', 'title', 'style', 'body'].includes(el.localName) && el.closest('head, html') && !el.closest('body')) continue;
    if (type === 'text/html' && el.localName === 'body') continue;
    checkElement(el, where, new Set());
  }
  return d;
}

describe('a hostile vocabulary in the app: nothing runs, the pieces show as text', function () {
  this.timeout(240000);
  let app: GlassboxApp;
  const baseline = new Set<Element>();
  const onError = (e: Event) => {
    const t = e.target as Element | null;
    errors.push(e instanceof ErrorEvent ? `error: ${e.message}` : `resource error on <${t?.localName}> ${t?.getAttribute?.('src') ?? ''}`);
  };
  const cell = (kind: string, n = 0) => app.shadowRoot!.querySelectorAll<CellEl>(`section[data-kind="${kind}"] glassbox-${kind}`)[n]!;

  before(async () => {
    (window as unknown as { __gbPwn: (t: string) => void }).__gbPwn = (t) => { hits.push(t); };
    for (const el of document.querySelectorAll('*')) baseline.add(el);
    addEventListener('error', onError, true);
    scan(document, 'document', baseline);

    const nbUrl = URL.createObjectURL(new Blob([NOTEBOOK], { type: 'text/markdown' }));
    app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = `?notebook=${encodeURIComponent(nbUrl)}&backend=cpu`;
    app.hash = '';
    app.autosaveId = `hostile-vocab-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    const file = hostileModel();
    const load = (app as unknown as { loadModel(s: ModelSource, label: string): Promise<void> }).loadModel.bind(app);
    await load({ kind: 'files', files: [file] }, file.name);
    expect(app.model, 'the hostile model loads').to.not.equal(null);
    await until(() => KINDS.every((k) => ['done', 'error'].includes(cell(k)?.state?.status ?? '')), 'every cell computed');
    for (const k of KINDS) expect(cell(k).state!.status, `${k}: ${String(cell(k).state!.error)}`).to.equal('done');
    // Generate: N tokens (random weights over a vocabulary that is mostly payloads).
    const gen = cell('generate');
    await until(() => gen.shadowRoot!.querySelector<HTMLButtonElement>('button[data-action="run"]:not([disabled])'), 'the Run button');
    gen.shadowRoot!.querySelector<HTMLButtonElement>('button[data-action="run"]')!.click();
    const generated = () => { const o = gen.state?.output as { ids: number[]; promptLength: number } | undefined; return o ? o.ids.length - o.promptLength : 0; };
    await until(() => generated() >= 12 && gen.state?.status === 'done', '12 generated tokens');
    await app.idle();
    await Promise.all([...app.shadowRoot!.querySelectorAll<CellEl>('section.cell > *:last-child')].map((c) => c.updateComplete));
    scan(document, 'document', baseline);
  });

  after(() => {
    removeEventListener('error', onError, true);
    app?.remove();
  });

  it('draws the prompt\'s chips with each payload as one token, shown as text', () => {
    const root = cell('prompt').shadowRoot!;
    const chips = [...root.querySelectorAll<HTMLElement>('[data-testid=tokens] .tok')];
    const labels = chips.map((c) => [...c.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(''));
    for (let i = 0; i < PAYLOADS.length; i++) {
      expect(labels, `the chip of ${PAYLOADS[i]![0]}`).to.include(visible(payload(i, 0)));
    }
    // The bidi override is drawn as its code point, not applied.
    expect(labels.some((l) => l.includes('⟨U+202E⟩') && !l.includes('\u202e'))).to.equal(true);
    expect(getComputedStyle(chips[1]!).unicodeBidi).to.equal('isolate');
    // The prompt's name (a setting) is text.
    expect(root.querySelector('label b')?.textContent).to.equal(`<img src=x onerror=__gbPwn('prompt-name')>`);
  });

  it('the figures hold the payloads as text (next-token, sampling, logit lens, attention, generate)', () => {
    const text = (k: string, n = 0) => [...cell(k, n).shadowRoot!.querySelectorAll('svg text, svg title, .gen, .readout')].map((t) => t.textContent).join('\n');
    expect(text('next-token'), 'next-token shows payload pieces').to.match(/<img src=x onerror=__gbPwn|<script>__gbPwn|"><svg onload/);
    expect(text('sampling')).to.match(/<img|<script|<svg|javascript:/);
    expect(text('logit-lens')).to.match(/<img|<script|<svg|javascript:/);
    expect(text('logit-lens', 1)).to.include(`<img src=x onerror=__gbPwn('img-2')>`);
    expect(text('attention', 1), 'attention lines view labels').to.include('<script>');
    const gen = cell('generate').state!.output as { ids: number[]; promptLength: number; texts: Map<number, string> };
    const generated = gen.ids.slice(gen.promptLength).map((id) => gen.texts.get(id) ?? '').join('');
    expect(generated.length, 'tokens were generated').to.be.greaterThan(0);
    expect(text('generate')).to.match(/<img|<script|<svg|javascript:|&lt;script&gt;/);
    // Entity text stays entity text: drawn literally, never decoded into markup.
    const all = KINDS.map((k) => text(k)).join('\n') + text('prompt');
    expect(cell('prompt').shadowRoot!.textContent).to.include('&lt;script&gt;');
    expect(all).to.not.include('<script>__gbPwn(\'entity');
  });

  it('hovering marks and tokens shows readouts without running anything', async () => {
    for (const k of ['next-token', 'logit-lens', 'attention', 'generate', 'sampling', 'embeddings']) {
      const marks = [...cell(k).shadowRoot!.querySelectorAll<Element>('[data-t], [data-id], [data-step]')].slice(0, 30);
      for (const m of marks) {
        m.dispatchEvent(new MouseEvent('mouseover', { bubbles: true, composed: true }));
        m.dispatchEvent(new MouseEvent('mouseenter', { bubbles: false }));
        m.dispatchEvent(new MouseEvent('mousemove', { bubbles: true, composed: true }));
      }
      await cell(k).updateComplete;
    }
    for (const c of cell('prompt').shadowRoot!.querySelectorAll<HTMLElement>('.tok')) c.dispatchEvent(new MouseEvent('mouseenter'));
    await new Promise((r) => setTimeout(r, 200));
    scan(document, 'document', baseline);
  });

  it('every export (SVG, CSV, JSON, the standalone HTML) holds no markup from the pieces', () => {
    for (const [k, n] of [...KINDS.map((x) => [x, 0] as const), ['attention', 1] as const, ['logit-lens', 1] as const]) {
      const f = cell(k, n).exportFigure?.();
      expect(f, `${k} exports`).to.not.equal(null);
      const svg = checkMarkup(f!.svg.includes('xmlns=') ? f!.svg : f!.svg.replace('<svg', '<svg xmlns="http://www.w3.org/2000/svg"'), 'image/svg+xml', `${k} SVG`);
      if (k !== 'attention' || n > 0) expect(svg.documentElement.textContent, `${k}: the pieces are in the SVG as text`).to.match(/<img|<script|<svg|javascript:|&lt;|\{\{7\*7\}\}/);
      expect(JSON.parse(JSON.stringify(f!.rows))).to.deep.equal(f!.rows);
    }
    const states = new Map([...app.shadowRoot!.querySelectorAll<CellEl>('section.cell > *:last-child')].filter((c) => c.cell).map((c) => [c.cell.id, c.state as never]));
    const doc = checkMarkup(exportHtml(app.doc!.notebook, states, app.model), 'text/html', 'exported HTML');
    expect(doc.querySelectorAll('script').length).to.equal(0);
    expect(doc.title).to.equal(`<script>__gbPwn('nb-title')</script>`);
    expect(doc.body.textContent).to.include(`<script>__gbPwn('script-0')</script>`);
    // File names made from the title, the prompt's name and the model's name are plain.
    expect(exportName({ notebook: `<script>__gbPwn('nb-title')</script>`, cell: `"><img src=x>`, model: FILE_NAME }, 'svg')).to.match(/^[a-z0-9.-]+$/);
  });

  it('the model\'s file name and general.name are shown as text', () => {
    const bar = app.shadowRoot!.querySelector('[data-testid=model-button]')!;
    expect(bar.textContent!.trim()).to.equal(FILE_NAME);
    const model = app.shadowRoot!.querySelector('glassbox-model');
    if (model) expect(model.shadowRoot!.querySelector('[data-testid=name] b')?.textContent).to.equal(FILE_NAME);
  });

  it('nothing ran: no payload call, no window error, no injected element or handler', () => {
    scan(document, 'document', baseline);
    expect(hits, 'payloads that ran').to.deep.equal([]);
    expect(errors, 'window errors (an injected <img> that failed to load is one)').to.deep.equal([]);
    expect(found, 'injected elements, handlers or javascript: URLs').to.deep.equal([]);
  });
});
