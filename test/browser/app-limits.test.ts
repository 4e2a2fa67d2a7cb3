// Limits in the app (issue 11, ROBUSTNESS.md "Limits"): a notebook with 20,000 cells opens at
// once, says how many it has and that only the first MAX_CELLS are shown, draws exactly those,
// and keeps the whole text; a prompt longer than the model's context is flagged under the prompt
// and every cell that runs the model says the two lengths and what to do.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { MAX_CELLS } from '../../src/app/limits.ts';
import { until } from '../support/until.ts';

const MODEL = '/models/local/tinystories-260k/stories260K.gguf';
type CellEl = HTMLElement & { state: { status: string; error: unknown } | null };

function mount(text: string, query = ''): GlassboxApp {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/markdown' }));
  const app = document.createElement('glassbox-app') as GlassboxApp;
  app.search = `?notebook=${encodeURIComponent(url)}${query}`;
  app.hash = '';
  app.autosaveId = `limits-${Date.now()}-${Math.random()}`;
  document.body.append(app);
  return app;
}

describe('limits in the app', function () {
  this.timeout(180000);

  it(`a notebook of 20,000 cells opens, shows the first ${MAX_CELLS} and says so, and keeps its text`, async () => {
    const text = '# Many cells\n\n' + Array.from({ length: 10_000 }, (_, i) => `Paragraph ${i}.\n\n\`\`\`prompt\nprompt ${i}\n\`\`\`\n\n`).join('');
    const app = mount(text);
    await app.ready;
    await app.updateComplete;
    const alert = await until(() => app.shadowRoot!.querySelector('[data-testid=cell-limit]'), 'the cell-limit message');
    expect(alert.textContent).to.match(/has 20,000 cells; glassbox draws at most 500, so only the first 500 are shown/);
    expect(app.shadowRoot!.querySelectorAll('section.cell').length).to.equal(MAX_CELLS);
    expect(app.doc!.notebook.cells.length).to.equal(20_000);
    expect(app.doc!.text).to.equal(text);
    // An edit to a shown cell keeps every other cell's text.
    const first = app.doc!.notebook.cells.find((c) => c.kind === 'prompt')!;
    app.doc!.setText(first.id, 'edited');
    expect(app.doc!.text).to.equal(text.replace('```prompt\nprompt 0\n```', '```prompt\nedited\n```'));
    app.remove();
  });

  it('a prompt longer than the context: the prompt cell flags it, the cells that run the model name both lengths', async () => {
    const words = Array.from({ length: 700 }, (_, i) => `w${i}`).join(' ');
    const app = mount(['```prompt', words, '```', '', '```next-token', '```', '', '```attention', '```', ''].join('\n'), `&model=${MODEL}&backend=cpu`);
    await app.ready;
    await until(() => app.model, 'the model');
    const cell = (k: string) => app.shadowRoot!.querySelector<CellEl>(`section[data-kind="${k}"] glassbox-${k}`)!;
    await until(() => ['next-token', 'attention'].every((k) => cell(k)?.state?.status === 'error'), 'the cells refuse the prompt');
    const nCtx = app.model!.config.nCtx;
    const prompt = cell('prompt');
    const flag = await until(() => prompt.shadowRoot!.querySelector('[data-testid=context-limit]'), 'the prompt cell\'s flag');
    expect(flag.getAttribute('role')).to.equal('alert');
    expect(flag.textContent!.replace(/\s+/g, ' ')).to.match(new RegExp(`The prompt is \\d+ tokens but the model's context is ${nCtx} tokens.*Shorten the prompt`));
    for (const k of ['next-token', 'attention']) {
      const el = cell(k) as CellEl & { updateComplete: Promise<unknown> };
      await el.updateComplete;
      const err = el.shadowRoot!.querySelector('.error[role=alert]');
      expect(err?.textContent, k).to.match(new RegExp(`the prompt is \\d+ tokens but the model's context is ${nCtx} tokens\\. Shorten the prompt`));
    }
    app.remove();
  });
});
