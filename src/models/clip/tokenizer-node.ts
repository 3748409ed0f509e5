// Node-only loading of the CLIP tokenizer vocabulary from disk (the tokenizer itself,
// tokenizer.ts, stays browser-safe).

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClipTokenizer } from './tokenizer.js';

const OFFICIAL_GZ = 'bpe_simple_vocab_16e6.txt.gz';
const EXPECTED = `the official ${OFFICIAL_GZ}, or a directory holding vocab.json + merges.txt (Hugging Face) or ${OFFICIAL_GZ}`;

async function kindOf(path: string): Promise<'file' | 'directory' | 'missing'> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'directory' : 'file';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
}

async function fromGzFile(file: string): Promise<ClipTokenizer> {
  const bytes = await readFile(file);
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
  const kind = await kindOf(path);
  if (kind === 'missing') throw new Error(`loadClipTokenizer: ${path} does not exist (expected ${EXPECTED})`);
  if (kind === 'file') return fromGzFile(path);

  const vocabPath = join(path, 'vocab.json');
  const mergesPath = join(path, 'merges.txt');
  const [vocabKind, mergesKind] = await Promise.all([kindOf(vocabPath), kindOf(mergesPath)]);
  if (vocabKind === 'file' && mergesKind === 'file') {
    const [vocab, merges] = await Promise.all([readFile(vocabPath, 'utf8'), readFile(mergesPath, 'utf8')]);
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
