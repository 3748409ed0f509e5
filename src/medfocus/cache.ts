// Content-addressed disk cache for expensive per-image results (SAM masks,
// CLIP features): the key is a sha256 over the input file's bytes plus
// everything else the result depends on (model id, options), so a changed
// image or setting can never return a stale entry. Entries are written
// atomically; an interrupted run leaves no partial file behind.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';

/** sha256 of `bytes`, lowercase hex. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A sha256 in lowercase hex: cache keys and memoised file hashes. */
const KEY = /^[0-9a-f]{64}$/;
const KIND = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class DiskCache {
  readonly dir: string;
  readonly stats = { hits: 0, misses: 0 };

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw new Error(`DiskCache: expected a directory path, got ${JSON.stringify(dir)}`);
    this.dir = dir;
  }

  /**
   * sha256 (hex) over the parts. Each part is hashed with a type tag and its
   * length, so ['ab', 'c'] and ['a', 'bc'] (or a string and the same bytes)
   * give different keys.
   */
  key(parts: (string | Uint8Array)[]): string {
    if (!Array.isArray(parts) || parts.length === 0) throw new Error('DiskCache.key: expected a non-empty array of strings and byte arrays');
    const hash = createHash('sha256');
    parts.forEach((part, i) => {
      let bytes: Uint8Array;
      let tag: string;
      if (typeof part === 'string') {
        bytes = new TextEncoder().encode(part);
        tag = 's';
      } else if (part instanceof Uint8Array) {
        bytes = part;
        tag = 'b';
      } else {
        throw new Error(`DiskCache.key: part ${i} is ${Object.prototype.toString.call(part)}; expected a string or a Uint8Array`);
      }
      hash.update(`${tag}${bytes.length}:`);
      hash.update(bytes);
    });
    return hash.digest('hex');
  }

  /** The entry's file: <dir>/<kind>/<first two hex digits>/<key>.bin (the fan-out keeps directories small). */
  pathOf(key: string, kind: string): string {
    if (typeof key !== 'string' || !KEY.test(key)) throw new Error(`DiskCache: key must be 64 lowercase hex digits (from key()), got ${JSON.stringify(key)}`);
    if (typeof kind !== 'string' || !KIND.test(kind)) {
      throw new Error(`DiskCache: kind must be letters, digits, '.', '_' or '-' (a folder name), got ${JSON.stringify(kind)}`);
    }
    return join(this.dir, kind, key.slice(0, 2), `${key}.bin`);
  }

  /** The stored bytes, or null (a miss) when there is no entry. */
  async get(key: string, kind: string): Promise<Uint8Array | null> {
    const path = this.pathOf(key, kind);
    try {
      const bytes = await readFile(path);
      this.stats.hits++;
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`DiskCache: cannot read ${path}: ${(e as Error).message}`);
      this.stats.misses++;
      return null;
    }
  }

  /** Stores `bytes` under (key, kind), replacing any entry atomically. */
  async put(key: string, kind: string, bytes: Uint8Array): Promise<void> {
    const path = this.pathOf(key, kind);
    if (!(bytes instanceof Uint8Array)) throw new Error(`DiskCache.put: expected a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
    await mkdir(join(this.dir, kind, key.slice(0, 2)), { recursive: true });
    await writeFileAtomic(path, bytes);
  }

  /**
   * sha256 of a (large) file's content, memoised in the cache under its path,
   * size, mtime and inode, so a checkpoint is read once, not once per run.
   * `what` names the file in errors. Not counted in `stats` (those count the
   * per-image results).
   */
  async fileHash(path: string, what: string): Promise<string> {
    let info;
    try {
      info = await stat(path);
    } catch (e) {
      throw new Error(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!info.isFile()) throw new Error(`${what}: ${path} is not a file`);
    const key = this.key(['file-hash', path, `size=${info.size}`, `mtime=${info.mtimeMs}`, `ino=${info.ino}`]);
    const memo = this.pathOf(key, 'file-hash');
    const hit = await readFile(memo, 'utf8').catch(() => null);
    if (hit !== null && KEY.test(hit)) return hit;
    const hash = createHash('sha256');
    try {
      for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    } catch (e) {
      throw new Error(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const hex = hash.digest('hex');
    await this.put(key, 'file-hash', new TextEncoder().encode(hex));
    return hex;
  }
}
