// The formats and tokenizers in the browser: the same code as in Node, reading through range
// requests (urlSource) and Blobs (blobSource), as the page does.
import { expect } from 'chai';
import { urlSource, blobSource } from '../../src/formats/source.ts';
import { openModel } from '../../src/formats/open.ts';
import { loadWeights, weightBytes } from '../../src/formats/load.ts';
import { WeightArena } from '../../src/engine/arena.ts';
import { openTokenizer } from '../../src/tokenizer/open.ts';
import { createTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { GlassboxError } from '../../src/engine/errors.ts';

const LOCAL = '/models/local/';

describe('formats in the browser', () => {
  it('reads stories260K.gguf through range requests and loads identical tensors from .bin via a Blob', async () => {
    const gguf = await openModel([await urlSource(`${LOCAL}tinystories-260k/stories260K.gguf`)]);
    expect(gguf.config.nLayers).to.equal(5);
    expect(gguf.config.nKvHeads).to.equal(4);
    const binBytes = await (await fetch(`${LOCAL}tinystories-260k/stories260K.bin`)).blob();
    const tokBytes = await (await fetch(`${LOCAL}tinystories-260k/tok512.bin`)).blob();
    const bin = await openModel([blobSource(binBytes, 'stories260K.bin')], { tokenizer: blobSource(tokBytes, 'tok512.bin') });
    const a = await loadWeights(gguf, new WeightArena(weightBytes(gguf)));
    const b = await loadWeights(bin, new WeightArena(weightBytes(bin)));
    for (const [name, t] of b) {
      const u = a.get(name);
      expect(u, name).to.not.equal(undefined);
      expect(u!.shape).to.deep.equal(t.shape);
      expect(Array.from(u!.data)).to.deep.equal(Array.from(t.data));
    }
  });

  it('tokenizes with the Llama 3 tokenizer.json and the Llama 2 vocab GGUF', async () => {
    const l3 = await openTokenizer(await urlSource(`${LOCAL}llama3-tokenizer/tokenizer.json`), await urlSource(`${LOCAL}llama3-tokenizer/tokenizer_config.json`));
    expect(l3.encode('Hello world', { bos: true })).to.deep.equal([128000, 9906, 1917]);
    const gguf = await openModel([await urlSource(`${LOCAL}tinystories-260k/stories260K.gguf`)]);
    const t = createTokenizer(gguf.tokenizer!);
    const ids = t.encode('Once upon a time');
    expect(ids[0]).to.equal(1);
    expect(t.decode(ids, { skipSpecial: true })).to.equal('Once upon a time');
    const spm = await openTokenizer(await urlSource(`${LOCAL}llamacpp-vocab/ggml-vocab-llama-spm.gguf`));
    expect(spm.encode('Hello world', { bos: false })).to.deep.equal([15043, 3186]);
  });

  it('rejects a damaged file with a named error that names it', async () => {
    const junk = new Blob([new Uint8Array([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 1])]);
    try {
      await openModel([blobSource(junk, 'broken.gguf')]);
      expect.fail('should have thrown');
    } catch (e) {
      expect(e).to.be.instanceOf(GlassboxError);
      expect((e as Error).message).to.contain('broken.gguf');
    }
  });
});

