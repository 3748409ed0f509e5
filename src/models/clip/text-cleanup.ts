// The text clean-up of CLIP's tokenizer (openai/CLIP `simple_tokenizer.py`'s
// basic_clean + whitespace_clean): ftfy.fix_text, html.unescape twice, strip,
// collapse whitespace, lower(). Browser-safe: no Node built-ins.
//
// ftfy is a Python library of heuristics; `fixText` below re-implements the parts of
// ftfy 6.3.1's default `fix_text` that matter for prompts, in ftfy's order and with its
// fixed-point loop: HTML entities (a subset of the HTML5 table, see ENTITY_TABLE),
// mojibake repair, C1 controls, Latin ligatures, full/half width, curly quotes, line
// breaks, surrogates, terminal escapes, control characters, NFC. The approximations are
// noted where they are made (mojibake: only UTF-8 read as Latin-1 / Windows-1252).
// Unicode tables (letters, numbers, case mapping, NFC) are the JS engine's, so characters
// assigned in recent Unicode versions may classify differently from the Python reference.

// ---------------------------------------------------------------------------
// Character classes of the Python regex engines the official code runs on.

/** `\s` of the `regex` module (Unicode White_Space), used by whitespace_clean and the pre-token pattern. */
export const WHITE_SPACE = String.raw`\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
/** Python `str.isspace()` (= `\s` of the `re` module): White_Space plus the separators U+1C..U+1F. */
const PY_SPACE = String.raw`${WHITE_SPACE}\x1c-\x1f`;
/** Python `re` `\w` on str: alphanumerics (str.isalnum) and underscore. */
const PY_WORD = String.raw`[\p{L}\p{N}_]`;

const PY_STRIP_RE = new RegExp(String.raw`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
const WHITE_SPACE_RUN_RE = new RegExp(`[${WHITE_SPACE}]+`, 'gu');

// ---------------------------------------------------------------------------
// html.unescape (Python stdlib semantics).

/**
 * Named character references: the HTML 4 names (+ `apos`) and every HTML5 name that is a
 * case variant of one (`AMP`, `Sum`, `THORN`…), as `name:hex-codepoint`; `*` marks the
 * legacy names that HTML5 also accepts without the `;`. This is all 106 legacy names but
 * only 284 of HTML5's 2,125 `;` names (the rest — `&check;`, `&rarrw;`… — are kept as text
 * here, where Python would decode them): an approximation that keeps the table small.
 */
