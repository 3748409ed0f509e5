// CLIP BPE tokenizer against the official oracle (../shared/fixtures/clip/*/tokens.json,
// produced by openai/CLIP's SimpleTokenizer + clip.tokenize), for both vocabulary forms,
// plus text cleanup (ftfy / html.unescape) cases whose expected output came from the
// official basic_clean/whitespace_clean with ftfy 6.3.1, round trips, truncation and errors.

import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as assert from 'uvu/assert';
import { ClipTokenizer } from '../src/models/clip/tokenizer.js';
import { cleanText } from '../src/models/clip/text-cleanup.js';
import { loadClipTokenizer } from '../src/models/clip/tokenizer-node.js';
import { assertThrows, NO_SHARED, rng, sharedPath, skip, suite } from './util.js';

// null when ../shared is absent (the tests that need it skip); a missing file fails this file here.
const vocabDir = sharedPath('clip-vocab');
const officialGz = sharedPath('clip-vocab', 'bpe_simple_vocab_16e6.txt.gz');
const hfDir = sharedPath('clip-vocab', 'hf-clip-vit-base-patch32');
const hfFiles = [sharedPath('clip-vocab', 'hf-clip-vit-base-patch32', 'vocab.json'), sharedPath('clip-vocab', 'hf-clip-vit-base-patch32', 'merges.txt')];
const oracles = ['clip-tiny-p16', 'clip-tiny-p32'].map((name) => sharedPath('fixtures', 'clip', name, 'tokens.json'));

interface OracleString {
  text: string;
  cleaned_lowercased: string;
  ids: number[];
  decoded_body: string;
  n_tokens_with_sot_eot_untruncated: number;
  truncated: boolean;
}
interface Oracle {
  context_length: number;
  sot_token: number;
  eot_token: number;
  main_strings: OracleString[];
  tricky_strings: OracleString[];
}

interface Ctx {
  /** null when ../shared is absent: the tests that need it mark themselves skipped and return. */
  forms: { name: string; tokenizer: ClipTokenizer }[] | null;
}

function needsShared(ctx: Ctx): ctx is { forms: { name: string; tokenizer: ClipTokenizer }[] } {
  if (ctx.forms === null) skip(NO_SHARED);
  return ctx.forms !== null;
}

const test = suite<Ctx>('clip tokenizer', { forms: null });

// Built once: both forms take ~0.2 s each.
test.before(async (ctx) => {
  if (!officialGz || !hfDir || hfFiles.includes(null) || oracles.includes(null)) return;
  ctx.forms = [
    { name: 'official .gz', tokenizer: await ClipTokenizer.fromMergesGz(readFileSync(officialGz)) },
    { name: 'HF vocab.json + merges.txt', tokenizer: await loadClipTokenizer(hfDir) },
  ];
});

test('every tokens.json string gives the official ids, with both vocabulary forms', (ctx) => {
  if (!needsShared(ctx)) return;
  for (const path of oracles) {
    const oracle = JSON.parse(readFileSync(path!, 'utf8')) as Oracle;
    const strings = [...oracle.main_strings, ...oracle.tricky_strings];
    assert.is(strings.length, 23, `${path}: 3 main + 20 tricky strings`);
    for (const { name, tokenizer } of ctx.forms) {
      assert.is(tokenizer.sotToken, oracle.sot_token, `${name}: sot`);
      assert.is(tokenizer.eotToken, oracle.eot_token, `${name}: eot`);
      assert.is(tokenizer.vocabSize, 49408, `${name}: vocabSize`);
      for (const s of strings) {
        const label = `${name}: ${JSON.stringify(s.text.slice(0, 50))}`;
        assert.is(cleanText(s.text), s.cleaned_lowercased, `${label}: cleaned text`);
        const row = tokenizer.tokenize(s.text, { contextLength: oracle.context_length, truncate: true });
        assert.equal(Array.from(row), s.ids, `${label}: ids`);
        const body = tokenizer.encode(s.text);
        assert.is(body.length + 2, s.n_tokens_with_sot_eot_untruncated, `${label}: untruncated length`);
        assert.is(tokenizer.decode(body), s.decoded_body, `${label}: decode`);
      }
      // Batch form: rows in order, [n, 77] row-major.
      const batch = tokenizer.tokenize(oracle.main_strings.map((s) => s.text));
      assert.equal(Array.from(batch), oracle.main_strings.flatMap((s) => s.ids), `${name}: batch of main strings`);
    }
  }
});

