// The incremental SHA-256 against node:crypto: known vectors, random inputs of odd lengths fed in
// random pieces (so that block boundaries fall everywhere), and the padding edge cases 55/56/64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Sha256, sha256Hex, sha256Blob } from '../../src/worker/loading/sha256.ts';
import { Rng } from '../../src/engine/random.ts';

const ref = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('sha256: FIPS 180-4 vectors', () => {
  const enc = new TextEncoder();
  assert.equal(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex(enc.encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(sha256Hex(enc.encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
});

test('sha256: every length around the padding boundaries', () => {
  const rng = new Rng(7); const rand = () => rng.next();
  for (const n of [1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
    const b = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
    assert.equal(sha256Hex(b), ref(b), `length ${n}`);
  }
});

test('sha256: random inputs of odd lengths fed in random pieces', () => {
  const rng = new Rng(12345); const rand = () => rng.next();
  for (let trial = 0; trial < 24; trial++) {
    const n = 1 + Math.floor(rand() * 300_000) | 1;
    const b = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
    const h = new Sha256();
    for (let off = 0; off < n;) {
      const piece = Math.min(n - off, Math.floor(rand() * 5000));
      h.update(b.subarray(off, off + piece));
      off += piece;
    }
    assert.equal(h.hex(), ref(b), `trial ${trial}, ${n} bytes`);
  }
});

test('sha256: Blob read in slices, and misuse is refused', async () => {
  const rng = new Rng(99); const rand = () => rng.next();
  const b = Uint8Array.from({ length: 1_000_003 }, () => Math.floor(rand() * 256));
  assert.equal(await sha256Blob(new Blob([b]), { sliceBytes: 65_537 }), ref(b));
  const h = new Sha256().update(b);
  h.digest();
  assert.throws(() => h.update(b), /after digest/);
});