const ENTITY_TABLE =
  'AElig*:c6 AMP*:26 Aacute*:c1 Acirc*:c2 Agrave*:c0 Alpha:391 And:2a53 Aring*:c5 Atilde*:c3 Auml*:c4 ' +
  'Beta:392 COPY*:a9 Cap:22d2 Ccedil*:c7 Chi:3a7 Cup:22d3 Dagger:2021 Darr:21a1 Delta:394 ETH*:d0 ' +
  'Eacute*:c9 Ecirc*:ca Egrave*:c8 Epsilon:395 Eta:397 Euml*:cb ForAll:2200 GT*:3e Gamma:393 Gt:226b ' +
  'Iacute*:cd Icirc*:ce Igrave*:cc Int:222c Iota:399 Iuml*:cf Kappa:39a LT*:3c Lambda:39b Lang:27ea ' +
  'Larr:219e Lt:226a Mu:39c Not:2aec Ntilde*:d1 Nu:39d OElig:152 Oacute*:d3 Ocirc*:d4 Ograve*:d2 ' +
  'Omega:3a9 Omicron:39f Or:2a54 Oslash*:d8 Otilde*:d5 Otimes:2a37 Ouml*:d6 Phi:3a6 Pi:3a0 Prime:2033 ' +
  'Psi:3a8 QUOT*:22 REG*:ae Rang:27eb Rarr:21a0 Rho:3a1 Scaron:160 Sigma:3a3 Sub:22d0 Sum:2211 ' +
  'Sup:22d1 THORN*:de TRADE:2122 Tau:3a4 Theta:398 Tilde:223c Uacute*:da Uarr:219f Ucirc*:db ' +
  'Ugrave*:d9 Upsilon:3a5 Uuml*:dc Xi:39e Yacute*:dd Yuml:178 Zeta:396 aacute*:e1 acirc*:e2 acute*:b4 ' +
  'aelig*:e6 agrave*:e0 alefsym:2135 alpha:3b1 amp*:26 and:2227 ang:2220 apos:27 aring*:e5 asymp:2248 ' +
  'atilde*:e3 auml*:e4 bdquo:201e beta:3b2 brvbar*:a6 bull:2022 cap:2229 ccedil*:e7 cedil*:b8 cent*:a2 ' +
  'chi:3c7 circ:2c6 clubs:2663 cong:2245 copy*:a9 crarr:21b5 cup:222a curren*:a4 dArr:21d3 ' +
  'dagger:2020 darr:2193 deg*:b0 delta:3b4 diams:2666 divide*:f7 eacute*:e9 ecirc*:ea egrave*:e8 ' +
  'empty:2205 emsp:2003 ensp:2002 epsilon:3b5 equiv:2261 eta:3b7 eth*:f0 euml*:eb euro:20ac exist:2203 ' +
  'fnof:192 forall:2200 frac12*:bd frac14*:bc frac34*:be frasl:2044 gE:2267 gamma:3b3 ge:2265 gt*:3e ' +
  'hArr:21d4 harr:2194 hearts:2665 hellip:2026 iacute*:ed icirc*:ee iexcl*:a1 igrave*:ec image:2111 ' +
  'infin:221e int:222b iota:3b9 iquest*:bf isin:2208 iuml*:ef kappa:3ba lArr:21d0 lE:2266 lambda:3bb ' +
  'lang:27e8 laquo*:ab larr:2190 lceil:2308 ldquo:201c le:2264 lfloor:230a lowast:2217 loz:25ca ' +
  'lrm:200e lsaquo:2039 lsquo:2018 lt*:3c macr*:af mdash:2014 micro*:b5 middot*:b7 minus:2212 mu:3bc ' +
  'nabla:2207 nbsp*:a0 ndash:2013 ne:2260 ni:220b not*:ac notin:2209 nsub:2284 ntilde*:f1 nu:3bd ' +
  'oacute*:f3 ocirc*:f4 oelig:153 ograve*:f2 oline:203e omega:3c9 omicron:3bf oplus:2295 or:2228 ' +
  'ordf*:aa ordm*:ba oslash*:f8 otilde*:f5 otimes:2297 ouml*:f6 para*:b6 part:2202 permil:2030 ' +
  'perp:22a5 phi:3c6 pi:3c0 piv:3d6 plusmn*:b1 pound*:a3 prime:2032 prod:220f prop:221d psi:3c8 ' +
  'quot*:22 rArr:21d2 radic:221a rang:27e9 raquo*:bb rarr:2192 rceil:2309 rdquo:201d real:211c reg*:ae ' +
  'rfloor:230b rho:3c1 rlm:200f rsaquo:203a rsquo:2019 sbquo:201a scaron:161 sdot:22c5 sect*:a7 ' +
  'shy*:ad sigma:3c3 sigmaf:3c2 sim:223c spades:2660 sub:2282 subE:2ac5 sube:2286 sum:2211 sup:2283 ' +
  'sup1*:b9 sup2*:b2 sup3*:b3 supE:2ac6 supe:2287 szlig*:df tau:3c4 there4:2234 theta:3b8 ' +
  'thetasym:3d1 thinsp:2009 thorn*:fe tilde:2dc times*:d7 trade:2122 uArr:21d1 uacute*:fa uarr:2191 ' +
  'ucirc*:fb ugrave*:f9 uml*:a8 upsih:3d2 upsilon:3c5 uuml*:fc weierp:2118 xi:3be yacute*:fd yen*:a5 ' +
  'yuml*:ff zeta:3b6 zwj:200d zwnj:200c';

