// <glassbox-inspector>: the page until the notebook arrives. Open a model file (picker, drag and
// drop, or a local model), see its config and tensors, and the tokens of a typed text.

import { LitElement, html, css, nothing } from 'lit';
import { customElement, state } from 'lit/decorators.js';
import { blobSource, urlSource, type ByteSource } from '../formats/source.ts';
import { describeModel, formatBytes, formatCount, type ModelSummary } from '../formats/describe.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { openSources, isTokenizerFile } from './open-files.ts';

export interface LocalEntry { path: string; bytes: number }

/** The local models worth offering as one click: models with their tokenizers, and tokenizers. */
export function localChoices(entries: LocalEntry[]): { label: string; paths: string[] }[] {
  const has = new Set(entries.map((e) => e.path));
  const out: { label: string; paths: string[] }[] = [];
  for (const e of entries) {
    const dir = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/') + 1) : '';
    if (e.path.endsWith('.gguf') || e.path.endsWith('.safetensors')) out.push({ label: e.path, paths: [e.path] });
    else if (e.path.endsWith('.bin') && !isTokenizerFile(e.path)) {
      const tok = ['tok512.bin', 'tokenizer.bin'].map((t) => dir + t).find((t) => has.has(t));
      out.push({ label: `${e.path}${tok ? ` + ${tok.slice(dir.length)}` : ''}`, paths: tok ? [e.path, tok] : [e.path] });
    } else if (/tokenizer\.(json|model|bin)$/.test(e.path)) {
      const cfg = dir + 'tokenizer_config.json';
      out.push({ label: `${e.path} (tokenizer)`, paths: e.path.endsWith('.json') && has.has(cfg) ? [e.path, cfg] : [e.path] });
    }
  }
  return out;
}

@customElement('glassbox-inspector')
export class GlassboxInspector extends LitElement {
  static override styles = css`
    :host { display: block; max-width: 1100px; margin: 0 auto; padding: 24px; }
    h1 { font-size: 22px; margin: 0 0 4px; }
    h1 span { color: var(--muted); font-weight: 400; }
    h2 { font-size: 15px; margin: 28px 0 8px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
    .drop { border: 2px dashed var(--line); border-radius: 10px; padding: 18px; margin: 16px 0; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
    .drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 8%, transparent); }
    select, input[type=file], textarea, button { font: inherit; }
    .error { color: #c0392b; background: color-mix(in srgb, #c0392b 10%, transparent); padding: 10px 12px; border-radius: 8px; }
    .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
    .card b { display: block; font-size: 18px; }
    .card small { color: var(--muted); }
    table { border-collapse: collapse; width: 100%; font-size: 13px; }
    th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
    td.mono, .mono { font-family: var(--mono); }
    .type { font-family: var(--mono); font-size: 12px; padding: 1px 6px; border-radius: 4px; background: color-mix(in srgb, var(--accent) 14%, transparent); }
    .scroll { max-height: 420px; overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
    textarea { width: 100%; box-sizing: border-box; min-height: 70px; padding: 8px; border-radius: 8px; border: 1px solid var(--line); background: var(--card); color: inherit; }
    .tokens { display: flex; flex-wrap: wrap; gap: 3px; margin-top: 8px; font-family: var(--mono); font-size: 13px; }
    .tok { unicode-bidi: isolate; padding: 2px 4px; border-radius: 4px; white-space: pre; }
    .tok small { display: block; font-size: 10px; color: var(--muted); text-align: center; }
    .muted { color: var(--muted); }
    label { margin-right: 12px; }
  `;

  @state() private summary: ModelSummary | null = null;
  @state() private tokenizer: Tokenizer | null = null;
  @state() private heading = '';
  @state() private error = '';
  @state() private busy = false;
  @state() private text = 'Once upon a time, there was a little robot who loved to read. 🤖';
  @state() private bos = true;
  @state() private special = false;
  @state() private local: { label: string; paths: string[] }[] = [];
  @state() private over = false;

  override connectedCallback(): void {
    super.connectedCallback();
    fetch('/models/local/index.json').then((r) => (r.ok ? r.json() : [])).then((list: LocalEntry[]) => {
      this.local = localChoices(list);
      const q = new URLSearchParams(location.search).get('model');
      if (q) void this.openUrls(q.split(','));
    }).catch(() => { /* no local models: the picker still works */ });
  }

  private async open(sources: ByteSource[], title: string) {
    this.busy = true;
    this.error = '';
    try {
      const { model, tokenizer } = await openSources(sources);
      this.summary = model ? describeModel(model) : null;
      this.tokenizer = tokenizer;
      this.heading = title;
    } catch (e) {
      this.error = (e as Error).message;
      this.summary = null;
      this.tokenizer = null;
    } finally {
      this.busy = false;
    }
  }

