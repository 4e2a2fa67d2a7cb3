// <glassbox-model-picker>: the catalog (sizes, licenses), a URL field, the dev server's local
// models, and the models cached in this browser with delete. Picking fires `pick` with
// { source, label, name }; the app loads it (and shows the download's progress).

import { LitElement, css, html, nothing } from 'lit';
import { customElement, state } from 'lit/decorators.js';
import { loadCatalog, entryBytes, type CatalogEntry } from '../worker/loading/catalog.ts';
import { listCached, deleteCached, type CachedFile } from '../worker/loading/cache.ts';
import { preflight } from '../worker/loading/preflight.ts';
import type { ModelSource } from '../worker/loading/types.ts';
import { localChoices, type LocalEntry } from './inspector.ts';
import { formatBytes } from '../../cells/common.ts';

export interface PickDetail {
  source: ModelSource;
  label: string;
  /** What the notebook's front matter records: a catalog id or a URL. */
  name: string;
}

@customElement('glassbox-model-picker')
export class GlassboxModelPicker extends LitElement {
  static override styles = css`
    :host { display: block; font-size: 14px; }
    h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 14px 0 6px; }
    ul { list-style: none; margin: 0; padding: 0; }
    li { display: flex; gap: 10px; align-items: baseline; padding: 4px 0; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
    li .grow { flex: 1; min-width: 200px; }
    small { color: var(--muted); }
    button, input { font: inherit; }
    button { padding: 3px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: inherit; cursor: pointer; }
    button:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
    form { display: flex; gap: 8px; } input[type=url] { flex: 1; padding: 4px 8px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: inherit; }
    .error { color: #c0392b; }
  `;

  @state() private catalog: CatalogEntry[] = [];
  @state() private local: { label: string; paths: string[] }[] = [];
  @state() private cached: CachedFile[] = [];
  @state() private error = '';

  override connectedCallback(): void {
    super.connectedCallback();
    void this.refresh();
  }

  /** Reloads the three lists (after a load, a delete). */
  async refresh(): Promise<void> {
    const [cat, loc, cached] = await Promise.allSettled([
      loadCatalog('/models.json'),
      fetch('/models/local/index.json').then((r) => (r.ok ? r.json() as Promise<LocalEntry[]> : [])),
      listCached(),
    ]);
    if (cat.status === 'fulfilled') this.catalog = cat.value.models; else this.error = `The model catalog could not be read: ${(cat.reason as Error)?.message}`;
    this.local = loc.status === 'fulfilled' ? localChoices(loc.value) : [];
    this.cached = cached.status === 'fulfilled' ? cached.value : [];
  }

  private pick(detail: PickDetail): void {
    this.dispatchEvent(new CustomEvent<PickDetail>('pick', { detail, bubbles: true, composed: true }));
  }

  private onUrl(e: SubmitEvent): void {
    e.preventDefault();
    const input = (e.target as HTMLFormElement).querySelector('input')!;
    const url = input.value.trim();
    if (url) this.pick({ source: { kind: 'url', url }, label: url, name: url });
  }

  private async forget(f: CachedFile): Promise<void> {
    await deleteCached(f.url);
    await this.refresh();
  }

  override render() {
    return html`
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
      <h3 id="cat">Catalog</h3>
      <ul aria-labelledby="cat">${this.catalog.map((m) => {
        // Whether it is cached and whether it fits this device, before anything is fetched.
        const r = preflight(m, {}, { cachedUrls: this.cached.map((f) => f.url) });
        return html`<li>
        <span class="grow"><b>${m.name}</b> <small>${m.quant ?? ''} · ${formatBytes(entryBytes(m))} · ${m.license}${r.downloadBytes === 0 ? ' · cached' : ''}</small>
          ${r.fitsCpu ? nothing : html`<small class="error" title=${r.reasons.join(' ')}> · too big for this device</small>`}
          <br><small>${m.description}</small></span>
        <button @click=${() => this.pick({ source: { kind: 'catalog', id: m.id }, label: m.name, name: m.id })} aria-label="Load ${m.name}">Load</button></li>`;
      })}
      </ul>
      ${this.local.length ? html`<h3 id="loc">On this dev server (/models/local/)</h3>
        <ul aria-labelledby="loc">${this.local.filter((l) => !l.label.endsWith('(tokenizer)')).map((l) => html`<li><span class="grow mono">${l.label}</span>
          <button @click=${() => this.pick({ source: { kind: 'local', paths: l.paths }, label: l.label, name: `/models/local/${l.paths.join(',')}` })} aria-label="Load ${l.label}">Load</button></li>`)}</ul>` : nothing}
      <h3><label for="url">From a URL (GGUF, safetensors, llama2.c)</label></h3>
      <form @submit=${this.onUrl}><input id="url" type="url" placeholder="https://…/model.gguf" required><button type="submit">Load URL</button></form>
      <h3 id="cached">Cached in this browser</h3>
      ${this.cached.length === 0 ? html`<p><small>Nothing cached yet.</small></p>` : html`<ul aria-labelledby="cached">${this.cached.map((f) => html`<li>
        <span class="grow">${f.name ?? f.url} <small>${formatBytes(f.size)}</small></span>
        <button @click=${() => this.forget(f)} aria-label="Delete ${f.name ?? f.url} from the cache">Delete</button></li>`)}</ul>`}`;
  }
}