/** Python's `html.entities.html5` restricted to ENTITY_TABLE: keys with `;`, plus the legacy keys without. */
const HTML5_ENTITIES: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const entry of ENTITY_TABLE.split(' ')) {
    const [key, hex] = entry.split(':');
    const legacy = key.endsWith('*');
    const name = legacy ? key.slice(0, -1) : key;
    const char = String.fromCodePoint(parseInt(hex, 16));
    map.set(`${name};`, char);
    if (legacy) map.set(name, char);
  }
  return map;
})();

/** Windows-1252 for bytes 0x80..0x9F; its five undefined bytes stand for the C1 control of the same value. */
const CP1252_80_9F =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

/** Code points html.unescape drops (Python's `_invalid_codepoints`). */
function isInvalidCodepoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

function numericCharref(digits: string, radix: 10 | 16): string {
  const cp = parseInt(digits, radix);
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_80_9F[cp - 0x80];
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (isInvalidCodepoint(cp)) return '';
  return String.fromCodePoint(cp);
}

const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Python `html.unescape`: numeric references (HTML5 error handling) and named ones, longest legacy prefix. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF_RE, (_match, ref: string) => {
    if (ref[0] === '#') {
      const hex = ref[1] === 'x' || ref[1] === 'X';
      return numericCharref(ref.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10);
    }
    const whole = HTML5_ENTITIES.get(ref);
    if (whole !== undefined) return whole;
    for (let x = ref.length - 1; x > 1; x--) {
      const prefix = HTML5_ENTITIES.get(ref.slice(0, x));
      if (prefix !== undefined) return prefix + ref.slice(x);
    }
    return `&${ref}`;
  });
}

// ---------------------------------------------------------------------------
// ftfy.fix_text (6.3.1 defaults), approximated.

/**
 * ftfy's own entity decoder: only `;`-terminated references, plus upper-cased variants of
 * lower-case names that are not entities themselves (`&EACUTE;` → `É`).
 */
const FTFY_ENTITIES: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const [name, char] of HTML5_ENTITIES) {
    if (!name.endsWith(';')) continue;
    map.set(`&${name}`, char);
    if (name === name.toLowerCase()) {
      const upper = `&${name.toUpperCase()}`;
      if (htmlUnescape(upper) === upper) map.set(upper, char.toUpperCase());
    }
  }
  return map;
})();
const FTFY_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;

function ftfyUnescapeHtml(text: string): string {
  return text.replace(FTFY_ENTITY_RE, (ref) => {
    const named = FTFY_ENTITIES.get(ref);
    if (named !== undefined) return named;
    if (ref.startsWith('&#')) {
      const decoded = htmlUnescape(ref);
      return decoded.includes(';') ? ref : decoded;
    }
    return ref;
  });
}

