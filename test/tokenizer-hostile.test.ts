// Hostile CLIP vocabularies and texts (issue 16): every corrupt vocabulary is refused on
// load with an Error naming the file, the field and what was expected; a gzip bomb is
// refused after MAX_VOCAB_FILE_BYTES of output; BPE is O(n log n) and equals the official
// O(n²) algorithm (re-implemented below from simple_tokenizer.py) id for id; a giant word
// costs one 4,096-byte piece under truncate. gzip and CRC-32 come from node:zlib here.
//
// Times measured on the 2-core development machine (shared, so noisy), before → after:
// - one 80,000-letter word, tokenize(…, { truncate: true }): ~21 s (issue; here 20,000
//   letters took 3.1 s, quadratic) → 5–40 ms; encode() of the whole word → 85–200 ms.
// - a 1 GiB gzip bomb (1 MB of .gz): 1.3 GB of memory then an internal error (issue) →
//   refused in ~0.35 s, the peak RSS growing by ~30 MiB.
// - 200 distinct 4,000-letter words, truncate: every word encoded (about a minute with the
//   old quadratic BPE, extrapolated from 0.45 s per 5,000 letters; 0.7 s with the new one)
//   → ~20 ms.

import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, crc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import * as assert from 'uvu/assert';
import { ClipTokenizer, MAX_BPE_WORD_BYTES, MAX_VOCAB_FILE_BYTES } from '../src/models/clip/tokenizer.js';
import { cleanText } from '../src/models/clip/text-cleanup.js';
import { loadClipTokenizer } from '../src/models/clip/tokenizer-node.js';
import { BASE_MERGES, BASE_TOKENS, BYTE_SYMBOLS, BYTE_TO_CHAR, EOT, SOT, vocabJson } from './ref/clip-small-vocab.js';
import { assertThrows, NO_SHARED, rng, sharedPath, skip, suite } from './util.js';

// null when ../shared is absent (those tests skip); a missing file fails this file here.
const officialGz = sharedPath('clip-vocab', 'bpe_simple_vocab_16e6.txt.gz');

const test = suite('clip tokenizer: hostile vocabularies and texts');

const without = (token: string) => BASE_TOKENS.filter((t) => t !== token);

/**
 * A gzip file of `mib` MiB of zeros, built without deflating them all: one raw deflate
 * of 1 MiB ending in a sync flush (non-final blocks, byte-aligned) repeated, then an empty
 * final block and the gzip trailer (CRC-32 and size of the whole).
 */