  private async openUrls(urls: string[]) {
    try {
      const sources = await Promise.all(urls.map((u) => urlSource(u.startsWith('/') || u.includes('://') ? u : `/models/local/${u}`)));
      await this.open(sources, urls.join(' + '));
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  private openFiles(files: FileList | null) {
    if (!files || files.length === 0) return;
    const list = [...files];
    void this.open(list.map((f) => blobSource(f, f.name)), list.map((f) => f.name).join(' + '));
  }

  override render() {
    return html`
      <h1>glassbox <span>— model inspector</span></h1>
      <div class="muted">Open a GGUF, a safetensors model (with config.json), a llama2.c checkpoint (with its tokenizer.bin), or a tokenizer alone.</div>
      <div class="drop ${this.over ? 'over' : ''}"
        @dragover=${(e: DragEvent) => { e.preventDefault(); this.over = true; }}
        @dragleave=${() => { this.over = false; }}
        @drop=${(e: DragEvent) => { e.preventDefault(); this.over = false; this.openFiles(e.dataTransfer?.files ?? null); }}>
        <input type="file" multiple aria-label="Open model files" @change=${(e: Event) => this.openFiles((e.target as HTMLInputElement).files)}>
        <span class="muted">or drop files here</span>
        ${this.local.length ? html`
          <select aria-label="Local models" @change=${(e: Event) => {
            const i = Number((e.target as HTMLSelectElement).value);
            if (i >= 0) void this.openUrls(this.local[i]!.paths);
          }}>
            <option value="-1">Local models…</option>
            ${this.local.map((c, i) => html`<option value=${i}>${c.label}</option>`)}
          </select>` : nothing}
        ${this.busy ? html`<span class="muted">Reading…</span>` : nothing}
      </div>
      ${this.error ? html`<div class="error" role="alert">${this.error}</div>` : nothing}
      ${this.summary ? this.renderModel(this.summary) : nothing}
      ${this.tokenizer ? this.renderTokens(this.tokenizer) : nothing}
    `;
  }

  private renderModel(s: ModelSummary) {
    const c = s.config;
    const cards: [string, string][] = [
      ['format', s.format], ['size', formatBytes(s.bytes)], ['parameters', formatCount(s.parameters)],
      ['layers', String(c.nLayers)], ['d_model', String(c.dModel)], ['d_ffn', String(c.dFfn)],
      ['heads / kv', `${c.nHeads} / ${c.nKvHeads}`], ['d_head', String(c.dHead)], ['vocab', String(c.vocabSize)],
      ['context', String(c.nCtx)], ['rope θ', String(c.ropeTheta)], ['tied', c.tiedEmbeddings ? 'yes' : 'no'],
    ];
    return html`
      <h2>${this.heading}</h2>
      <div class="cards">${cards.map(([k, v]) => html`<div class="card"><small>${k}</small><b>${v}</b></div>`)}</div>
      <p class="muted">rms ε ${c.rmsEps}; RoPE ${s.ropeLayout} layout${c.ropeScaling ? `, ${c.ropeScaling.type} scaling ×${c.ropeScaling.factor}` : ''};
        types: ${s.types.map((t) => html`<span class="type">${t.type}</span> ${t.tensors} (${formatBytes(t.bytes)}) `)}</p>
      <h2>Tensors (${s.tensors.length})</h2>
      <div class="scroll"><table>
        <thead><tr><th>name</th><th>in file</th><th>type</th><th>shape</th><th>bytes</th></tr></thead>
        <tbody>${s.tensors.map((t) => html`<tr><td class="mono">${t.name}</td><td class="mono muted">${t.fileName}</td>
          <td><span class="type">${t.type}</span></td><td class="mono">[${t.shape.join(', ')}]</td><td>${formatBytes(t.bytes)}</td></tr>`)}</tbody>
      </table></div>`;
  }

  private renderTokens(tok: Tokenizer) {
    let result: { ids: number[]; spans: [number, number][] } | null = null;
    let error = '';
    try {
      result = tok.encodeWithSpans(this.text, { bos: this.bos, special: this.special });
    } catch (e) {
      error = (e as Error).message;
    }
    return html`
      <h2>Tokens <span class="muted">(${tok.kind === 'spm' ? 'SentencePiece' : 'byte-level BPE'}, ${tok.vocabSize} entries)</span></h2>
      <textarea aria-label="Text to tokenize" .value=${this.text} @input=${(e: Event) => { this.text = (e.target as HTMLTextAreaElement).value; }}></textarea>
      <div>
        <label><input type="checkbox" .checked=${this.bos} @change=${(e: Event) => { this.bos = (e.target as HTMLInputElement).checked; }}> BOS</label>
        <label><input type="checkbox" .checked=${this.special} @change=${(e: Event) => { this.special = (e.target as HTMLInputElement).checked; }}> parse special tokens</label>
        ${result ? html`<span class="muted">${result.ids.length} tokens, ${[...this.text].length} characters</span>` : nothing}
      </div>
      ${error ? html`<div class="error">${error}</div>` : nothing}
      ${result ? html`<div class="tokens" data-testid="tokens">${result.ids.map((id, i) => {
        const [a, b] = result!.spans[i]!;
        const hue = (i * 67) % 360;
        // Tokens that share one character (bytes of an emoji) show their byte pieces instead.
        const shared = result!.spans.some((s, j) => j !== i && s[0] === a && s[1] === b);
        return html`<span class="tok" style="background: hsl(${hue} 70% 60% / .22)" title="id ${id} · piece ${tok.piece(id)} · chars ${a}–${b}">${
          a === b || shared ? tok.piece(id) : this.text.slice(a, b)}<small>${id}</small></span>`;
      })}</div>` : nothing}`;
  }
}
