// What `?model=` (or a notebook's front matter `model:`) names, as a ModelSource, and whether the
// app may load it at once: catalog ids and same-origin paths load at once; any other origin, or
// anything named by a shared notebook, asks the user first (DESIGN.md, "Addresses").

import type { ModelSource } from '../worker/loading/types.ts';
import type { DownloadProgress } from '../worker/loading/types.ts';

export interface NamedModel {
  source: ModelSource;
  label: string;
  /** True when the user must confirm before anything is fetched. */
  ask: boolean;
}

const LOCAL = '/models/local/';

/** Resolves a model name against the catalog ids and the page's origin; null for an empty name. */
export function namedModel(name: string, catalogIds: ReadonlySet<string>, origin: string, fromShared = false): NamedModel | null {
  const n = name.trim();
  if (!n) return null;
  if (catalogIds.has(n) || !/[/:]/.test(n)) return { source: { kind: 'catalog', id: n }, label: n, ask: fromShared };
  // A bare relative path ("tinystories-260k/stories260K.gguf") names a file under /models/local/.
  if (/^[\w.-]+(\/[\w.-]+)+$/.test(n)) return { source: { kind: 'local', paths: [n] }, label: n, ask: fromShared };
  let url: URL;
  try { url = new URL(n, origin); } catch { return null; }
  const sameOrigin = url.origin === new URL(origin).origin;
  if (sameOrigin && url.pathname.startsWith(LOCAL)) {
    const paths = url.pathname.slice(LOCAL.length).split(',').map(decodeURIComponent);
    return { source: { kind: 'local', paths }, label: paths.join(' + '), ask: fromShared };
  }
  if (url.protocol !== 'https:' && !(sameOrigin && url.protocol === 'http:')) return null;
  return { source: { kind: 'url', url: url.href }, label: url.href, ask: fromShared || !sameOrigin };
}

function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/** "3.1 MiB of 60.8 MiB · 2.4 MiB/s · 24 s left" */
export function progressText(p: DownloadProgress): string {
  if (p.phase === 'cache') return `${p.file}: from the browser's cache`;
  const parts = [`${p.file}: ${bytes(p.received)}${p.total !== null ? ` of ${bytes(p.total)}` : ''}`];
  if (p.rateBytesPerS > 0) parts.push(`${bytes(p.rateBytesPerS)}/s`);
  if (p.etaS !== null) parts.push(p.etaS < 60 ? `${Math.ceil(p.etaS)} s left` : `${Math.ceil(p.etaS / 60)} min left`);
  if (p.retry) parts.push(`retry ${p.retry.attempt}: ${p.retry.reason}`);
  return parts.join(' · ');
}
