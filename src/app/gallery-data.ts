// The demo notebooks (demos/*.md) the app bundles, for the gallery (the Demos panel) and the
// `?demo=<slug>` address. Each `new URL('…', import.meta.url)` is a literal so that Vite emits the
// file with the build (a small one inlined as a data: URL, which demoText decodes without a fetch:
// the page's CSP allows no data: fetch); in the dev server and the browser tests it is the file
// itself. Titles and descriptions repeat each notebook's front matter (test/node/demos.test.ts
// checks that they agree). Thumbnails are screenshots saved by test/e2e/demos.test.mjs.

export interface Demo {
  slug: string;
  title: string;
  description: string;
  /** The notebook's URL (an asset of the build). */
  url: string;
  /** Its thumbnail's URL. */
  thumb: string;
}

const demo = (slug: string, title: string, description: string, url: URL, thumb: URL): Demo =>
  ({ slug, title, description, url: url.href, thumb: thumb.href });

export const DEMOS: readonly Demo[] = [
  demo('tokens', 'Tokens — how text becomes numbers',
    'A model never sees letters. Watch text become token ids, and see why " the" and "the" differ, how numbers, emoji and other languages are cut up.',
    new URL('../../demos/tokens.md', import.meta.url), new URL('../../docs/demos/tokens.png', import.meta.url)),
  demo('attention', 'Where does the model look?',
    'Attention heads in action: the first-token sink, previous-token heads, and query heads that share their keys and values (grouped-query attention).',
    new URL('../../demos/attention.md', import.meta.url), new URL('../../docs/demos/attention.png', import.meta.url)),
  demo('induction-heads', 'Induction heads',
    'A random sequence, repeated. Heads that find the earlier copy and predict what came next draw a stripe, and a score finds them.',
    new URL('../../demos/induction-heads.md', import.meta.url), new URL('../../docs/demos/induction-heads.png', import.meta.url)),
  demo('logit-lens', 'The logit lens',
    "Read the model's guess after every layer, as if that layer were the last, and watch the answer form.",
    new URL('../../demos/logit-lens.md', import.meta.url), new URL('../../docs/demos/logit-lens.png', import.meta.url)),
  demo('sampling', 'Temperature and the sampler chain',
    'Why temperature 0 repeats itself and temperature 2 babbles, and what top-k, top-p and min-p cut from the same distribution.',
    new URL('../../demos/sampling.md', import.meta.url), new URL('../../docs/demos/sampling.png', import.meta.url)),
  demo('inside-a-block', 'Inside one block',
    'One transformer block taken apart: RMSNorm, rotary position embeddings, attention, the SwiGLU neurons, and the residual stream that grows as blocks add to it.',
    new URL('../../demos/inside-a-block.md', import.meta.url), new URL('../../docs/demos/inside-a-block.png', import.meta.url)),
  demo('interventions', 'Change one thing',
    "Knock out heads and neurons, trace a name through the residual stream by patching, and push the model's mood with a steering vector.",
    new URL('../../demos/interventions.md', import.meta.url), new URL('../../docs/demos/interventions.png', import.meta.url)),
];

/** The demo `?demo=` names (its slug), or `?notebook=` names as demos/<slug>.md; null otherwise. */
export function findDemo(demoParam: string | null, notebookParam: string | null = null): Demo | null {
  if (demoParam) return DEMOS.find((d) => d.slug === demoParam) ?? null;
  const m = notebookParam ? /^(?:\.?\/)?demos\/([\w-]+)\.md$/.exec(notebookParam) : null;
  return m ? DEMOS.find((d) => d.slug === m[1]) ?? null : null;
}

/** The page address that opens a demo, keeping the model and backend the page was opened with. */
export function demoHref(d: Demo, search: string): string {
  const now = new URLSearchParams(search), q = new URLSearchParams({ demo: d.slug });
  for (const k of ['model', 'backend']) { const v = now.get(k); if (v) q.set(k, v); }
  return `?${q.toString()}`;
}

/** A link in prose to a demo ("attention.md", "./sampling.md#questions", "demos/tokens.md"): the demo. */
export function demoLink(href: string): Demo | null {
  const m = /^(?:\.\/)?(?:demos\/)?([\w-]+)\.md(?:#.*)?$/.exec(href);
  return m ? DEMOS.find((d) => d.slug === m[1]) ?? null : null;
}

/** The text of a data: URL (a notebook Vite inlined), or null for any other URL. */
export function dataUrlText(url: string): string | null {
  if (!url.startsWith('data:')) return null;
  const comma = url.indexOf(',');
  if (comma < 0) return null;
  const head = url.slice(5, comma), body = url.slice(comma + 1);
  if (/;base64$/i.test(head)) {
    const bin = atob(body);
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  }
  return decodeURIComponent(body);
}