// ftfy.badness: character categories of UTF-8 mojibake and the regex of unlikely
// juxtapositions (BADNESS_RE), transcribed from ftfy 6.3.1. Used as a regex source
// with the `u` flag, so `\uXXXX` escapes are resolved by the regex engine.
const M = {
  common: String.raw`\u00a0\u00ad\u00b7\u00b4\u2013\u2014\u2015\u2026\u2019`,
  c1: String.raw`\u0080-\u009f`,
  bad: String.raw`\u00a6\u00a4\u00a8\u00ac\u00af\u00b8\u0192\u02c6\u02c7\u02d8\u02db\u02dc\u2020\u2021\u2030\u2310\u25ca\ufffd\u00aa\u00ba`,
  law: String.raw`\u00b6\u00a7`,
  currency: String.raw`\u00a2\u00a3\u00a5\u20a7\u20ac`,
  start: String.raw`\u00a1\u00ab\u00bf\u00a9\u0384\u0385\u2018\u201a\u201c\u201e\u2022\u2039\uf8ff`,
  end: String.raw`\u00ae\u00bb\u02dd\u201d\u203a\u2122`,
  numeric: String.raw`\u00b2\u00b3\u00b9\u00b1\u00bc\u00bd\u00be\u00d7\u00b5\u00f7\u2044\u2202\u2206\u220f\u2211\u221a\u221e\u2229\u222b\u2248\u2260\u2261\u2264\u2265\u2116`,
  kaomoji: String.raw`\u00d2-\u00d6\u00d9-\u00dc\u00f2-\u00f6\u00f8-\u00fc\u0150\u014c\u016a\u0172\u00b0`,
  upperAccented: String.raw`\u00c0-\u00d1\u00d8\u00dc\u00dd\u0102\u0100\u0104\u0106\u010c\u010e\u0110\u0118\u011a\u0112\u0116\u011e\u0122\u0130\u012a\u0136\u0139\u013d\u0141\u013b\u0143\u0147\u0145\u0152\u0158\u015a\u015e\u0160\u0162\u0164\u016e\u0170\u0178\u0179\u017b\u017d\u0490`,
  lowerAccented: String.raw`\u00df\u00e0-\u00f1\u0103\u0105\u0101\u0107\u010d\u010f\u0111\u0119\u011b\u0113\u0117\u011f\u0123\u012f\u012b\u0137\u013a\u013e\u0142\u013c\u0153\u0155\u015b\u015f\u0161\u0165\u00fc\u017a\u017c\u017e\u0491\ufb01\ufb02`,
  upperCommon: String.raw`\u00de\u0391-\u03a9\u0386\u0388\u0389\u038a\u038c\u038e\u038f\u03aa\u03ab\u0401-\u042f`,
  lowerCommon: String.raw`\u03b1-\u03c9\u03ac\u03ad\u03ae\u03af\u03b0\u0430-\u045f`,
  box: String.raw`\u2502\u250c\u2510\u2518\u251c\u2524\u252c\u253c\u2550-\u256c\u2580\u2584\u2588\u258c\u2590\u2591\u2592\u2593`,
};
const ARABIC_1252 = `[${M.common}${M.currency}${M.bad}${M.numeric}${M.start}\\u0178\\u0160\\u00ae\\u00b0\\u00b5\\u00bb]`;
const BADNESS_RE = new RegExp(
  [
    `[${M.c1}]`,
    `[${M.bad}${M.lowerAccented}${M.upperAccented}${M.box}${M.start}${M.end}${M.currency}${M.numeric}${M.law}][${M.bad}]`,
    `[a-zA-Z][${M.lowerCommon}${M.upperCommon}][${M.bad}]`,
    `[${M.bad}][${M.lowerAccented}${M.upperAccented}${M.box}${M.start}${M.end}${M.currency}${M.numeric}${M.law}]`,
    `[${M.lowerAccented}${M.lowerCommon}${M.box}${M.end}${M.currency}${M.numeric}][${M.upperAccented}]`,
    `[${M.box}${M.end}${M.currency}${M.numeric}][${M.lowerAccented}]`,
    `[${M.lowerAccented}${M.box}${M.end}][${M.currency}]`,
    `[${PY_SPACE}][${M.upperAccented}][${M.currency}]`,
    `[${M.upperAccented}${M.box}][${M.numeric}${M.law}]`,
    `[${M.lowerAccented}${M.upperAccented}${M.box}${M.currency}${M.end}][${M.start}][${M.numeric}]`,
    `[${M.lowerAccented}${M.upperAccented}${M.currency}${M.numeric}${M.box}${M.law}][${M.end}][${M.start}]`,
    `[${M.currency}${M.numeric}${M.box}][${M.start}]`,
    `[a-z][${M.upperAccented}][${M.start}${M.currency}]`,
    `[${M.box}][${M.kaomoji}]`,
    `[${M.lowerAccented}${M.upperAccented}${M.currency}${M.numeric}${M.start}${M.end}${M.law}][${M.box}]`,
    `[${M.box}][${M.end}]`,
    `[${M.lowerAccented}${M.upperAccented}][${M.start}${M.end}]${PY_WORD}`,
    String.raw`[\u0152\u0153][^A-Za-z]`,
    String.raw`[${M.upperAccented}]\u00b0`,
    String.raw`[\u00c2\u00c3\u00ce\u00d0][\u20ac\u0153\u0160\u0161\u00a2\u00a3\u0178\u017e\u00a0\u00ad\u00ae\u00a9\u00b0\u00b7\u00bb${M.start}${M.end}\u2013\u2014\u00b4]`,
    String.raw`\u00d7[\u00b2\u00b3]`,
    String.raw`[\u00d8\u00d9]${ARABIC_1252}[\u00d8\u00d9]${ARABIC_1252}`,
    String.raw`\u00e0[\u00b2\u00b5\u00b9\u00bc\u00bd\u00be]`,
    String.raw`\u221a[\u00b1\u2202\u2020\u2260\u00ae\u2122\u00b4\u2264\u2265\u00a5\u00b5\u00f8]`,
    String.raw`\u2248[\u00b0\u00a2]`,
    String.raw`\u201a\u00c4[\u00ec\u00ee\u00ef\u00f2\u00f4\u00fa\u00f9\u00fb\u2020\u00b0\u00a2\u03c0]`,
    String.raw`\u201a[\u00e2\u00f3][\u00e0\u00e4\u00b0\u00ea]`,
    String.raw`\u0432\u0402`,
    String.raw`[\u0412\u0413\u0420\u0421][${M.c1}${M.bad}${M.start}${M.end}${M.currency}\u00b0\u00b5][\u0412\u0413\u0420\u0421]`,
    String.raw`\u0413\u045e\u0412\u0402\u0412[^\n][A-Za-z ]`,
    String.raw`\u00c3[\u00a0\u00a1]`,
    String.raw`[a-z][${PY_SPACE}]?[\u00c3\u00c2][ ]`,
    String.raw`^[\u00c3\u00c2][ ]`,
    String.raw`[a-z.,?!${M.end}]\u00c2[ ${M.start}${M.end}]`,
    String.raw`\u03b2\u20ac[\u2122\u00a0\u0386\u00ad\u00ae\u00b0]`,
    String.raw`[\u0392\u0393\u039e\u039f][${M.c1}${M.bad}${M.start}${M.end}${M.currency}\u00b0][\u0392\u0393\u039e\u039f]`,
    String.raw`\u0101\u20ac`,
  ].join('|'),
  'u',
);

