// The prompt cell's token chips are one Tab stop (a roving tabindex): the arrow keys, Home and End
// move between chips, the focused chip is the linked hover, Enter pins it.
import { expect } from 'chai';
import '../../cells/prompt.ts';
import { NotebookDocument } from '../../src/notebook/document.ts';
import { linked } from '../../cells/plot/linked.ts';

describe('prompt cell: keyboard use of the token chips', () => {
  it('one Tab stop; arrows, Home and End move; focus hovers; Enter pins', async () => {
    const doc = new NotebookDocument('```prompt\nOnce upon a time\n```\n');
    const cell = doc.notebook.cells[0]!;
    const el = document.createElement('glassbox-prompt') as HTMLElement & { updateComplete: Promise<unknown> };
    document.body.append(el);
    const output = {
      text: 'Once upon a time', ids: [1, 403, 407, 261, 378], pieces: ['<s>', '▁Once', '▁upon', '▁a', '▁time'],
      spans: [[0, 0], [0, 4], [4, 9], [9, 11], [11, 16]],
    };
    const model = { tokenizer: { bosId: 1, eosId: 2, chatTemplate: false }, config: { nCtx: 512 } };
    Object.assign(el, { cell, doc, model, state: { status: 'done', output, error: undefined, runs: 1 } });
    await el.updateComplete;
    const root = el.shadowRoot!;
    const chips = () => [...root.querySelectorAll<HTMLElement>('.tok')];
    const stops = () => chips().filter((c) => c.tabIndex === 0).map((c) => Number(c.dataset['t']));
    expect(chips().length).to.equal(5);
    expect(stops()).to.deep.equal([0]);
    const key = async (k: string) => {
      (root.activeElement as HTMLElement).dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true, composed: true }));
      await el.updateComplete;
      await el.updateComplete;
    };
    chips()[0]!.focus();
    // focus events (which drive the hover) reach a page only while it has focus: an earlier test
    // file's page can leave this one in the background, so the hover is checked by its handler
    // when the page has no focus
    const focused = document.hasFocus();
    await key('ArrowRight');
    if (!focused) (root.activeElement as HTMLElement).dispatchEvent(new FocusEvent('focus'));
    expect(Number((root.activeElement as HTMLElement).dataset['t'])).to.equal(1);
    expect(stops()).to.deep.equal([1]);
    expect(linked.current.token).to.equal(1);
    await key('End');
    expect(Number((root.activeElement as HTMLElement).dataset['t'])).to.equal(4);
    await key('ArrowRight');                       // stays at the last chip
    expect(Number((root.activeElement as HTMLElement).dataset['t'])).to.equal(4);
    await key('Home');
    expect(Number((root.activeElement as HTMLElement).dataset['t'])).to.equal(0);
    await key('ArrowLeft');
    expect(stops()).to.deep.equal([0]);
    await key('ArrowRight');
    await key('Enter');
    expect(linked.pin.token).to.equal(1);
    el.remove();
  });
});
