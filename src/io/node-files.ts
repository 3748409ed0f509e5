// Node byte source over a file (positional reads on one file handle), so a
// large safetensors file is read tensor by tensor instead of loaded whole.

import { open } from 'node:fs/promises';
import { openSafetensors, type ByteSource, type SafetensorsFile } from './safetensors.js';

/** A ByteSource over the file at `path`; close() closes the handle. */
export async function fileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (e) {
    await handle.close();
    throw e;
  }
  return {
    name: path,
    size,
    async read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        throw new Error(`${path}: cannot read ${length} bytes at offset ${offset}: the file has ${size} bytes`);
      }
      // A fresh, exactly sized array (not a pooled Buffer), so callers may keep views of it.
      const out = new Uint8Array(length);
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: the file ended at byte ${offset + done} while reading bytes [${offset}, ${offset + length}); did it shrink after opening?`);
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
}

/** Opens the safetensors file at `path` (header validated; tensors read on demand). */
export async function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  return openSafetensors(await fileSource(path), path);
}