/** ftfy.badness.is_bad: does the text contain a character sequence typical of mojibake? */
function isBad(text: string): boolean {
  return BADNESS_RE.test(text);
}

type SingleByteEncoding = 'latin-1' | 'sloppy-windows-1252';

/**
 * Encodes text in a single-byte encoding as a binary string (one char per byte), or null
 * when a character has no byte. ftfy's "sloppy" Windows-1252 keeps the five undefined
 * bytes as the C1 controls and writes U+FFFD as byte 0x1A.
 */
function encodeSingleByte(text: string, encoding: SingleByteEncoding): string | null {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (encoding === 'latin-1') {
      if (cp > 0xff) return null;
      out += ch;
    } else if (cp < 0x80) {
      if (cp === 0x1a) return null;
      out += ch;
    } else if (cp >= 0xa0 && cp <= 0xff) {
      out += ch;
    } else if (cp === 0xfffd) {
      out += '\x1a';
    } else {
      const index = CP1252_80_9F.indexOf(ch);
      if (index < 0) return null;
      out += String.fromCharCode(0x80 + index);
    }
  }
  return out;
}

function binaryToBytes(binary: string): Uint8Array {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decoding of a binary string, or null when it is not valid UTF-8. */
function decodeUtf8Strict(binary: string): string | null {
  try {
    return STRICT_UTF8.decode(binaryToBytes(binary));
  } catch {
    return null;
  }
}

// ftfy.chardata byte patterns, applied to binary strings.
const ALTERED_UTF8_RE =
  /[\xc2\xc3\xc5\xce\xd0\xd9] |[\xe2\xe3] [\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf] |\xf0 [\x80-\xbf][\x80-\xbf]|\xf0[\x80-\xbf] [\x80-\xbf]|\xf0[\x80-\xbf][\x80-\xbf] /g;
const A_GRAVE_WORD_RE = /\xc3 (?! |quele|quela|quilo|s )/g;
const LOSSY_UTF8_RE = new RegExp(
  [
    String.raw`[\xc2-\xdf]\x1a`,
    String.raw`[\xc2-\xc3]\?`,
    String.raw`\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]`,
    String.raw`\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]`,
    String.raw`[\xe0-\xef][\x1a?][\x1a\x80-\xbf]`,
    String.raw`[\xe0-\xef][\x1a\x80-\xbf][\x1a?]`,
    String.raw`[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]`,
    String.raw`[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]`,
    String.raw`[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]`,
    String.raw`\x1a`,
  ].join('|'),
  'g',
);

/** ftfy.fixes.restore_byte_a0: a space that stands for byte 0xA0 inside a UTF-8 sequence. */
function restoreByteA0(binary: string): string {
  return binary.replace(A_GRAVE_WORD_RE, '\xc3\xa0 ').replace(ALTERED_UTF8_RE, (m) => m.replaceAll(' ', '\xa0'));
}

// ftfy's UTF8_DETECTOR_RE restricted to the Latin-1 / Windows-1252 clue characters.
const UTF8_CONTINUATION = String.raw`\x80-\xbf \u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178`;
/** Continuation clues that rarely stand for themselves next to mojibake (no space, dashes, quotes, bullet, ellipsis). */
const UTF8_CONTINUATION_STRICT = String.raw`\x80-\xbf\u20ac\u0192\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u02dc\u2122\u0161\u203a\u0153\u017e\u0178`;
const UTF8_DETECTOR_RE = new RegExp(
  String.raw`(?<![${UTF8_CONTINUATION_STRICT}])(?:[\xc2-\xdf][${UTF8_CONTINUATION}]|[\xe0-\xef][${UTF8_CONTINUATION}]{2}|[\xf0\xf3][${UTF8_CONTINUATION}]{3})+`,
  'gu',
);

/** ftfy.fixes.decode_inconsistent_utf8: repair mojibake runs embedded in otherwise fine text. */
function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_DETECTOR_RE, (run) => (run.length < text.length && isBad(run) ? fixEncoding(run) : run));
}

