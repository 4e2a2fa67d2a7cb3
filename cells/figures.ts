// Each visual kind's exported figure from its output and settings alone (no element): what the
// app's standalone HTML export inlines, drawn by the same pure functions the elements use.

import { attentionFigure, viewState, type AttentionOutput } from './plot/attention.ts';
import { nextTokenExport, nextTokenModel, nextTokenView, type NextTokenOutput } from './plot/next-token.ts';
import { logitLensExport, type LogitLensOutput } from './plot/logit-lens.ts';
import { activationsExport, type ActivationsOutput } from './plot/activations.ts';
import { embeddingsExport, type EmbeddingsOutput } from './plot/embeddings.ts';
import { samplingExport, samplingModel, type SamplingOutput } from './plot/sampling.ts';
import { generateExport, generateView, type GenerateOutput } from './plot/generate.ts';
import { attributionExport, type AttributionOutput } from './plot/attribution.ts';
import { ablateExport, ablateModel, ablateShow, type AblateOutput } from './plot/ablate.ts';
import { steerExport, type SteerOutput } from './plot/steer.ts';
import { parseOpen, patchExport, type PatchOutput } from './plot/patch.ts';
import type { FigureExport } from './plot/figure.ts';
import type { Settings } from '../src/notebook/settings.ts';

type FigureFn = (output: never, s: Settings) => FigureExport;

const figures: Record<string, FigureFn> = {
  attention: (o: AttentionOutput, s) => attentionFigure(o, viewState(s, o, null)),
  'next-token': (o: NextTokenOutput, s) => nextTokenExport(nextTokenModel(o, nextTokenView(s))),
  'logit-lens': (o: LogitLensOutput, s) => logitLensExport(o, { view: s['view'] === 'target' ? 'target' : 'grid' }),
  activations: (o: ActivationsOutput, s) => activationsExport(o, {
    normView: s['norm_view'] === 'lines' ? 'lines' : 'heatmap',
    ...(typeof s['bins'] === 'number' ? { bins: s['bins'] } : {}), logY: s['log_y'] === true,
  }),
  embeddings: (o: EmbeddingsOutput, s) => embeddingsExport(o, { labels: s['labels'] !== false }),
  sampling: (o: SamplingOutput, s) => samplingExport(samplingModel(o.logits, s, o.history, {
    pieces: o.pieces, ...(typeof s['show'] === 'number' ? { show: s['show'] } : {}),
  })),
  generate: (o: GenerateOutput, s) => generateExport(o, generateView(s)),
  attribution: (o: AttributionOutput) => attributionExport(o),
  ablate: (o: AblateOutput, s) => ablateExport(ablateModel(o, ablateShow(s))),
  steer: (o: SteerOutput) => steerExport(o),
  patch: (o: PatchOutput, s) => patchExport(o, { open: parseOpen(s['open'], o) }),
};

/** The figure of a visual cell, or null for other kinds and cells with nothing computed yet. */
export function figureOf(kind: string, output: unknown, settings: Settings): FigureExport | null {
  if (!Object.hasOwn(figures, kind) || !output) return null;
  return figures[kind]!(output as never, settings);
}
