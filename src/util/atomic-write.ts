// Atomic file replacement for checkpoints, cache entries and the tuning file:
// the bytes go to a temporary file in the same directory (so the rename stays
// on one file system), are fsynced, then renamed over the target. A reader
// sees the old file or the complete new one, never a torn write, even if the
// process dies. writeFileAtomicSync is the same steps for callers that cannot
// wait (a TuningStore's set is synchronous).

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A fresh temporary name next to `path` (hidden, unique per process and call). */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Writes `data` to `path` atomically (tmp file in the same dir + fsync + rename). The directory must exist. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPath(path);
  let renamed = false;
  try {
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDirectory(dirname(path));
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/** writeFileAtomic, blocking. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirectorySync(dirname(path));
}

/** Makes the rename itself durable. Some platforms (Windows) cannot open a directory; the rename has still happened. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort only
  } finally {
    await handle?.close();
  }
}

/** syncDirectory, blocking (best effort as well). */
function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort only
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