const C1_CONTROL_RE = /[\x80-\x9f]/g;

/** ftfy.fixes.fix_c1_controls: C1 controls read as their Windows-1252 characters. */
function fixC1Controls(text: string): string {
  return text.replace(C1_CONTROL_RE, (c) => CP1252_80_9F[c.charCodeAt(0) - 0x80]);
}

/**
 * One step of ftfy's fix_encoding. ftfy tries ten single-byte encodings; only the two that
 * account for nearly all real mojibake — UTF-8 read as Latin-1 or Windows-1252 — are
 * tried here, and "utf-8-variants" (CESU-8, Java's C0 80) is decoded as strict UTF-8.
 */
function fixEncodingStep(text: string): string {
  if (!/[^\x00-\x7f]/.test(text) || !isBad(text)) return text;
  let latin1Possible = false;
  for (const encoding of ['latin-1', 'sloppy-windows-1252'] as const) {
    let binary = encodeSingleByte(text, encoding);
    if (binary === null) continue;
    if (encoding === 'latin-1') latin1Possible = true;
    ALTERED_UTF8_RE.lastIndex = 0;
    if (ALTERED_UTF8_RE.test(binary)) binary = restoreByteA0(binary);
    if (encoding === 'sloppy-windows-1252') binary = binary.replace(LOSSY_UTF8_RE, '\xef\xbf\xbd');
    const decoded = decodeUtf8Strict(binary);
    if (decoded !== null) return decoded;
  }
  UTF8_DETECTOR_RE.lastIndex = 0;
  if (UTF8_DETECTOR_RE.test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }
  // Latin-1 text with C1 controls: meant as Windows-1252 (strict: its undefined bytes fail).
  if (latin1Possible && !/[\x81\x8d\x8f\x90\x9d]/.test(text)) {
    const fixed = fixC1Controls(text);
    if (fixed !== text) return fixed;
  }
  if (/[\x80-\x9f]/.test(text)) return fixC1Controls(text);
  return text;
}

