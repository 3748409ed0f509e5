// CLIP byte-level BPE tokenizer, matching openai/CLIP `clip/simple_tokenizer.py`
// (SimpleTokenizer) and `clip.tokenize()` id for id. Browser-safe: no Node
// built-ins; the gzip merges file is inflated with DecompressionStream, capped at
// MAX_VOCAB_FILE_BYTES of output.
//
// Hostile input: a vocabulary is checked on load (ids 0..N-1 each once, N ≤ 2^24, the two
// specials once with <|endoftext|> last, tokens made of byte characters, merges over known
// symbols), BPE is O(n log n) and fed words in pieces of at most MAX_BPE_WORD_BYTES, and
// tokenize with truncate stops encoding once the row is full.
//
// Pipeline (as the official `encode`):
//   text → ftfy.fix_text → html.unescape ×2 → strip → collapse whitespace → lower()
//        → regex pre-tokens → UTF-8 bytes as printable "byte characters" → BPE → ids.
//
// The clean-up (ftfy, html.unescape, whitespace) is in text-cleanup.ts; this
// file holds the pre-tokens, the vocabulary and its checks; the BPE merge of a
// word's pieces is in bpe.ts.

import { WHITE_SPACE, cleanText } from './text-cleanup.js';
import { InflateLimitError, gunzip } from '../../io/gunzip.js';
import { END_OF_WORD, MAX_BPE_WORD_BYTES, bpeSymbols } from './bpe.js';

export { MAX_BPE_WORD_BYTES };

/**
 * The official pre-token pattern
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * which the `regex` module runs with IGNORECASE on lower-cased text. JS's `i` flag would
 * differ on U+0345 (COMBINING YPOGEGRAMMENI, which case-folds to the letter ι): JS then
 * counts it as a letter, while for `regex` it is neither a letter nor a non-letter, so no
 * branch matches and the character is dropped. Hence no
 * `i` flag, and the case-insensitivity that still matters after lower() spelled out: `s`
 * also matches `ſ` (U+017F, its only other simple case-fold partner left in lower-case
 * text), and U+0345 is kept out of the last branch. Checked against `regex` over every
 * code point.
 */
const PRETOKEN_RE = new RegExp(
  String.raw`<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^${WHITE_SPACE}\p{L}\p{N}\u0345]+`,
  'gu',
);

// ---------------------------------------------------------------------------
// Byte-level BPE.

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
 * bytes (controls, space, NBSP, soft hyphen…) map to U+0100.. in byte order. Index = byte.
 */