test('pre-tokens follow the regex module: U+0345 matches no branch, ſ pairs with s', (ctx) => {
  if (!needsShared(ctx)) return;
  for (const { name, tokenizer } of ctx.forms) {
    // regex (IGNORECASE) drops U+0345; a JS `i`-flag port would glue it to the letters.
    assert.equal(tokenizer.encode('a\u0345b'), tokenizer.encode('a b'), `${name}: a + U+0345 + b`);
    // `'s` matches `'ſ` case-insensitively: one pre-token, not `'` + `ſ`.
    const apostropheLongS = tokenizer.encode("'\u017f");
    assert.is(tokenizer.decode(apostropheLongS), "'\u017f ", `${name}: 'ſ is one pre-token`);
  }
});

test('decode(encode(x)) round-trips plain ASCII text', (ctx) => {
  if (!needsShared(ctx)) return;
  const random = rng(7);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  for (const { name, tokenizer } of ctx.forms) {
    for (let n = 0; n < 200; n++) {
      // Lower-case words: decoding ends every word with a space, so the text comes back exactly (+ one space).
      const words = Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        Array.from({ length: 1 + Math.floor(random() * 12) }, () => letters[Math.floor(random() * 26)]).join(''),
      );
      const text = words.join(' ');
      assert.is(tokenizer.decode(tokenizer.encode(text)), `${text} `, `${name}: ${JSON.stringify(text)}`);
      // Any printable ASCII: lossless up to spacing and case (the tokenizer splits and lower-cases).
      const mixed = Array.from({ length: Math.floor(random() * 60) }, () => printable[Math.floor(random() * printable.length)]).join('');
      const back = tokenizer.decode(tokenizer.encode(mixed));
      assert.is(back.replace(/ /g, ''), cleanText(mixed).replace(/ /g, ''), `${name}: ${JSON.stringify(mixed)}`);
    }
  }
});

