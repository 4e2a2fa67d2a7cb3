// The cell elements by kind. Adding a kind: write cells/<kind>.ts (a `glassbox-<kind>` element
// taking the CellProps of common.ts), register its schema (registerCellKind, one line), and add
// one line here.

import './markdown.ts';
import './prompt.ts';
import './model.ts';
import './unknown.ts';
import './attention.ts';
import './next-token.ts';
import './logit-lens.ts';
import './activations.ts';
import './embeddings.ts';
import './sampling.ts';
import './generate.ts';
import './attribution.ts';
import './ablate.ts';
import './steer.ts';
import './patch.ts';

/** The element that draws each kind; kinds without one are drawn by <glassbox-unknown>. */
export const cellElements: Readonly<Record<string, string>> = {
  markdown: 'glassbox-markdown',
  prompt: 'glassbox-prompt',
  model: 'glassbox-model',
  attention: 'glassbox-attention',
  'next-token': 'glassbox-next-token',
  'logit-lens': 'glassbox-logit-lens',
  activations: 'glassbox-activations',
  embeddings: 'glassbox-embeddings',
  sampling: 'glassbox-sampling',
  generate: 'glassbox-generate',
  attribution: 'glassbox-attribution',
  ablate: 'glassbox-ablate',
  steer: 'glassbox-steer',
  patch: 'glassbox-patch',
};

export function elementFor(kind: string): string {
  return cellElements[kind] ?? 'glassbox-unknown';
}
