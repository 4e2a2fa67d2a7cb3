// Prose: Markdown rendered by marked (CommonMark + GFM, no dependencies) and then sanitized by
// DOMPurify, because a notebook may come from anyone (a share link, a URL). Raw HTML in prose is
// allowed through marked and cleaned after: no script, no event handler attributes, no
// javascript:/data: links, no SVG script or foreignObject, no forms, frames, styles or <base>.
// Links open in a new tab with rel="noopener noreferrer"; images send no referrer.
// Browser only (DOMPurify needs a DOM); the purifier is made on first use.

import { Marked } from 'marked';
import DOMPurify, { type Config } from 'dompurify';

const marked = new Marked({ gfm: true, breaks: false, async: false });

const CONFIG: Config = {
  USE_PROFILES: { html: true, svg: true, svgFilters: true },
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'iframe', 'frame', 'frameset',
    'object', 'embed', 'base', 'link', 'meta', 'foreignObject', 'animate', 'set', 'animateMotion', 'animateTransform'],
  FORBID_ATTR: ['style', 'formaction', 'action', 'ping', 'srcset'],
  ALLOW_DATA_ATTR: false,
  // Prefix ids and names so that prose cannot clobber globals the page reads (DOM clobbering).
  SANITIZE_NAMED_PROPS: true,
};

let purifier: ReturnType<typeof DOMPurify> | null = null;

function purify(): ReturnType<typeof DOMPurify> {
  if (purifier) return purifier;
  // An instance of our own, so that these hooks do not change DOMPurify for anyone else.
  const p = DOMPurify(window);
  p.addHook('afterSanitizeAttributes', (node) => {
    const el = node as Element;
    if (el.localName === 'a' && (el.hasAttribute('href') || el.hasAttribute('xlink:href'))) {
      el.setAttribute('target', '_blank');
      el.setAttribute('rel', 'noopener noreferrer');
    }
    if (el.localName === 'img') {
      el.setAttribute('referrerpolicy', 'no-referrer');
      el.setAttribute('loading', 'lazy');
    }
  });
  purifier = p;
  return p;
}

/** Markdown to HTML, not sanitized: only for callers that sanitize it themselves. */
export function markdownToHtml(src: string): string {
  return marked.parse(src, { async: false });
}

/** Markdown to sanitized HTML text (for export to a standalone file). */
export function renderMarkdownHtml(src: string): string {
  return purify().sanitize(markdownToHtml(src), { ...CONFIG, RETURN_TRUSTED_TYPE: false }) as string;
}

/** Markdown to a sanitized fragment, ready to append: the way prose cells draw. */
export function renderMarkdown(src: string): DocumentFragment {
  return purify().sanitize(markdownToHtml(src), { ...CONFIG, RETURN_DOM_FRAGMENT: true });
}