test('truncation: first contextLength ids, the last replaced by eot; without truncate it throws', async (ctx) => {
  if (!needsShared(ctx)) return;
  const text = 'a photo of a cat '.repeat(30);
  for (const { name, tokenizer } of ctx.forms) {
    const full = [tokenizer.sotToken, ...tokenizer.encode(text), tokenizer.eotToken];
    assert.ok(full.length > 77, `${name}: the text is long enough (${full.length})`);
    const row = tokenizer.tokenize(text, { truncate: true });
    assert.is(row.length, 77);
    assert.equal(Array.from(row.subarray(0, 76)), full.slice(0, 76), `${name}: kept prefix`);
    assert.is(row[76], tokenizer.eotToken, `${name}: last id is eot`);
    const short = tokenizer.tokenize(text, { contextLength: 10, truncate: true });
    assert.equal(Array.from(short), [...full.slice(0, 9), tokenizer.eotToken], `${name}: contextLength 10`);
    // Exactly contextLength ids fit without truncation.
    const exact = tokenizer.tokenize('a photo', { contextLength: 4 });
    assert.equal(Array.from(exact), [tokenizer.sotToken, ...tokenizer.encode('a photo'), tokenizer.eotToken]);
    await assertThrows(() => tokenizer.tokenize(['fine', text]), /Input "a photo of a cat/, /too long for context length 77/, new RegExp(`${full.length} tokens`));
    await assertThrows(() => tokenizer.tokenize('a photo of', { contextLength: 4 }), /too long for context length 4/, /5 tokens/);
    await assertThrows(() => tokenizer.tokenize('x', { contextLength: 0 }), /contextLength must be a positive integer, got 0/);
    await assertThrows(() => tokenizer.decode([5, 49408]), /id 49408 at index 1 is not in the vocabulary/);
  }
});

// Expected values: `whitespace_clean(basic_clean(text)).lower()` of openai/CLIP with ftfy 6.3.1.
const CLEANUP_CASES: [string, string][] = [
  ['Ã la mode', 'à la mode'],
  ['voilÃ le travail', 'voilà le travail'],
  ['donâ€™t', "don't"],
  ['naïve cafÃ©', 'naïve café'],
  ['â€œ like this â€\ufffd', '" like this \ufffd'],
  ['cafÃƒÂ©', 'café'],
  ['The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows.', "the mona lisa doesn't have eyebrows."],
  ['&macr;\\_(ã\x83\x84)_/&macr;', '¯\\_(ツ)_/¯'],
  ['Broken text&hellip; it&#x2019;s ﬂubberiﬁc!', "broken text… it's flubberific!"],
  ['ＬＯＵＤ\u3000ＮＯＩＳＥＳ', 'loud noises'],
  ['âœ” No problems', '✔ no problems'],
  ['P&EACUTE;REZ', 'pérez'],
  ['BUNDESSTRA&SZLIG;E', 'bundesstrasse'],
  ['ñ &Ntilde; &NTILDE; &nTILDE;', 'ñ ñ ñ &ntilde;'],
  ['<b>bold &amp; tags</b>', '<b>bold & tags</b>'],
  ['line1 &amp;amp;\n<tag> &amp;amp; line2\n&amp;amp; line3', 'line1 & <tag> & line2 & line3'],
  ["\x1b[36;44mI'm blue\x1b[0m", "i'm blue"],
  ['Price: 20\x80 \x85 done', 'price: 20€ … done'],
  ['\ufeffBOM start', 'bom start'],
  ['a\u00a0b\u2007c\u3000d\u2029e', 'a b c d e'],
  ['â„¢ trademark', 'â"¢ trademark'],
  ['ÐŸÑ€Ð¸Ð²ÐµÑ‚ æ—¥æœ¬ ðŸ˜€', 'привет 日本 😀'],
  ['&#0;&#128;&#x110000;&#11;x&copy &notit;', '\ufffd€\ufffdx© ¬it;'],
];

test('text cleanup matches ftfy.fix_text + html.unescape ×2 + whitespace_clean + lower', () => {
  for (const [input, expected] of CLEANUP_CASES) assert.is(cleanText(input), expected, JSON.stringify(input));
});

test('vocabulary errors name the path and what was expected', async (ctx) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-tokenizer-'));
  try {
    const missing = join(dir, 'nope.txt.gz');
    await assertThrows(() => loadClipTokenizer(missing), new RegExp(`${missing} does not exist`), /bpe_simple_vocab_16e6\.txt\.gz/, /vocab\.json \+ merges\.txt/);
    await assertThrows(() => loadClipTokenizer(dir), new RegExp(`directory ${dir} has no tokenizer vocabulary`), /found neither/);

    const corrupt = join(dir, 'corrupt.gz');
    await writeFile(corrupt, new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    await assertThrows(() => loadClipTokenizer(corrupt), new RegExp(corrupt), /gzip-compressed UTF-8 merges file/);
    const plain = join(dir, 'plain.txt');
    await writeFile(plain, 'i n\n');
    await assertThrows(() => loadClipTokenizer(plain), new RegExp(`${plain} is not a gzip file`));
    const fewMerges = join(dir, 'few.gz');
    await writeFile(fewMerges, gzipSync('#version: 0.2\ni n\nt h\n'));
    await assertThrows(() => loadClipTokenizer(fewMerges), new RegExp(fewMerges), /expected at least 48894 merge lines after the header, got 2/);

    await writeFile(join(dir, 'vocab.json'), '{"a": 0');
    await assertThrows(() => loadClipTokenizer(dir), /found vocab\.json without merges\.txt/);
    await writeFile(join(dir, 'merges.txt'), '#version: 0.2\na b\n');
    await assertThrows(() => loadClipTokenizer(dir), new RegExp(dir), /vocab\.json is not valid JSON/);
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges({ a: 0 }, ''), /lacks <\|startoftext\|>/);
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges({ a: 'x' }, ''), /maps "a" to "x", expected a non-negative integer id/);
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges([], ''), /expected vocab\.json to be an object/);

    if (!needsShared(ctx)) return;
    // A truncated copy of the real file: gzip stream ends early.
    const truncated = join(dir, 'truncated.gz');
    await writeFile(truncated, readFileSync(officialGz!).subarray(0, 100_000));
    await assertThrows(() => loadClipTokenizer(truncated), new RegExp(truncated), /could not be read/);
    // The official form found inside a directory: the oracle's ids.
    const fromDir = await loadClipTokenizer(vocabDir!);
    const { main_strings: main } = JSON.parse(readFileSync(oracles[0]!, 'utf8')) as Oracle;
    for (const s of main) assert.equal(Array.from(fromDir.tokenize(s.text)), s.ids, `from the directory: ${JSON.stringify(s.text)}`);
    // HF form with a merge whose result is not in vocab.json.
    const vocab = JSON.parse(readFileSync(hfFiles[0]!, 'utf8')) as Record<string, number>;
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges(vocab, '#version: 0.2\nq zzz\n'), /merge 1 "q zzz" makes "qzzz", which is not in the vocabulary/);
    await assertThrows(() => ClipTokenizer.fromVocabAndMerges(vocab, '#version: 0.2\nabc\n'), /merges line 2 should be two symbols/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
