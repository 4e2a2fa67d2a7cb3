// The inspector page: opening a local model shows its config, tensors and tokens.
import { expect } from 'chai';
import '../../src/app/inspector.ts';

async function until<T>(f: () => T | null | undefined, ms = 20000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (performance.now() - t0 > ms) throw new Error('timed out waiting for the page');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('<glassbox-inspector>', () => {
  it('offers the local models and opens one: config cards, tensor table, tokens under the text', async () => {
    const el = document.createElement('glassbox-inspector');
    document.body.append(el);
    const root = el.shadowRoot!;
    const select = await until(() => {
      const s = root.querySelector<HTMLSelectElement>('select');
      return s && s.options.length > 1 ? s : null;
    });
    const i = [...select.options].findIndex((o) => o.textContent === 'tinystories-260k/stories260K.gguf');
    expect(i).to.be.greaterThan(0);
    select.value = select.options[i]!.value;
    select.dispatchEvent(new Event('change'));
    const rows = await until(() => {
      const r = root.querySelectorAll('tbody tr');
      return r.length > 0 ? r : null;
    });
    expect(rows.length).to.equal(48);
    expect(root.textContent).to.contain('blocks.0.attn.wq');
    const tokens = await until(() => root.querySelector('[data-testid=tokens]'));
    expect(tokens.querySelectorAll('.tok').length).to.be.greaterThan(5);
    el.remove();
  });

  it('shows a clear error for a file that is not a model', async () => {
    const el = document.createElement('glassbox-inspector');
    document.body.append(el);
    const root = el.shadowRoot!;
    await until(() => root.querySelector('input[type=file]'));
    const input = root.querySelector<HTMLInputElement>('input[type=file]')!;
    const dt = new DataTransfer();
    dt.items.add(new File(['hello, not a model'], 'notes.gguf'));
    input.files = dt.files;
    input.dispatchEvent(new Event('change'));
    const alert = await until(() => root.querySelector('[role=alert]'));
    expect(alert.textContent).to.contain('notes.gguf');
    el.remove();
  });
});
