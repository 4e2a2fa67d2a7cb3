// Share links: the whole notebook in the URL fragment (`#nb=…`), so nothing goes to a server (a
// fragment is never sent in the request). The text is compressed with CompressionStream
// 'deflate-raw' when the browser has it (the shorter of compressed and plain is used), then
// base64url-encoded. The first character after `nb=` says which: 'z' deflate-raw, 't' plain UTF-8.
//
// Links whose fragment would be longer than SHARE_LIMIT (32 KiB) are refused: such URLs get cut
// by chat apps, mail clients and URL shorteners, and a notebook that size is better sent as a .md.
// A shared notebook opens read-only, and the model its front matter names is not loaded until the
// user confirms (`needsConfirmation`): a link must not make the browser download gigabytes.

import { UsageError } from '../engine/errors.ts';
import { parseNotebook } from './format.ts';

/** Longest fragment (`#nb=…`, in characters) a share link may have. */
export const SHARE_LIMIT = 32 * 1024;
/** Longest fragment accepted when opening a link (a hand-made one may exceed SHARE_LIMIT). */
const OPEN_LIMIT = 2 * 2 ** 20;
/** Largest notebook a link may inflate to (a deflate bomb stops here). */
const MAX_TEXT_BYTES = 16 * 2 ** 20;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

export function toBase64url(bytes: Uint8Array): string {
  const out: string[] = [];
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out.push(B64[n >> 18]!, B64[(n >> 12) & 63]!, B64[(n >> 6) & 63]!, B64[n & 63]!);
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | ((rest === 2 ? bytes[i + 1]! : 0) << 8);
    out.push(B64[n >> 18]!, B64[(n >> 12) & 63]!);
    if (rest === 2) out.push(B64[(n >> 6) & 63]!);
  }
  return out.join('');
}

/** null when `s` is not base64url (no padding). */
export function fromBase64url(s: string): Uint8Array | null {
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (const c of s) {
    const v = B64_INDEX.get(c);
    if (v === undefined) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 255;
    }
  }
  return out;
}

function canCompress(): boolean {
  try {
    new CompressionStream('deflate-raw');
    return true;
  } catch {
    return false;
  }
}

/** Runs bytes through a (de)compression stream, stopping past `limit` output bytes. */
async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream, limit: number): Promise<Uint8Array | null> {
  const writer = stream.writable.getWriter();
  // Errors surface on the reader; the writer's promises are only awaited to avoid unhandled rejections.
  writer.write(bytes as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
}

/** The fragment carrying the notebook (`#nb=…`). Throws a UsageError when it would be too long. */
export async function encodeShare(text: string, opts: { compress?: boolean } = {}): Promise<string> {
  const plain = new TextEncoder().encode(text);
  let best = `#nb=t${toBase64url(plain)}`;
  if ((opts.compress ?? true) && canCompress()) {
    const z = await pipe(plain, new CompressionStream('deflate-raw'), Infinity);
    const zipped = `#nb=z${toBase64url(z!)}`;
    if (zipped.length < best.length) best = zipped;
  }
  if (best.length > SHARE_LIMIT) {
    throw new UsageError('share link', `this notebook needs a link of ${(best.length / 1024).toFixed(1)} KiB; share links are at most ${SHARE_LIMIT / 1024} KiB`,
      'Save it as .md and send the file, or remove some prose');
  }
  return best;
}

/** A full share URL: `base` (the app's address, any fragment dropped) plus the fragment. */
export async function shareLink(text: string, base: string): Promise<string> {
  return base.replace(/#.*$/, '') + (await encodeShare(text));
}

/** The notebook text in a fragment made by encodeShare; null when the fragment holds none. */
export async function decodeShare(hash: string): Promise<string | null> {
  const m = /^#?nb=([zt])(.*)$/s.exec(hash);
  if (!m) return null;
  if (hash.length > OPEN_LIMIT) throw new UsageError('share link', `is ${(hash.length / 2 ** 20).toFixed(1)} MiB long; links of at most ${OPEN_LIMIT / 2 ** 20} MiB are opened`);
  const bytes = fromBase64url(m[2]!);
  if (!bytes) throw new UsageError('share link', 'is damaged (it is not base64url text)', 'Copy the whole link again');
  let data: Uint8Array | null = bytes;
  if (m[1] === 'z') {
    if (typeof DecompressionStream !== 'function') throw new UsageError('share link', 'is compressed, and this browser cannot decompress it', 'Open it in a current browser');
    try {
      data = await pipe(bytes, new DecompressionStream('deflate-raw'), MAX_TEXT_BYTES);
    } catch {
      throw new UsageError('share link', 'is damaged (its compressed data does not decompress)', 'Copy the whole link again');
    }
    if (!data) throw new UsageError('share link', `holds more than ${MAX_TEXT_BYTES / 2 ** 20} MiB of text; it is refused`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
  } catch {
    throw new UsageError('share link', 'is damaged (it is not UTF-8 text)', 'Copy the whole link again');
  }
}

export interface SharedNotebook {
  text: string;
  /** Always true: the page shows it read-only, with "make a copy". */
  readonly: true;
  /** The model its front matter names (a catalog name or a URL), not loaded yet. */
  model: string | null;
  modelIsUrl: boolean;
  /** True when it names a model: ask the user before loading it. */
  needsConfirmation: boolean;
}

/** Opens the notebook a page's fragment carries; null when there is none. */
export async function openShared(hash: string): Promise<SharedNotebook | null> {
  const text = await decodeShare(hash);
  if (text === null) return null;
  const model = parseNotebook(text).frontMatter?.values['model'];
  const name = typeof model === 'string' && model.trim() !== '' ? model.trim() : null;
  return { text, readonly: true, model: name, modelIsUrl: name !== null && /^[a-z][a-z0-9+.-]*:/i.test(name), needsConfirmation: name !== null };
}
