// Node byte source over a file (positional reads on one file handle), so a
// large safetensors file is read tensor by tensor instead of loaded whole;
// and bounded whole-file reads for user files (images), which refuse what is
// not a regular file (a named pipe would block forever, /dev/zero never ends)
// or is larger than a stated limit, before reading a byte; and whether a
// path exists.

import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
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

/** Opens the safetensors file at `path`, hands it to `use` (a model loader) and closes it however `use` ends. */
export async function withSafetensorsFile<T>(path: string, use: (file: SafetensorsFile) => Promise<T>): Promise<T> {
  const file = await openSafetensorsFile(path);
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

/**
 * Largest image file read (bytes): 4× a 16384² RGBA PNG stored uncompressed
 * would be more, but no medical image in a few-shot folder comes near it,
 * and it keeps a mislabelled multi-gigabyte file from being read whole.
 */
export const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;

/**
 * The bytes of a regular file of at most `maxBytes`; otherwise an Error naming
 * the file and what it is (directory, named pipe, device, too large). The
 * check is on the opened handle, so a link swapped in between cannot slip by.
 */
export async function readRegularFile(path: string, maxBytes: number = MAX_IMAGE_FILE_BYTES): Promise<Uint8Array> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new Error(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a named pipe' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'not a regular file';
      throw new Error(`${path}: expected a regular file, found ${kind}`);
    }
    if (st.size > maxBytes) throw new Error(`${path}: the file has ${st.size} bytes, more than the limit of ${maxBytes}`);
    const out = new Uint8Array(st.size);
    for (let done = 0; done < st.size; ) {
      const { bytesRead } = await handle.read(out, done, st.size - done, done);
      if (bytesRead === 0) throw new Error(`${path}: the file ended at byte ${done} of ${st.size}; did it shrink while being read?`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** Whether anything (file, folder, link to something) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
