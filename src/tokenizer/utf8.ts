// Small UTF-8 helpers shared by the tokenizers. Text is JavaScript UTF-16; tokens are UTF-8 bytes.

/** Appends the UTF-8 bytes of code point `cp` (lone surrogates become U+FFFD, as TextEncoder does). */
export function pushUtf8(cp: number, out: number[]): void {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x80) {
    out.push(cp);
  } else if (cp < 0x800) {
    out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  } else if (cp < 0x10000) {
    out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  } else {
    out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  }
}

/** Number of UTF-8 bytes of code point `cp`. */
export function utf8Len(cp: number): number {
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp < 0x10000) return 3;
  return 4;
}

/**
 * For each UTF-8 byte of `s`, the UTF-16 range [start, end) of the character it belongs to. Used to
 * turn token byte ranges into text spans: a token that covers part of a character gets the whole
 * character's range.
 */
export function byteToUtf16(s: string): { start: Int32Array; end: Int32Array } {
  let n = 0;
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i)!;
    n += utf8Len(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp);
    i += cp > 0xffff ? 2 : 1;
  }
  const start = new Int32Array(n), end = new Int32Array(n);
  let b = 0;
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    const len = utf8Len(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp);
    for (let k = 0; k < len; k++, b++) { start[b] = i; end[b] = i + w; }
    i += w;
  }
  return { start, end };
}

export const utf8Encoder = new TextEncoder();
