// Steering vectors in llama.cpp's control-vector GGUF: written, read back, applied to stories260K
// (identical logits to the vector in memory), and bad files refused with the file and field named.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { openModel } from '../../src/formats/open.ts';
import { fileSource } from '../../src/formats/node-source.ts';
import { bytesSource } from '../../src/formats/source.ts';
import { readGguf } from '../../src/formats/gguf.ts';
import { writeGguf } from '../../src/formats/gguf-write.ts';
import { loadModelWeights } from '../../src/engine/weights.ts';
import { Session } from '../../src/engine/session.ts';
import { meanDifference } from '../../src/engine/edits.ts';
import { controlVectorEdits, readControlVector, writeControlVector } from '../../src/engine/control-vector.ts';
import { ModelFormatError } from '../../src/engine/errors.ts';

const path = fileURLToPath(new URL('../../../shared/models/tinystories-260k/stories260K.gguf', import.meta.url));
const src = await fileSource(path);
const weights = await loadModelWeights(await openModel([src]));
await (src as { close?: () => Promise<void> }).close?.();
const c = weights.config;                                   // d_model 64, 5 layers
const prompt = [1, 403, 407, 261, 378, 1597 % c.vocabSize, 300, 42];

test('a steering vector saved and reloaded in the control-vector format gives identical logits', async () => {
  const s = new Session(weights);
  // a mean-difference vector per layer from two prompts' residuals (the cell's recipe)
  const other = [1, 67, 91, 300, 12, 5, 77, 8];
  const names = [1, 2, 3].map((l) => `blocks.${l}.hook_resid_post`);
  const a = s.run(prompt, { capture: names }), b = s.run(other, { capture: names });
  const rows = (r: typeof a, n: string) => { const x = r.trace.get(n)!.data; return Array.from({ length: prompt.length }, (_, p) => x.subarray(p * c.dModel, (p + 1) * c.dModel)); };
  const directions = new Map([1, 2, 3].map((l) => [l, meanDifference(rows(a, names[l - 1]!), rows(b, names[l - 1]!))] as const));
  const cv = { modelHint: 'llama', dModel: c.dModel, directions };
  const bytes = writeControlVector(cv);

  // the file as llama.cpp reads it
  const file = await readGguf(bytesSource(bytes, 'steer.gguf'));
  assert.equal(file.metadata.get('general.architecture'), 'controlvector');
  assert.equal(file.metadata.get('controlvector.model_hint'), 'llama');
  assert.equal(file.metadataTypes.get('controlvector.layer_count'), 'i32');
  assert.equal(file.metadata.get('controlvector.layer_count'), 3);
  assert.deepEqual(file.tensorInfos.map((t) => [t.name, t.type, t.dims]), [1, 2, 3].map((l) => [`direction.${l}`, 'F32', [c.dModel]]));

  const back = await readControlVector(bytesSource(bytes, 'steer.gguf'), { dModel: c.dModel, nLayers: c.nLayers });
  for (const l of [1, 2, 3]) assert.deepEqual(back.directions.get(l), directions.get(l));
  const mem = s.run(prompt, { logits: 'all', edits: controlVectorEdits(cv, { strength: 4 }) });
  const disk = s.run(prompt, { logits: 'all', edits: controlVectorEdits(back, { strength: 4 }) });
  assert.equal(disk.reused, prompt.length - 1, 'the same numbers: the same edit set, the cache is reused');
  const fresh = new Session(weights).run(prompt, { logits: 'all', edits: controlVectorEdits(back, { strength: 4 }) });
  assert.deepEqual(disk.logits, mem.logits);
  assert.deepEqual(fresh.logits, mem.logits);
  const clean = s.run(prompt, { logits: 'all' });
  assert.notDeepEqual(clean.logits, mem.logits, 'steering changes the logits');
  assert.equal(controlVectorEdits(cv, { from: 2, to: 2 }).length, 1);
});

