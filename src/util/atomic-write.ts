// Atomic file replacement for checkpoints and cache entries: the bytes go to a
// temporary file in the same directory (so the rename stays on one file
// system), are fsynced, then renamed over the target. A reader sees the old
// file or the complete new one, never a torn write, even if the process dies.

import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `data` to `path` atomically (tmp file in the same dir + fsync + rename). The directory must exist. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
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
