// The limits of ROBUSTNESS.md's table that Node can check: the weight arena refuses a model past
// wasm32's 4 GiB before allocating anything, with a message that says what to do; the page's cell
// limit keeps a notebook's first MAX_CELLS cells and says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightArena } from '../../src/engine/arena.ts';
import { UnsupportedError } from '../../src/engine/errors.ts';
import { MAX_CELLS, cellLimitMessage, shownCells } from '../../src/app/limits.ts';
import { parseNotebook } from '../../src/notebook/format.ts';

test('the weight arena refuses 4 GiB + 1 page before allocating, naming the size and what to do', () => {
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => new WeightArena(2 ** 32 + 65536, { shared: false }), (e: unknown) => e instanceof UnsupportedError
    && /needs 4\.00 GiB of weight memory; the WebAssembly engine can address at most 4 GiB/.test(e.message)
    && /Choose a smaller or more strongly quantized model/.test(e.message));
  assert.throws(() => new WeightArena(5 * 2 ** 30, { shared: false }), /needs 5\.00 GiB/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 2 ** 20, 'nothing was allocated');
  // Growth past the limit is refused the same way (a small arena asked for too much at once).
  const a = new WeightArena(65536, { shared: false });
  assert.throws(() => a.alloc(2 ** 32 + 1), (e: unknown) => e instanceof UnsupportedError && /out of WebAssembly memory \(4 GiB\)/.test(e.message));
});

test(`a notebook past ${MAX_CELLS} cells: the first ${MAX_CELLS} are shown, the text is kept, the message gives both counts`, () => {
  const n = MAX_CELLS * 3;
  const text = '# Many\n\n' + Array.from({ length: n / 2 }, (_, i) => `\`\`\`prompt\nline ${i}\n\`\`\`\n\npara ${i}\n\n`).join('');
  const nb = parseNotebook(text);
  assert.ok(nb.cells.length > MAX_CELLS);
  const shown = shownCells(nb);
  assert.equal(shown.cells.length, MAX_CELLS);
  assert.deepEqual(shown.cells, nb.cells.slice(0, MAX_CELLS));
  assert.equal(shown.frontMatter, nb.frontMatter);
  assert.match(cellLimitMessage(nb.cells.length), new RegExp(`has ${nb.cells.length.toLocaleString('en')} cells; glassbox draws at most ${MAX_CELLS}`));
  // Within the limit: the same object (the reactive graph sees no change) and no message.
  const small = parseNotebook('```prompt\nhi\n```\n');
  assert.equal(shownCells(small), small);
  assert.equal(cellLimitMessage(small.cells.length), '');
});