test('a control vector of the wrong dimension, type or layers is refused, naming the file and tensor', async () => {
  const v = (n: number) => new Float32Array(n).fill(0.5);
  const wrongDim = writeControlVector({ modelHint: 'llama', dModel: 288, directions: new Map([[1, v(288)]]) });
  await assert.rejects(readControlVector(bytesSource(wrongDim, 'big.gguf'), { dModel: c.dModel, nLayers: c.nLayers }),
    (e: unknown) => e instanceof ModelFormatError && /big\.gguf tensor direction\.1: has 288 floats but the model's d_model is 64/.test(e.message));
  const tooDeep = writeControlVector({ modelHint: 'llama', dModel: 64, directions: new Map([[9, v(64)]]) });
  await assert.rejects(readControlVector(bytesSource(tooDeep, 'deep.gguf'), { dModel: 64, nLayers: 5 }), /deep\.gguf tensor direction\.9: is for layer 9; the model has layers 0\.\.4/);
  const mixed = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'controlvector' }]], tensors: [
    { name: 'direction.1', typeName: 'F32', shape: [64], data: new Uint8Array(256) },
    { name: 'direction.2', typeName: 'F32', shape: [32], data: new Uint8Array(128) }] });
  await assert.rejects(readControlVector(bytesSource(mixed, 'mixed.gguf')), /mixed\.gguf tensor direction\.2: has 32 floats but other directions have 64/);
  const f16 = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'controlvector' }]], tensors: [{ name: 'direction.1', typeName: 'F16', shape: [64], data: new Uint8Array(128) }] });
  await assert.rejects(readControlVector(bytesSource(f16, 'half.gguf')), /half\.gguf tensor direction\.1: is F16; directions are F32/);
  const none = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'controlvector' }]], tensors: [] });
  await assert.rejects(readControlVector(bytesSource(none, 'empty.gguf')), /empty\.gguf: holds no direction/);
  const model = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'llama' }]], tensors: [] });
  await assert.rejects(readControlVector(bytesSource(model, 'model.gguf')), /model\.gguf general\.architecture: is "llama", not "controlvector"/);
  const count = writeGguf({ metadata: [['general.architecture', { type: 'string', value: 'controlvector' }], ['controlvector.layer_count', { type: 'i32', value: 4 }]],
    tensors: [{ name: 'direction.1', typeName: 'F32', shape: [64], data: new Uint8Array(256) }] });
  await assert.rejects(readControlVector(bytesSource(count, 'count.gguf')), /count\.gguf controlvector\.layer_count: says 4 layers but the file holds 1/);
  assert.throws(() => writeControlVector({ modelHint: 'llama', dModel: 64, directions: new Map([[0, v(64)]]) }), /direction\.0.*start at 1/);
  // a wrong-length vector given straight to a run is refused too
  assert.throws(() => new Session(weights).run(prompt, { edits: [{ hook: 'blocks.1.hook_resid_post', op: 'steer', vector: v(288) }] }), /edits\[0\]\.vector: has 288 floats; blocks\.1\.hook_resid_post rows have 64/);
});

test('Engine.run: the handle lists the edits that produced the trace; the edited activation is what it holds', async () => {
  const { Engine } = await import('../../src/engine/api.ts');
  const { readFileSync } = await import('node:fs');
  const engine = new Engine();
  await engine.load({ kind: 'files', files: [new File([readFileSync(path)], 'stories260K.gguf')] }, { backend: 'cpu', threads: 1 });
  const clean = await engine.run({ tokens: prompt, capture: 'blocks.2.attn.hook_z', slot: 'a' });
  assert.deepEqual(clean.edits, []);
  const vector = new Float32Array(c.dModel).fill(0.25);
  const h = await engine.run({ tokens: prompt, capture: 'blocks.2.attn.hook_z', slot: 'b', edits: [
    { hook: 'blocks.2.attn.hook_z', op: 'zero', heads: [3], positions: [1, 2] },
    { hook: 'blocks.1.hook_resid_post', op: 'steer', vector, strength: 2, positions: [4, 5, 6, 7] },
  ] });
  assert.equal(h.edits.length, 2);
  assert.deepEqual(h.edits[0], { hook: 'blocks.2.attn.hook_z', op: 'zero', positions: [1, 2], heads: [3] });
  assert.equal(h.edits[1]!.strength, 2);
  assert.match(h.edits[1]!.digest!, /^[0-9a-f]{8}:64$/);
  assert.equal(h.reused, 1, 'the cache is reused before position 1 only');
  const z = (await engine.activation(h, 'blocks.2.attn.hook_z')).data;
  const dHead = c.dHead, qd = c.nHeads * dHead;
  for (const p of [1, 2]) assert.ok(z.subarray(p * qd + 3 * dHead, p * qd + 4 * dHead).every((v) => v === 0));
  const top = await engine.topK(h, { k: 1 }), top0 = await engine.topK(clean, { k: 1 });
  assert.notDeepEqual(top.logits, top0.logits);
  await assert.rejects(engine.run({ tokens: prompt, edits: [{ hook: 'blocks.2.attn.hook_z', op: 'zero', heads: [99] }] }), /edits\[0\]\.heads\[0\]/);
});
