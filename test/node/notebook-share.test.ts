// Share links in Node (which has CompressionStream 'deflate-raw'); the browser test repeats the
// round trip with Chromium's streams. base64url is checked against Node's own encoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { decodeShare, encodeShare, fromBase64url, openShared, shareLink, SHARE_LIMIT, toBase64url } from '../../src/notebook/share.ts';

const fixtures = resolve(fileURLToPath(import.meta.url), '../../fixtures/notebooks');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

test('base64url matches Node\'s encoder, and rejects what is not base64url', () => {
  for (let n = 0; n < 70; n++) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 97 + n * 31) & 255);
    const s = toBase64url(bytes);
    assert.equal(s, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(fromBase64url(s), bytes);
  }
  assert.equal(fromBase64url('ab+c'), null);
  assert.equal(fromBase64url('abcde'), null);
  assert.equal(fromBase64url('ab=='), null);
});

test('every fixture notebook survives a share link exactly', async () => {
  for (const name of readdirSync(fixtures).filter((n) => n.endsWith('.md'))) {
    const text = utf8.decode(readFileSync(join(fixtures, name)));
    const hash = await encodeShare(text);
    assert.match(hash, /^#nb=[zt][A-Za-z0-9_-]*$/);
    assert.equal(await decodeShare(hash), text, name);
    const plain = await encodeShare(text, { compress: false });
    assert.equal(plain[4], 't');
    assert.equal(await decodeShare(plain), text, name);
  }
  const link = await shareLink('# hi 🦙\n', 'https://glassbox.example/app/?x=1#old');
  assert.match(link, /^https:\/\/glassbox\.example\/app\/\?x=1#nb=/);
  assert.equal(await decodeShare(new URL(link).hash), '# hi 🦙\n');
});

test('links longer than the limit are refused with a message; compressible text fits', async () => {
  assert.equal(SHARE_LIMIT, 32768);
  let seed = 1;
  const next = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t ^= t + Math.imul(t ^ (t >>> 7), 61 | t); return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32; };
  const noise = Array.from({ length: 40000 }, () => String.fromCharCode(33 + Math.floor(next() * 90))).join('');
  await assert.rejects(encodeShare(noise), /share link: this notebook needs a link of \d+\.\d KiB; share links are at most 32 KiB\. Save it as \.md/);
  const repetitive = '```attention\nlayer: 1\n```\n\n'.repeat(3000);       // 78 KB of text
  const hash = await encodeShare(repetitive);
  assert.ok(hash.length < 2000 && hash[4] === 'z', `${hash.length}`);
  assert.equal(await decodeShare(hash), repetitive);
});

test('damaged links and deflate bombs are refused with a message', async () => {
  assert.equal(await decodeShare('#other=1'), null);
  assert.equal(await decodeShare(''), null);
  await assert.rejects(decodeShare('#nb=z!!!!'), /share link: is damaged \(it is not base64url text\)/);
  await assert.rejects(decodeShare(`#nb=z${toBase64url(new Uint8Array([0xff, 0xff, 0xff, 0x00, 0x13]))}`), /does not decompress/);
  await assert.rejects(decodeShare(`#nb=t${toBase64url(new Uint8Array([0xc3, 0x28]))}`), /not UTF-8 text/);
  const bomb = deflateRawSync(Buffer.alloc(17 * 2 ** 20, 0x61));   // 17 MiB of 'a' in ~17 KB
  const hash = `#nb=z${toBase64url(bomb)}`;
  assert.ok(hash.length < SHARE_LIMIT);
  await assert.rejects(decodeShare(hash), /holds more than 16 MiB of text; it is refused/);
});

test('a shared notebook opens read-only and asks before loading its model', async () => {
  const hostile = utf8.decode(readFileSync(join(fixtures, 'hostile.md')));
  const s = await openShared(await encodeShare(hostile));
  assert.deepEqual({ ...s, text: s!.text === hostile }, { text: true, readonly: true, model: 'https://evil.example/model.gguf', modelIsUrl: true, needsConfirmation: true });
  const named = await openShared(await encodeShare('---\nmodel: stories15M\n---\nhi\n'));
  assert.deepEqual([named!.model, named!.modelIsUrl, named!.needsConfirmation], ['stories15M', false, true]);
  const none = await openShared(await encodeShare('no front matter\n'));
  assert.deepEqual([none!.model, none!.needsConfirmation], [null, false]);
  assert.equal(await openShared('#section-2'), null);
});