function gzipBomb(mib: number): Uint8Array {
  const zeros = new Uint8Array(1 << 20);
  const block = deflateRawSync(zeros, { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  let crc = 0;
  for (let i = 0; i < mib; i++) crc = crc32(zeros, crc);
  const header = Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  const finalBlock = Uint8Array.from([0x03, 0x00]);
  const trailer = new Uint8Array(8);
  new DataView(trailer.buffer).setUint32(0, crc >>> 0, true);
  new DataView(trailer.buffer).setUint32(4, (mib * 2 ** 20) % 2 ** 32, true);
  const out = new Uint8Array(header.length + mib * block.length + finalBlock.length + trailer.length);
  out.set(header, 0);
  for (let i = 0; i < mib; i++) out.set(block, header.length + i * block.length);
  out.set(finalBlock, header.length + mib * block.length);
  out.set(trailer, out.length - 8);
  return out;
}

// First: the peak-RSS check must not inherit a peak from the tests that load the real vocabulary.
test('a gzip bomb is refused after MAX_VOCAB_FILE_BYTES of output, quickly and in bounded memory', async () => {
  // The construction is a real gzip stream: a small one inflates to exactly its zeros.
  assert.equal(gunzipSync(gzipBomb(2)), Buffer.alloc(2 << 20), 'a 2 MiB bomb inflates to 2 MiB of zeros');
  const bomb = gzipBomb(1024); // 1 GiB of zeros in ~1 MB, like the 611 KB → 1.3 GB
  assert.ok(bomb.length < 1.1e6, `${bomb.length} bytes`);
  const peakBefore = process.resourceUsage().maxRSS; // KiB
  const t0 = performance.now();
  await assertThrows(() => ClipTokenizer.fromMergesGz(bomb), /fromMergesGz: expected the gzip-compressed merges file/, new RegExp(`inflates to more than ${MAX_VOCAB_FILE_BYTES} bytes`), /decompression bomb/);
  const ms = performance.now() - t0;
  const grewMiB = (process.resourceUsage().maxRSS - peakBefore) / 1024;
  console.log(`gzip bomb (1 GiB in ${bomb.length} bytes): refused in ${ms.toFixed(0)} ms, peak RSS grew ${grewMiB.toFixed(0)} MiB`);
  assert.ok(ms < 5000, `refused in ${ms.toFixed(0)} ms (about 0.35 s measured)`);
  assert.ok(grewMiB < 200, `peak RSS grew ${grewMiB.toFixed(0)} MiB (the cap is 16 MiB; inflating it all took 1.3 GB)`);

  const dir = await mkdtemp(join(tmpdir(), 'clip-hostile-'));
  try {
    const file = join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    await writeFile(file, bomb);
    await assertThrows(() => loadClipTokenizer(file), new RegExp(`loadClipTokenizer: ${file}: .*inflates to more than ${MAX_VOCAB_FILE_BYTES} bytes`));
    // A file over the cap is refused by its size, before it is read.
    await writeFile(file, new Uint8Array(MAX_VOCAB_FILE_BYTES + 1));
    await assertThrows(() => loadClipTokenizer(file), new RegExp(`${file} is ${MAX_VOCAB_FILE_BYTES + 1} bytes, more than the ${MAX_VOCAB_FILE_BYTES}`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the small vocabulary used below is valid', () => {
  const t = ClipTokenizer.fromVocabAndMerges(vocabJson(BASE_TOKENS), BASE_MERGES);
  assert.is(t.vocabSize, 516);
  assert.equal([t.sotToken, t.eotToken], [514, 515]);
  assert.equal(t.encode('abc ab'), [513, BASE_TOKENS.indexOf('a'), BASE_TOKENS.indexOf('b</w>')]);
  assert.is(t.decode(t.encode('abc ab')), 'abc ab ');
});

test('corrupt vocab.json / merges.txt: each refused by name', async () => {
  const base = vocabJson(BASE_TOKENS);
  const cases: [string, string, string, RegExp[]][] = [
    ['an id past 2^31 (it would wrap in the Int32Array rows)', base.replace('"ab":512', '"ab":2147483648'), BASE_MERGES, [/vocab\.json maps "ab" to 2147483648, expected an id below 516/, /ids 0\.\.515, each once/]],
    ['a gap in the ids', base.replace('"ab":512', '"ab":600'), BASE_MERGES, [/vocab\.json maps "ab" to 600, expected an id below 516/]],
    ['an id given twice', base.replace('"ab":512', '"ab":3'), BASE_MERGES, [/vocab\.json gives id 3 to both ".*" and "ab", expected each id once/]],
    ['a fractional id', base.replace('"ab":512', '"ab":1.5'), BASE_MERGES, [/vocab\.json maps "ab" to 1\.5, expected a non-negative integer id/]],
    ['a negative id', base.replace('"ab":512', '"ab":-1'), BASE_MERGES, [/vocab\.json maps "ab" to -1, expected a non-negative integer id/]],
    ['no start token', vocabJson(without(SOT)), BASE_MERGES, [/the vocabulary lacks <\|startoftext\|> \(vocab\.json must hold/]],
    ['no end token', vocabJson(without(EOT)), BASE_MERGES, [/the vocabulary lacks <\|endoftext\|>/]],
    ['end token not the last id', vocabJson([...BASE_TOKENS.slice(0, 514), EOT, SOT]), BASE_MERGES, [/<\|endoftext\|> has id 514, expected the largest id 515: CLIP's text tower pools/]],
    ['end token listed twice', base.replace(/}$/, `,"${EOT}":515}`), BASE_MERGES, [/vocab\.json lists <\|endoftext\|> 2 times, expected exactly once/]],
    ['start token listed twice', base.replace(/^{/, `{"${SOT}":7,`), BASE_MERGES, [/vocab\.json lists <\|startoftext\|> 2 times, expected exactly once/]],
    ['a token that is not byte characters', vocabJson(BASE_TOKENS.map((t) => (t === 'ab' ? 'a b' : t))), BASE_MERGES, [/vocab\.json token "a b" \(id 512\) is not made of byte characters/]],
    ['an empty token', vocabJson(BASE_TOKENS.map((t) => (t === 'ab' ? '' : t))), BASE_MERGES, [/vocab\.json token "" \(id 512\) is not made of byte characters/]],
    ['a byte symbol missing', vocabJson(without('a</w>')), BASE_MERGES, [/the vocabulary lacks the byte symbol "a<\/w>"/]],
    ['a merge over an unknown symbol', base, '#version: 0.2\na b\na bc</w>\n', [/merge 2 "a bc<\/w>" merges "bc<\/w>", expected a symbol of the vocabulary other than .* \(merges\.txt line 3\)/]],
    ['a merge that makes a special token', base, `#version: 0.2\na b\n<|startoftext| >\n`, [/merge 2 "<\|startoftext\| >" makes the special token <\|startoftext\|>.*\(merges\.txt line 3\)/]],
    ['a merge whose result is not in the vocabulary', base, '#version: 0.2\nb c\n', [/merge 1 "b c" makes "bc", which is not in the vocabulary \(merges\.txt line 2\)/]],
    ['a merge listed twice', base, '#version: 0.2\na b\n\na b\n', [/merge 2 "a b" repeats merge 1, expected each pair once \(merges\.txt line 4\)/]],
    ['a merges line of three symbols', base, '#version: 0.2\na b c\n', [/merges line 2 should be two symbols separated by a space/]],
    ['vocab.json not an object', '"ab"', BASE_MERGES, [/expected vocab\.json to be an object of token → id, got string/]],
    ['vocab.json null', 'null', BASE_MERGES, [/expected vocab\.json to be an object of token → id, got null/]],
  ];
  for (const [name, vocab, merges, patterns] of cases) {
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges(vocab, merges), /^ClipTokenizer\.fromVocabAndMerges: /, ...patterns).catch((e: Error) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
  await assertThrows(() => ClipTokenizer.fromVocabAndMerges(base, 5 as unknown as string), /expected the text of merges\.txt as a string, got number/);

  // Through the loader: the directory is named, and bytes that are not UTF-8 are refused.
  const dir = await mkdtemp(join(tmpdir(), 'clip-hostile-'));
  try {
    const hf = join(dir, 'hf');
    await mkdir(hf);
    await writeFile(join(hf, 'merges.txt'), BASE_MERGES);
    await writeFile(join(hf, 'vocab.json'), base.replace('"ab":512', '"ab":2147483648'));
    await assertThrows(() => loadClipTokenizer(hf), new RegExp(`loadClipTokenizer: ${hf} \\(vocab\\.json \\+ merges\\.txt\\): .*vocab\\.json maps "ab" to 2147483648`));
    await writeFile(join(hf, 'vocab.json'), Uint8Array.from([0x7b, 0xff, 0x7d]));
    await assertThrows(() => loadClipTokenizer(hf), new RegExp(`${join(hf, 'vocab.json')} is not valid UTF-8`));
    await writeFile(join(hf, 'vocab.json'), new Uint8Array(MAX_VOCAB_FILE_BYTES + 1).fill(0x20));
    await assertThrows(() => loadClipTokenizer(hf), new RegExp(`${join(hf, 'vocab.json')} is ${MAX_VOCAB_FILE_BYTES + 1} bytes, more than the ${MAX_VOCAB_FILE_BYTES}`));
    await writeFile(join(hf, 'vocab.json'), base);
    assert.is((await loadClipTokenizer(hf)).vocabSize, 516, 'the same files, uncorrupted, load');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('corrupt official merges file (.gz): each refused by line', async () => {
  if (!officialGz) return skip(NO_SHARED);
  const lines = gunzipSync(readFileSync(officialGz)).toString('utf8').split('\n');
  const withLine = (n: number, text: string) => gzipSync(lines.map((l, i) => (i === n - 1 ? text : l)).join('\n'), { level: 1 });
  const cases: [string, Uint8Array, RegExp][] = [
    ['a merge listed twice', withLine(3, lines[1]), /merges line 3 "i n" makes "in", which already has id 512: expected every merge to make a new token/],
    ['a merge over an unknown symbol', withLine(2, 'zq qz'), /merge 1 "zq qz" merges "zq", expected a symbol of the vocabulary .* \(merges file line 2\)/],
    ['a merge that makes a special token', withLine(2, '<|endoftext| >'), /merges line 2 "<\|endoftext\| >" makes the special token <\|endoftext\|>/],
  ];
  assert.is(lines[1], 'i n', 'the first merge of the official file');
  for (const [name, gz, pattern] of cases) {
    await assertThrows(() => ClipTokenizer.fromMergesGz(gz), /^ClipTokenizer\.fromMergesGz: /, pattern).catch((e: Error) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

/** The official `bpe` of simple_tokenizer.py, O(n²) as written there: the reference. */
function referenceBpe(symbols: string[], ranks: Map<string, number>, endOfWord: boolean): string[] {
  let word = [...symbols];
  if (endOfWord) word[word.length - 1] += '</w>';
  for (;;) {
    let best: [string, string] | null = null;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < bestRank) [bestRank, best] = [r, [word[i], word[i + 1]]];
    }
    if (best === null) return word;
    const [first, second] = best;
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else merged.push(word[i++]);
    }
    word = merged;
  }
}

interface Reference {
  tokenizer: ClipTokenizer;
  ranks: Map<string, number>;
  ids: Map<string, number>;
}
let reference: Reference | undefined;
/** The tokenizer under test and, built independently from the same file, the official ranks and ids. */
async function official(): Promise<Reference> {
  if (reference) return reference;
  const merges = gunzipSync(readFileSync(officialGz!)).toString('utf8').split('\n').slice(1, 1 + 48894).map((l) => l.split(' '));
  const vocab = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((s) => `${s}</w>`), ...merges.map(([a, b]) => a + b), SOT, EOT];
  reference = {
    tokenizer: await ClipTokenizer.fromMergesGz(readFileSync(officialGz!)),
    ranks: new Map(merges.map(([a, b], rank) => [`${a} ${b}`, rank])),
    ids: new Map(vocab.map((t, id) => [t, id])),
  };
  return reference;
}

/** Reference ids of one word (a single pre-token), BPE'd in the given byte pieces. */
function referenceIds(ref: Reference, word: string, pieceBytes = Infinity): number[] {
  const bytes = new TextEncoder().encode(word);
  const ids: number[] = [];
  for (let at = 0; at < bytes.length; at += pieceBytes) {
    const piece = Array.from(bytes.subarray(at, at + pieceBytes), (b) => BYTE_TO_CHAR[b]);
    for (const token of referenceBpe(piece, ref.ranks, at + pieceBytes >= bytes.length)) ids.push(ref.ids.get(token)!);
  }
  return ids;
}

test('BPE merges every occurrence of the lowest pair before any pair that creates, as the official loop does', async () => {
  // Learned vocabularies rank a merge after those that make its symbols, so a merge never
  // creates a lower-ranked pair; a hand-made one can. "ab a" ranks before "a b" here: in
  // "ababx" both "a b" merge first (the official pass over the word), then "ab ab" has no merge.
  const tokens = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((s) => `${s}</w>`), 'ab', 'aba', SOT, EOT];
  const t = ClipTokenizer.fromVocabAndMerges(vocabJson(tokens), '#version: 0.2\nab a\na b\n');
  const id = (token: string) => tokens.indexOf(token);
  assert.equal(t.encode('ababx'), [id('ab'), id('ab'), id('x</w>')]);
  assert.equal(t.encode('abax'), [id('aba'), id('x</w>')]);

  // Property check: every string of 2..4 letters over {a, b, c} (and with </w>) is made by one
  // merge of a random split, ranks shuffled; random words must match the reference.
  const random = rng(1616);
  const strings: string[] = [];
  const grow = (s: string) => {
    if (s.length >= 2) strings.push(s);
    if (s.length < 4) for (const c of 'abc') grow(s + c);
  };
  grow('');
  const merges: [string, string][] = [];
  for (const s of strings) {
    for (const tail of ['', '</w>']) {
      const k = 1 + Math.floor(random() * (s.length - 1));
      merges.push([s.slice(0, k), s.slice(k) + tail]);
    }
  }
  for (let i = merges.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [merges[i], merges[j]] = [merges[j], merges[i]];
  }
  const vocab = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((s) => `${s}</w>`), ...strings, ...strings.map((s) => `${s}</w>`), SOT, EOT];
  const small = ClipTokenizer.fromVocabAndMerges(vocabJson(vocab), `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n`);
  const ranks = new Map(merges.map(([a, b], rank) => [`${a} ${b}`, rank]));
  const ids = new Map(vocab.map((token, i) => [token, i]));
  for (let k = 0; k < 2000; k++) {
    const word = Array.from({ length: 1 + Math.floor(random() * 60) }, () => 'abc'[Math.floor(random() * 3)]).join('');
    const expected = referenceBpe([...word], ranks, true).map((token) => ids.get(token)!);
    assert.equal(small.encode(word), expected, word);
  }
});

test('O(n log n) BPE gives the official O(n²) BPE ids, word for word', async () => {
  if (!officialGz) return skip(NO_SHARED);
  const ref = await official();
  const random = rng(16);
  const pick = (chars: string[], n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
  const letters = [...'abcdefghijklmnopqrstuvwxyz'];
  const common = [...'etaoinshrdlu'];
  const words: string[] = [];
  for (let k = 0; k < 300; k++) words.push(pick(k % 2 ? letters : common, 1 + Math.floor(random() * 300)));
  // Many equal-rank pairs at once (the official merges them all in one pass, left to right).
  for (const unit of ['a', 'ab', 'the', 'aab', 'ss', 'ing', 'lol', '😂', '!', '?!', '.', '🏻', '🇺🇸', '—']) {
    for (const n of [1, 2, 3, 7, 8, 9, 31, 64, 100]) words.push(unit.repeat(n));
  }
  for (const word of words) {
    assert.is(cleanText(word), word, 'a word the text cleanup keeps as it is');
    assert.equal(ref.tokenizer.encode(word), referenceIds(ref, word), JSON.stringify(word.slice(0, 40)));
  }
});

test('words over MAX_BPE_WORD_BYTES go through BPE in pieces, cut between characters', async () => {
  if (!officialGz) return skip(NO_SHARED);
  const ref = await official();
  assert.is(MAX_BPE_WORD_BYTES, 4096);
  // Repetitive words, for which the O(n²) reference needs few passes.
  for (const [unit, n] of [['a', 4096], ['ab', 2048], ['ing', 1365], ['😂', 1024]] as const) {
    const word = unit.repeat(n);
    assert.ok(new TextEncoder().encode(word).length <= 4096);
    assert.equal(ref.tokenizer.encode(word), referenceIds(ref, word), `${unit} × ${n}: one piece, the official ids`);
  }
  // One byte more: two pieces, the first without </w>.
  for (const [unit, n] of [['a', 4097], ['ab', 2049]] as const) {
    const word = unit.repeat(n);
    assert.equal(ref.tokenizer.encode(word), referenceIds(ref, word, 4096), `${unit} × ${n}: pieces of 4096 bytes`);
  }
  // 4-byte characters: 1025 emoji = 4100 bytes, cut after the 1024th (4096 bytes), never inside one.
  const emoji = '😂'.repeat(1025);
  const first = referenceBpe(Array.from(new TextEncoder().encode('😂'.repeat(1024)), (b) => BYTE_TO_CHAR[b]), ref.ranks, false);
  const second = referenceBpe(Array.from(new TextEncoder().encode('😂'), (b) => BYTE_TO_CHAR[b]), ref.ranks, true);
  assert.equal(ref.tokenizer.encode(emoji), [...first, ...second].map((t) => ref.ids.get(t)!), '😂 × 1025');
  // 3-byte characters: 4096 / 3 is not whole, so the first piece holds 1365 (4095 bytes).
  const kana = 'ア'.repeat(1400);
  const kanaFirst = referenceBpe(Array.from(new TextEncoder().encode('ア'.repeat(1365)), (b) => BYTE_TO_CHAR[b]), ref.ranks, false);
  const kanaSecond = referenceBpe(Array.from(new TextEncoder().encode('ア'.repeat(35)), (b) => BYTE_TO_CHAR[b]), ref.ranks, true);
  assert.equal(ref.tokenizer.encode(kana), [...kanaFirst, ...kanaSecond].map((t) => ref.ids.get(t)!), 'ア × 1400');
});

test('an 80,000-letter word: truncate encodes in milliseconds; encode is not quadratic', async () => {
  if (!officialGz) return skip(NO_SHARED);
  const ref = await official();
  const t = ref.tokenizer;
  const random = rng(80);
  const word = Array.from({ length: 80_000 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join('');
  let t0 = performance.now();
  const row = t.tokenize(word, { truncate: true });
  const truncMs = performance.now() - t0;
  t0 = performance.now();
  const all = t.encode(word);
  const encodeMs = performance.now() - t0;
  console.log(`80,000-letter word: tokenize with truncate ${truncMs.toFixed(1)} ms, encode of all ${all.length} ids ${encodeMs.toFixed(1)} ms`);
  assert.ok(truncMs < 1000, `truncate took ${truncMs.toFixed(0)} ms (5–40 ms measured; 21 s before)`);
  assert.ok(encodeMs < 3000, `encode took ${encodeMs.toFixed(0)} ms (85–200 ms measured)`);
  assert.is(row.length, 77);
  assert.is(row[0], t.sotToken);
  assert.is(row[76], t.eotToken);
  assert.equal(Array.from(row.subarray(1, 76)), all.slice(0, 75), 'the row is the prefix of the whole encoding');
  // The official O(n²) BPE of the first 1,000 letters as a word gives the same first 75 ids:
  // the cut at 4,096 bytes does not reach back into the row.
  assert.equal(all.slice(0, 75), referenceIds(ref, word.slice(0, 1000)).slice(0, 75), 'official ids of the prefix');
});

test('truncate stops encoding once the row is full; without it, counting stops past the row', async () => {
  if (!officialGz) return skip(NO_SHARED);
  const t = (await official()).tokenizer;
  const random = rng(200);
  // 200 distinct random 4,000-letter words: encoding them all takes ~0.7 s (about a minute before).
  const words = Array.from({ length: 200 }, () => Array.from({ length: 4000 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 26)]).join(''));
  const text = words.join(' ');
  let t0 = performance.now();
  const row = t.tokenize(text, { truncate: true });
  const ms = performance.now() - t0;
  console.log(`200 × 4,000-letter words, truncate: ${ms.toFixed(0)} ms`);
  assert.ok(ms < 1000, `truncate took ${ms.toFixed(0)} ms (about 20 ms measured; encoding all of it ~0.7 s)`);
  assert.equal(Array.from(row), Array.from(t.tokenize(words[0], { truncate: true })), 'the first word fills the row');
  t0 = performance.now();
  await assertThrows(() => t.tokenize(text), /too long for context length 77: more than 1101 tokens including start and end/);
  assert.ok(performance.now() - t0 < 1000, 'the error comes without encoding the whole text');
  // Short rows are exact as before: contextLength 1 keeps only the end token, like clip.tokenize.
  assert.equal(Array.from(t.tokenize('a photo of a cat', { contextLength: 1, truncate: true })), [t.eotToken]);
  assert.equal(Array.from(t.tokenize('a photo of a cat', { contextLength: 3, truncate: true })), [t.sotToken, t.encode('a')[0], t.eotToken]);
});

test('tokenize: arguments of the wrong type or size are named', async () => {
  const t = ClipTokenizer.fromVocabAndMerges(vocabJson(BASE_TOKENS), BASE_MERGES);
  await assertThrows(() => t.tokenize(['ab', 5] as unknown as string[]), /ClipTokenizer\.tokenize: texts\[1\] is number, expected a string/);
  await assertThrows(() => t.tokenize(null as unknown as string), /expected a string or an array of strings, got null/);
  await assertThrows(() => t.tokenize('ab', { contextLength: 2 ** 31 }), /contextLength must be at most 65536 \(MAX_CONTEXT_LENGTH\), got 2147483648/);
  await assertThrows(() => t.tokenize(new Array<string>(4_000_000).fill('ab'), { contextLength: 77 }), /4000000 texts × contextLength 77 would be 308000000 ids, more than the 268435456 \(1 GiB\) one call may return/);
  await assertThrows(() => t.encode(undefined as unknown as string), /ClipTokenizer\.encode: expected a string, got undefined/);
  await assertThrows(() => t.decode([0.5]), /id 0\.5 at index 0 is not in the vocabulary \(0\.\.515\)/);
  await assertThrows(() => t.decode([-1]), /id -1 at index 0 is not in the vocabulary/);
});

test.run();
