// ByteSource over a file on disk, for Node (CLI, tests, benchmarks). Never imported by the page.

import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ByteSource } from './source.ts';
import { TruncatedFileError, ModelFormatError } from '../engine/errors.ts';

export async function fileSource(path: string): Promise<ByteSource> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new ModelFormatError(path, 'is not a file', 'Give the path of a model file');
    size = st.size;
  } catch (e) {
    if (e instanceof ModelFormatError) throw e;
    throw new ModelFormatError(path, `cannot be opened (${(e as Error).message})`, 'Check the path');
  }
  const handle = await open(path, 'r');
  const src: ByteSource = {
    name: basename(path),
    size,
    async read(offset, length) {
      const out = new Uint8Array(length);
      await src.readInto!(offset, out);
      return out;
    },
    async readInto(offset, dest) {
      const length = dest.length;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > size) {
        throw new TruncatedFileError(src.name,
          `needs bytes ${offset}..${offset + length} but the file is only ${size} bytes long`);
      }
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(dest, done, length - done, offset + done);
        if (bytesRead === 0) throw new TruncatedFileError(src.name, `ended early at byte ${offset + done}`);
        done += bytesRead;
      }
    },
    async close() { await handle.close(); },
  };
  return src;
}
