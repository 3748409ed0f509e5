// Node-only loading of the CLIP tokenizer vocabulary from disk (the tokenizer itself,
// tokenizer.ts, stays browser-safe). Every file is read with a size cap
// (MAX_VOCAB_FILE_BYTES, 16 MiB: the official files are 0.5–1.4 MB) before any parsing,
// and vocab.json / merges.txt must be valid UTF-8.

import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClipTokenizer, MAX_VOCAB_FILE_BYTES } from './tokenizer.js';

const OFFICIAL_GZ = 'bpe_simple_vocab_16e6.txt.gz';
const EXPECTED = `the official ${OFFICIAL_GZ}, or a directory holding vocab.json + merges.txt (Hugging Face) or ${OFFICIAL_GZ}`;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

async function kindOf(path: string): Promise<'file' | 'directory' | 'missing'> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'directory' : 'file';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new Error(`loadClipTokenizer: ${path} cannot be read (${(e as Error).message})`);
  }
}

/**
 * The bytes of `file`, refused past MAX_VOCAB_FILE_BYTES: at most that many bytes (+1, to
 * see that there are more) are ever read, even if the file grows while it is read.
 */
async function readCapped(file: string): Promise<Uint8Array> {
  const refuse = (size: string) =>
    new Error(`loadClipTokenizer: ${file} is ${size} bytes, more than the ${MAX_VOCAB_FILE_BYTES} (MAX_VOCAB_FILE_BYTES) a CLIP vocabulary file may have (the official ones are under 1.4 MB); refused`);
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    throw new Error(`loadClipTokenizer: ${file} cannot be read (${(e as Error).message})`);
  }
  try {
    const { size } = await handle.stat();
    if (size > MAX_VOCAB_FILE_BYTES) throw refuse(String(size));
    const buffer = new Uint8Array(Math.min(size, MAX_VOCAB_FILE_BYTES) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      // The buffer holds one byte more than the file had: it fills only if the file grew.
      if (length === buffer.length) throw length > MAX_VOCAB_FILE_BYTES ? refuse(`more than ${MAX_VOCAB_FILE_BYTES}`) : new Error(`loadClipTokenizer: ${file} grew while it was read`);
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

async function readText(file: string): Promise<string> {
  const bytes = await readCapped(file);
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    throw new Error(`loadClipTokenizer: ${file} is not valid UTF-8 text (expected a Hugging Face tokenizer file)`);
  }
}

async function fromGzFile(file: string): Promise<ClipTokenizer> {
  const bytes = await readCapped(file);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new Error(`loadClipTokenizer: ${file} is not a gzip file (expected ${EXPECTED})`);
  }
  try {
    return await ClipTokenizer.fromMergesGz(bytes);
  } catch (e) {
    throw new Error(`loadClipTokenizer: ${file}: ${(e as Error).message}`);
  }
}

/**
 * Loads the CLIP tokenizer from `path`: the official `bpe_simple_vocab_16e6.txt.gz`, or a
 * directory with a Hugging Face `vocab.json` + `merges.txt` (e.g. a model directory next to
 * model.safetensors) or with `bpe_simple_vocab_16e6.txt.gz`. Both forms give the same ids.
 */
export async function loadClipTokenizer(path: string): Promise<ClipTokenizer> {
  if (typeof path !== 'string' || path === '') throw new Error(`loadClipTokenizer: expected a path (${EXPECTED}), got ${path === '' ? 'an empty string' : typeof path}`);
  const kind = await kindOf(path);
  if (kind === 'missing') throw new Error(`loadClipTokenizer: ${path} does not exist (expected ${EXPECTED})`);
  if (kind === 'file') return fromGzFile(path);

  const vocabPath = join(path, 'vocab.json');
  const mergesPath = join(path, 'merges.txt');
  const [vocabKind, mergesKind] = await Promise.all([kindOf(vocabPath), kindOf(mergesPath)]);
  if (vocabKind === 'file' && mergesKind === 'file') {
    const vocab = await readText(vocabPath);
    const merges = await readText(mergesPath);
    try {
      return ClipTokenizer.fromVocabAndMerges(vocab, merges);
    } catch (e) {
      throw new Error(`loadClipTokenizer: ${path} (vocab.json + merges.txt): ${(e as Error).message}`);
    }
  }
  const gzPath = join(path, OFFICIAL_GZ);
  if ((await kindOf(gzPath)) === 'file') return fromGzFile(gzPath);
  const found = vocabKind === 'file' ? 'vocab.json without merges.txt' : mergesKind === 'file' ? 'merges.txt without vocab.json' : 'neither';
  throw new Error(`loadClipTokenizer: directory ${path} has no tokenizer vocabulary (found ${found}; expected vocab.json + merges.txt or ${OFFICIAL_GZ})`);
}