/** ftfy.fix_encoding: repeat single steps until nothing changes. */
function fixEncoding(text: string): string {
  for (;;) {
    const fixed = fixEncodingStep(text);
    if (fixed === text) return text;
    text = fixed;
  }
}

const LIGATURES: Readonly<Record<string, string>> = {
  '\u0132': 'IJ', '\u0133': 'ij', '\u0149': '\u02bcn',
  '\u01f1': 'DZ', '\u01f2': 'Dz', '\u01f3': 'dz',
  '\u01c4': 'D\u017d', '\u01c5': 'D\u017e', '\u01c6': 'd\u017e',
  '\u01c7': 'LJ', '\u01c8': 'Lj', '\u01c9': 'lj',
  '\u01ca': 'NJ', '\u01cb': 'Nj', '\u01cc': 'nj',
  '\ufb00': 'ff', '\ufb01': 'fi', '\ufb02': 'fl', '\ufb03': 'ffi', '\ufb04': 'ffl', '\ufb05': '\u017ft', '\ufb06': 'st',
};
const LIGATURE_RE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;

/** Full-width ASCII and half-width kana/Hangul → their NFKC forms; the ideographic space → space. */
const WIDTH_MAP: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const ch = String.fromCharCode(cp);
    const alt = ch.normalize('NFKC');
    if (alt !== ch) map.set(ch, alt);
  }
  return map;
})();
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;

const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const TERMINAL_ESCAPE_RE = /\x1b\[((?:\p{Nd}|;)*)([a-zA-Z])/gu;
const CONTROL_CHAR_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

/** One segment through ftfy's fixers, repeated until nothing changes (ftfy.fix_and_explain). */
function fixSegment(text: string, unescapeHtml: boolean): string {
  for (;;) {
    const before = text;
    if (unescapeHtml) text = ftfyUnescapeHtml(text);
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = text.replace(LIGATURE_RE, (c) => LIGATURES[c]);
    text = text.replace(WIDTH_RE, (c) => WIDTH_MAP.get(c) ?? c);
    text = text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
    text = text.replace(/\r\n|[\r\u2028\u2029\x85]/g, '\n');
    text = text.replace(LONE_SURROGATE_RE, '\ufffd');
    text = text.replace(TERMINAL_ESCAPE_RE, '');
    text = text.replace(CONTROL_CHAR_RE, '');
    text = text.normalize('NFC');
    if (text === before) return text;
  }
}

/**
 * ftfy.fix_text with its default configuration: line by line; HTML entities are decoded
 * until a line containing "<" is met (then the input is taken for real HTML). ftfy also
 * splits lines longer than 1,000,000 characters; prompts never get there, so this does not.
 */
export function fixText(text: string): string {
  let unescapeHtml = true;
  let out = '';
  for (let pos = 0; pos < text.length; ) {
    const newline = text.indexOf('\n', pos);
    const end = newline < 0 ? text.length : newline + 1;
    const segment = text.slice(pos, end);
    if (segment.includes('<')) unescapeHtml = false;
    out += fixSegment(segment, unescapeHtml);
    pos = end;
  }
  return out;
}

/** The official `whitespace_clean(basic_clean(text)).lower()`. */
export function cleanText(text: string): string {
  const basic = htmlUnescape(htmlUnescape(fixText(text))).replace(PY_STRIP_RE, '');
  return basic.replace(WHITE_SPACE_RUN_RE, ' ').replace(PY_STRIP_RE, '').toLowerCase();
}
