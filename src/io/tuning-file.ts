// A persistent TuningStore for Node: the per-adapter kernel variant choices
// as one JSON file, so a sweep runs once per machine, not once per process.

import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TuningStore } from '../kernels/tune.js';
import { writeFileAtomicSync } from '../util/atomic-write.js';

/**
 * Reads `path` (a missing file is an empty store; a corrupt one is an Error
 * naming it) and rewrites it atomically (util/atomic-write.ts) on every set.
 */
export function fileTuningStore(path: string): TuningStore {
  let entries: Record<string, string> = {};
  try {
    entries = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`fileTuningStore: ${path} is not a valid tuning file (${(e as Error).message}); delete it to re-tune`);
    }
  }
  if (typeof entries !== 'object' || entries === null || Object.values(entries).some((v) => typeof v !== 'string')) {
    throw new Error(`fileTuningStore: ${path} must hold a JSON object of strings; delete it to re-tune`);
  }
  return {
    get: (key) => entries[key],
    set(key, value) {
      entries[key] = value;
      mkdirSync(dirname(path), { recursive: true });
      writeFileAtomicSync(path, `${JSON.stringify(entries, null, 2)}\n`);
    },
  };
}
