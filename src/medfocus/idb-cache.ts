// A PipelineCache for pages: masks and features in memory and in IndexedDB,
// so a reload (or another visit) prepares the same images with the same
// settings without running MobileSAM again. The keys are the pipeline's own
// (content hash of the image bytes + segmenter + input side + options), so
// an entry can only be found by the same image under the same settings.
// Browser-safe; where IndexedDB is absent or refuses (private windows, quota)
// it keeps to memory and says so in `persistent` / `storeError`.

import type { PipelineCache } from './pipeline.js';

const STORE = 'entries';

/** Where a cache read found its entry. */
export interface CacheStats {
  memoryHits: number;
  /** Entries read back from IndexedDB (written by an earlier page or visit). */
  storedHits: number;
  misses: number;
}

function request<T>(req: IDBRequest<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`IndexedDB ${what}: ${req.error?.message ?? 'failed'}`));
  });
}

export class IndexedDbCache implements PipelineCache {
  private readonly memory = new Map<string, Uint8Array>();
  readonly stats: CacheStats = { memoryHits: 0, storedHits: 0, misses: 0 };
  /** Why entries are no longer written to IndexedDB (the first failure), or undefined. */
  storeError: string | undefined;

  private constructor(private db: IDBDatabase | undefined) {}

  /** Opens (or creates) the database `name`; without IndexedDB the cache lives in memory only. */
  static async open(name = 'medfocus-pipeline-cache'): Promise<IndexedDbCache> {
    const idb = globalThis.indexedDB;
    if (!idb) return Object.assign(new IndexedDbCache(undefined), { storeError: 'this context has no IndexedDB' });
    try {
      const open = idb.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE);
      return new IndexedDbCache(await request(open, `open ${name}`));
    } catch (e) {
      return Object.assign(new IndexedDbCache(undefined), { storeError: (e as Error).message });
    }
  }

  /** Whether entries survive a reload. */
  get persistent(): boolean {
    return this.db !== undefined;
  }

  key(parts: (string | Uint8Array)[]): string {
    return JSON.stringify(parts.map((p) => (typeof p === 'string' ? p : Array.from(p))));
  }

  async get(key: string, kind: string): Promise<Uint8Array | null> {
    const id = `${kind}|${key}`;
    const held = this.memory.get(id);
    if (held) {
      this.stats.memoryHits++;
      return held;
    }
    if (this.db) {
      const stored = await request(this.db.transaction(STORE, 'readonly').objectStore(STORE).get(id), `read ${kind}`).catch(() => undefined);
      if (stored instanceof Uint8Array) {
        this.memory.set(id, stored);
        this.stats.storedHits++;
        return stored;
      }
    }
    this.stats.misses++;
    return null;
  }

  async put(key: string, kind: string, bytes: Uint8Array): Promise<void> {
    const id = `${kind}|${key}`;
    this.memory.set(id, bytes);
    if (!this.db) return;
    try {
      // A copy of just these bytes (a view may share a larger buffer).
      await request(this.db.transaction(STORE, 'readwrite').objectStore(STORE).put(bytes.slice(), id), `write ${kind}`);
    } catch (e) {
      // Full or refused: keep working from memory.
      this.storeError = (e as Error).message;
      this.db.close();
      this.db = undefined;
    }
  }

  /** Removes every entry, stored and in memory. */
  async clear(): Promise<void> {
    this.memory.clear();
    if (this.db) await request(this.db.transaction(STORE, 'readwrite').objectStore(STORE).clear(), 'clear');
  }
}
