// Chat-template mode of the prompt cell, in the app: a small random-weight model that carries the
// Llama 3 tokenizer and its chat template (synthesized here into a GGUF, loaded as a picked file).
// Ticking "chat template" wraps the text as the user's turn: the template's control tokens appear
// as single special chips, the Markdown records `chat`, and unticking gives the plain tokens back.
import { expect } from 'chai';
import '../../src/app/app.ts';
import type { GlassboxApp } from '../../src/app/app.ts';
import { synthModel, shapeConfig } from '../../src/formats/synth.ts';
import { readTokenizerData } from '../../src/tokenizer/open.ts';
import { bytesSource } from '../../src/formats/source.ts';
import type { ModelSource } from '../../src/worker/loading/types.ts';
import { until } from '../support/until.ts';


async function chatModel(): Promise<File> {
  const get = async (p: string) => new Uint8Array(await (await fetch(`/models/local/llama3-tokenizer/${p}`)).arrayBuffer());
  const vocab = await readTokenizerData(bytesSource(await get('tokenizer.json'), 'tokenizer.json'), bytesSource(await get('tokenizer_config.json'), 'tokenizer_config.json'));
  expect(vocab.chatTemplate, 'the Llama 3 tokenizer_config.json carries a chat template').to.be.a('string');
  // Llama 3's vocabulary on a tiny body: 2 layers, d_model 32 (the embedding dominates: ~8 MB Q8_0).
  const config = { ...shapeConfig('llama-3.2-1b'), nLayers: 2, dModel: 32, dFfn: 64, nHeads: 4, nKvHeads: 2, dHead: 8, nCtx: 256, ropeScaling: null };
  const { files } = synthModel({ config, type: 'Q8_0', seed: 7, format: 'gguf', vocab });
  return new File([files[0]!.bytes as Uint8Array<ArrayBuffer>], 'llama3-chat-tiny.gguf');
}

describe('prompt cell: chat-template mode', function () {
  this.timeout(180000);

  it('wraps the text in the model\'s template, shows its control tokens, and writes `chat` into the notebook', async () => {
    const file = await chatModel();
    const app = document.createElement('glassbox-app') as GlassboxApp;
    app.search = '?backend=cpu';
    app.hash = '';
    app.autosaveId = `chat-${Date.now()}`;
    document.body.append(app);
    await app.ready;
    // What the model picker does with a picked file.
    const load = (app as unknown as { loadModel(s: ModelSource, label: string): Promise<void> }).loadModel.bind(app);
    await load({ kind: 'files', files: [file] }, file.name);
    expect(app.model?.tokenizer?.chatTemplate).to.equal(true);
    const prompt = () => app.shadowRoot!.querySelector('section[data-kind=prompt] glassbox-prompt')!.shadowRoot!;
    const chips = () => [...prompt().querySelectorAll<HTMLElement>('[data-testid=tokens] .tok')];
    const ta = await until(() => prompt().querySelector('textarea'), 'the prompt');
    ta.value = 'Hello there';
    ta.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
    await until(() => chips().length === 3 && chips()[0]!.dataset['id'] === '128000', 'BOS + "Hello there" (plain)');

    const box = prompt().querySelector<HTMLInputElement>('input[type=checkbox]')!;
    expect(box.disabled, 'the checkbox is enabled for a model with a template').to.equal(false);
    box.click();
    await until(() => chips().length > 8, 'the chat-wrapped tokens');
    const ids = chips().map((c) => Number(c.dataset['id']));
    // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n Hello there <|eot_id|> … assistant …
    expect(ids.slice(0, 4)).to.deep.equal([128000, 128006, 882, 128007]);
    expect(ids).to.include(128009);
    expect(ids.slice(-4)).to.deep.equal([128006, 78191, 128007, 271]);
    const special = chips().filter((c) => c.classList.contains('special')).map((c) => Number(c.dataset['id']));
    expect(special).to.include.members([128000, 128006, 128007, 128009]);
    expect(app.doc!.text).to.match(/```prompt chat\nHello there\n```/);

    box.click();
    await until(() => chips().length === 3, 'the plain tokens again');
    expect(app.doc!.text).to.match(/```prompt\nHello there\n```/);
    app.remove();
  });
});