const BYTE_TO_CHAR: readonly string[] = (() => {
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();
const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** The base symbols in the official vocabulary order (printable bytes first, then the remapped ones). */
const BYTE_SYMBOLS_IN_VOCAB_ORDER: readonly string[] = [...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));

const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';
/** Merges the official vocabulary uses: 49152 − 256 − 2 (the file holds 262,144). */
const OFFICIAL_MERGE_COUNT = 48894;
const UTF8 = new TextEncoder();
const LENIENT_UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Most tokens a vocabulary may have: 2^24. CLIP's text tower pools at the position of the
 * largest id through a float32 id table (model.ts), exact only below 2^24, and every id must
 * fit the Int32Array rows tokenize returns. The official vocabulary has 49,408.
 */
export const MAX_VOCAB_SIZE = 1 << 24;

/**
 * Most bytes of vocabulary text accepted: what the merges .gz inflates to (inflation stops
 * there), and the size of vocab.json and of merges.txt. The official
 * bpe_simple_vocab_16e6.txt.gz (1.36 MB) inflates to 3,194,984 bytes; the Hugging Face
 * vocab.json is 862 KB and merges.txt 525 KB. 16 MiB leaves 5× margin over the largest, and
 * a decompression bomb is refused after at most that much output.
 */
export const MAX_VOCAB_FILE_BYTES = 16 * 1024 * 1024;

/** Most tokens per row tokenize accepts (released CLIPs use 77; long-context variants a few hundred). */
export const MAX_CONTEXT_LENGTH = 65536;

/** Most ids one tokenize call returns (texts × contextLength): 2^28, a 1 GiB Int32Array. */
const MAX_TOKENIZE_IDS = 1 << 28;

/** Words up to this many bytes are cached (prompts repeat short words; long ones would bloat the cache). */
const CACHE_WORD_BYTES = 256;
const CACHE_ENTRIES = 100_000;

export interface TokenizeOptions {
  /** Row length; every released CLIP uses 77. */
  contextLength?: number;
  /** Cut over-long rows to contextLength, ending them with the end token (otherwise such input throws). */
  truncate?: boolean;
}

/** Two symbols and the line of the merges file they came from (named in errors). */
type Merge = readonly [first: string, second: string, line: number];

/** Where the vocabulary came from, as errors name it. */
interface VocabSource {
  /** The loading method, e.g. 'fromMergesGz'. */
  method: string;
  /** The token → id table, e.g. 'vocab.json'. */
  vocab: string;
  /** The merges, e.g. 'merges.txt'. */
  merges: string;
}

/** True when `token` is byte characters (bytes_to_unicode) with at most a trailing `</w>`. */
function isByteSymbolString(token: string): boolean {
  const body = token.endsWith(END_OF_WORD) ? token.slice(0, -END_OF_WORD.length) : token;
  if (body === '') return false;
  for (let i = 0; i < body.length; i++) if (!CHAR_TO_BYTE.has(body[i])) return false;
  return true;
}

const quote = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

export class ClipTokenizer {
  /** Id of `<|startoftext|>` (49406 for CLIP). */
  readonly sotToken: number;
  /** Id of `<|endoftext|>` (49407 for CLIP); the text tower pools at its first position. */
  readonly eotToken: number;
  /** Rows of the token embedding: largest id + 1 (49408 for CLIP). */
  readonly vocabSize: number;

  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: readonly string[];
  /** Merge rank keyed by `first + ' ' + second` (symbols never contain a space: byte 0x20 is 'Ġ'). */
  private readonly ranks: ReadonlyMap<string, number>;
  private readonly cache = new Map<string, readonly string[]>();

  /**
   * Checks the vocabulary before anything is tokenized with it. `encoder` must already map
   * its tokens to the ids 0..size-1, each once (both loaders ensure it and name the culprit).
   */
  private constructor(encoder: Map<string, number>, merges: readonly Merge[], from: VocabSource) {
    const fail = (problem: string) => new Error(`ClipTokenizer.${from.method}: ${problem}`);
    const size = encoder.size;
    if (size > MAX_VOCAB_SIZE) throw fail(`${from.vocab} has ${size} tokens, more than the ${MAX_VOCAB_SIZE} (2^24) a CLIP vocabulary may have`);
    const sot = encoder.get(SOT);
    const eot = encoder.get(EOT);
    if (sot === undefined || eot === undefined) {
      throw fail(`the vocabulary lacks ${sot === undefined ? SOT : EOT} (${from.vocab} must hold ${SOT} and ${EOT} once each)`);
    }
    if (eot !== size - 1) {
      throw fail(`${EOT} has id ${eot}, expected the largest id ${size - 1}: CLIP's text tower pools at the position of the largest id in each row, which must be the end token`);
    }
    const decoder = new Array<string>(size);
    for (const [token, id] of encoder) {
      if (!Number.isInteger(id) || id < 0 || id >= size || decoder[id] !== undefined) {
        throw fail(`${from.vocab} ids are not 0..${size - 1} each once (${quote(token)} has ${id}${decoder[id] !== undefined ? `, as has ${quote(decoder[id])}` : ''})`);
      }
      decoder[id] = token;
      if (id !== sot && id !== eot && !isByteSymbolString(token)) {
        throw fail(`${from.vocab} token ${quote(token)} (id ${id}) is not made of byte characters (GPT-2 bytes_to_unicode) with an optional trailing ${END_OF_WORD}`);
      }
    }
    for (const symbol of BYTE_TO_CHAR) {
      for (const piece of [symbol, symbol + END_OF_WORD]) {
        if (!encoder.has(piece)) throw fail(`the vocabulary lacks the byte symbol ${JSON.stringify(piece)}`);
      }
    }
    const ranks = new Map<string, number>();
    merges.forEach(([first, second, line], rank) => {
      const at = `(${from.merges} line ${line})`;
      const made = first + second;
      const name = `merge ${rank + 1} "${first} ${second}"`;
      if (made === SOT || made === EOT) throw fail(`${name} makes the special token ${made}, which only the text may spell out ${at}`);
      if (!encoder.has(made)) throw fail(`${name} makes ${JSON.stringify(made)}, which is not in the vocabulary ${at}`);
      for (const symbol of [first, second]) {
        if (symbol === SOT || symbol === EOT || !encoder.has(symbol)) {
          throw fail(`${name} merges ${JSON.stringify(symbol)}, expected a symbol of the vocabulary other than ${SOT} and ${EOT} ${at}`);
        }
      }
      const key = `${first} ${second}`;
      const earlier = ranks.get(key);
      if (earlier !== undefined) throw fail(`${name} repeats merge ${earlier + 1}, expected each pair once ${at}`);
      ranks.set(key, rank);
    });
    this.encoder = encoder;
    this.decoder = decoder;
    this.ranks = ranks;
    this.sotToken = sot;
    this.eotToken = eot;
    this.vocabSize = size;
  }

  /**
   * From the official `bpe_simple_vocab_16e6.txt.gz` (bytes of the .gz file). Inflation
   * stops past MAX_VOCAB_FILE_BYTES of output.
   */
  static async fromMergesGz(bytes: Uint8Array): Promise<ClipTokenizer> {
    const source = 'fromMergesGz';
    const from: VocabSource = { method: source, vocab: 'the vocabulary built from the merges file', merges: 'merges file' };
    if (!(bytes instanceof Uint8Array)) throw new Error(`ClipTokenizer.${source}: expected the bytes of bpe_simple_vocab_16e6.txt.gz as a Uint8Array, got ${typeof bytes}`);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(await gunzip(bytes, MAX_VOCAB_FILE_BYTES));
    } catch (e) {
      if (e instanceof InflateLimitError) {
        throw new Error(
          `ClipTokenizer.${source}: expected the gzip-compressed merges file bpe_simple_vocab_16e6.txt.gz, which inflates to 3,194,984 bytes, but this one inflates to more than ${MAX_VOCAB_FILE_BYTES} bytes (MAX_VOCAB_FILE_BYTES): refused as corrupt or a decompression bomb`,
        );
      }
      throw new Error(`ClipTokenizer.${source}: expected the gzip-compressed UTF-8 merges file bpe_simple_vocab_16e6.txt.gz, but it could not be read (${(e as Error).message})`);
    }
    // Line 1 is a version header; the official vocabulary takes the next 48,894 merges.
    const mergeLines = text.split('\n').slice(1);
    if (mergeLines.at(-1) === '') mergeLines.pop();
    if (mergeLines.length < OFFICIAL_MERGE_COUNT) {
      throw new Error(`ClipTokenizer.${source}: expected at least ${OFFICIAL_MERGE_COUNT} merge lines after the header, got ${mergeLines.length}`);
    }
    const merges = mergeLines.slice(0, OFFICIAL_MERGE_COUNT).map((line, i) => parseMerge(line, i + 2, source, 'merges'));
    // Ids by position, as the official code builds them: bytes, bytes + </w>, one per merge, the specials.
    const encoder = new Map<string, number>();
    for (const symbol of BYTE_SYMBOLS_IN_VOCAB_ORDER) encoder.set(symbol, encoder.size);
    for (const symbol of BYTE_SYMBOLS_IN_VOCAB_ORDER) encoder.set(symbol + END_OF_WORD, encoder.size);
    for (const [first, second, line] of merges) {
      const made = first + second;
      if (made === SOT || made === EOT) {
        throw new Error(`ClipTokenizer.${source}: merges line ${line} "${first} ${second}" makes the special token ${made}, which only the text may spell out`);
      }
      const id = encoder.get(made);
      if (id !== undefined) {
        throw new Error(`ClipTokenizer.${source}: merges line ${line} "${first} ${second}" makes ${JSON.stringify(made)}, which already has id ${id}: expected every merge to make a new token (ids would skip)`);
      }
      encoder.set(made, encoder.size);
    }
    encoder.set(SOT, encoder.size);
    encoder.set(EOT, encoder.size);
    return new ClipTokenizer(encoder, merges, from);
  }

  /**
   * From a Hugging Face tokenizer directory's `vocab.json` (text or parsed) and `merges.txt`.
   * vocab.json must map its N tokens to the ids 0..N-1, each once, `<|endoftext|>` last.
   */
  static fromVocabAndMerges(vocabJson: string | object, mergesTxt: string): ClipTokenizer {
    const source = 'fromVocabAndMerges';
    const from: VocabSource = { method: source, vocab: 'vocab.json', merges: 'merges.txt' };
    const fail = (problem: string) => new Error(`ClipTokenizer.${source}: ${problem}`);
    if (typeof mergesTxt !== 'string') throw fail(`expected the text of merges.txt as a string, got ${typeof mergesTxt}`);
    for (const [name, text] of [['vocab.json', vocabJson], ['merges.txt', mergesTxt]] as const) {
      if (typeof text === 'string' && text.length > MAX_VOCAB_FILE_BYTES) {
        throw fail(`${name} has ${text.length} characters, more than the ${MAX_VOCAB_FILE_BYTES} (MAX_VOCAB_FILE_BYTES) a CLIP vocabulary file may have`);
      }
    }
    let vocab: unknown = vocabJson;
    if (typeof vocabJson === 'string') {
      try {
        vocab = JSON.parse(vocabJson);
      } catch (e) {
        throw fail(`vocab.json is not valid JSON (${(e as Error).message})`);
      }
      // JSON.parse keeps the last of repeated keys silently; a special token must appear once.
      for (const special of [SOT, EOT]) {
        const times = vocabJson.split(`"${special}"`).length - 1;
        if (times > 1) throw fail(`vocab.json lists ${special} ${times} times, expected exactly once`);
      }
    }
    if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) {
      throw fail(`expected vocab.json to be an object of token → id, got ${vocab === null ? 'null' : Array.isArray(vocab) ? 'an array' : typeof vocab}`);
    }
    const entries = Object.entries(vocab);
    if (entries.length > MAX_VOCAB_SIZE) throw fail(`vocab.json has ${entries.length} tokens, more than the ${MAX_VOCAB_SIZE} (2^24) a CLIP vocabulary may have`);
    const encoder = new Map<string, number>();
    const byId = new Array<string | undefined>(entries.length);
    for (const [token, id] of entries) {
      if (!Number.isInteger(id) || (id as number) < 0) throw fail(`vocab.json maps ${quote(token)} to ${(JSON.stringify(id) ?? String(id)).slice(0, 60)}, expected a non-negative integer id`);
      const n = id as number;
      if (n >= entries.length) {
        throw fail(
          `vocab.json maps ${quote(token)} to ${n}, expected an id below ${entries.length}: the ${entries.length} tokens must have the ids 0..${entries.length - 1}, each once (a gap, or a token listed twice, breaks that)`,
        );
      }
      const other = byId[n];
      if (other !== undefined) throw fail(`vocab.json gives id ${n} to both ${quote(other)} and ${quote(token)}, expected each id once`);
      byId[n] = token;
      encoder.set(token, n);
    }
    const merges: Merge[] = [];
    const lines = mergesTxt.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if ((i === 0 && line.startsWith('#version')) || line.trim() === '') continue;
      merges.push(parseMerge(line, i + 1, source, 'merges'));
    }
    return new ClipTokenizer(encoder, merges, from);
  }

  /** BPE ids of the cleaned text, without start/end tokens (the official `encode`; see MAX_BPE_WORD_BYTES). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`ClipTokenizer.encode: expected a string, got ${text === null ? 'null' : typeof text}`);
    return this.encodeUpTo(text, Infinity);
  }

  /**
   * The ids of `text`, stopping as soon as there are at least `limit` (the pre-token or piece
   * that crosses it is finished, so more may come back): the text is cleaned whole, as the
   * official code does, but only the pre-tokens needed are encoded.
   */
  private encodeUpTo(text: string, limit: number): number[] {
    const ids: number[] = [];
    if (limit <= 0) return ids;
    const buffer = new Uint8Array(MAX_BPE_WORD_BYTES);
    for (const [pretoken] of cleanText(text).matchAll(PRETOKEN_RE)) {
      if (pretoken === SOT || pretoken === EOT) {
        ids.push(this.encoder.get(pretoken)!); // the specials pass through BPE whole
      } else {
        // Pieces of at most MAX_BPE_WORD_BYTES UTF-8 bytes, cut between characters.
        for (let at = 0; at < pretoken.length; ) {
          let end = Math.min(pretoken.length, at + MAX_BPE_WORD_BYTES);
          const last = pretoken.charCodeAt(end - 1);
          if (end < pretoken.length && last >= 0xd800 && last <= 0xdbff) end++; // keep a surrogate pair whole
          const { read, written } = UTF8.encodeInto(pretoken.slice(at, end), buffer);
          at += read;
          let symbols = '';
          for (let i = 0; i < written; i++) symbols += BYTE_TO_CHAR[buffer[i]];
          for (const piece of this.bpe(symbols, at >= pretoken.length)) {
            const id = this.encoder.get(piece);
            if (id === undefined) throw new Error(`ClipTokenizer.encode: BPE piece ${JSON.stringify(piece)} of ${quote(pretoken)} is not in the vocabulary`);
            ids.push(id);
          }
          if (ids.length >= limit) return ids;
        }
      }
      if (ids.length >= limit) return ids;
    }
    return ids;
  }

  /** Text of BPE ids (the official `decode`): invalid UTF-8 becomes U+FFFD, each `</w>` a space. */
  decode(ids: ArrayLike<number>): string {
    let symbols = '';
    for (let i = 0; i < ids.length; i++) {
      const token = Number.isInteger(ids[i]) ? this.decoder[ids[i]] : undefined;
      if (token === undefined) throw new Error(`ClipTokenizer.decode: id ${ids[i]} at index ${i} is not in the vocabulary (0..${this.vocabSize - 1})`);
      symbols += token;
    }
    const bytes = new Uint8Array(symbols.length);
    for (let i = 0; i < symbols.length; i++) {
      const byte = CHAR_TO_BYTE.get(symbols[i]);
      if (byte === undefined) throw new Error(`ClipTokenizer.decode: vocabulary symbol ${JSON.stringify(symbols[i])} is not a byte character`);
      bytes[i] = byte;
    }
    return LENIENT_UTF8.decode(bytes).replaceAll(END_OF_WORD, ' ');
  }

  /**
   * `clip.tokenize`: one row per text, [sot, ...encode(text), eot] zero-padded to
   * contextLength, rows concatenated ([texts, contextLength] row-major). With truncate, a
   * row's text is encoded only until contextLength − 1 ids are known (enough to fill the row
   * and to know it overflows); without, until 1,024 past the row (enough for the error).
   */
  tokenize(texts: string | readonly string[], options: TokenizeOptions = {}): Int32Array {
    const { contextLength = 77, truncate = false } = options;
    if (!Number.isInteger(contextLength) || contextLength < 1) {
      throw new Error(`ClipTokenizer.tokenize: contextLength must be a positive integer, got ${contextLength}`);
    }
    if (contextLength > MAX_CONTEXT_LENGTH) throw new Error(`ClipTokenizer.tokenize: contextLength must be at most ${MAX_CONTEXT_LENGTH} (MAX_CONTEXT_LENGTH), got ${contextLength}`);
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list)) throw new Error(`ClipTokenizer.tokenize: expected a string or an array of strings, got ${texts === null ? 'null' : typeof texts}`);
    list.forEach((text, i) => {
      if (typeof text !== 'string') throw new Error(`ClipTokenizer.tokenize: texts[${i}] is ${text === null ? 'null' : typeof text}, expected a string`);
    });
    if (list.length * contextLength > MAX_TOKENIZE_IDS) {
      throw new Error(`ClipTokenizer.tokenize: ${list.length} texts × contextLength ${contextLength} would be ${list.length * contextLength} ids, more than the ${MAX_TOKENIZE_IDS} (1 GiB) one call may return: tokenize in batches`);
    }
    const out = new Int32Array(list.length * contextLength);
    const countLimit = contextLength + 1024;
    list.forEach((text, row) => {
      const body = this.encodeUpTo(text, truncate ? contextLength - 1 : countLimit);
      let tokens = [this.sotToken, ...body, this.eotToken];
      if (tokens.length > contextLength) {
        if (!truncate) {
          const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
          const count = body.length >= countLimit ? `more than ${countLimit} tokens` : `${tokens.length} tokens`;
          throw new Error(
            `ClipTokenizer.tokenize: Input ${JSON.stringify(shown)} is too long for context length ${contextLength}: ${count} including start and end (pass truncate: true to cut it)`,
          );
        }
        tokens = tokens.slice(0, contextLength);
        tokens[contextLength - 1] = this.eotToken;
      }
      out.set(tokens, row * contextLength);
    });
    return out;
  }

  /** BPE of one piece of byte characters (see MAX_BPE_WORD_BYTES); `endOfWord` puts `</w>` on its last symbol. */
  private bpe(symbols: string, endOfWord: boolean): readonly string[] {
    const cacheable = endOfWord && symbols.length <= CACHE_WORD_BYTES;
    if (cacheable) {
      const cached = this.cache.get(symbols);
      if (cached !== undefined) return cached;
    }
    const word = bpeSymbols(symbols, endOfWord, this.ranks);
    if (cacheable) {
      // Bounded: a long-running process tokenizing arbitrary text should not grow without limit.
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(symbols, word);
    }
    return word;
  }
}

function parseMerge(line: string, lineNumber: number, source: string, file: string): Merge {
  const parts = line.trim().split(/ +/);
  if (parts.length !== 2 || parts[0] === '') {
    throw new Error(`ClipTokenizer.${source}: ${file} line ${lineNumber} should be two symbols separated by a space, got ${JSON.stringify(line.slice(0, 80))}`);
  }
  return [parts[0], parts[1], lineNumber];
}
