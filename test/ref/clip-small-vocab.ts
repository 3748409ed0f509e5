// A small valid CLIP vocabulary for tests that need a tokenizer without
// ../shared: GPT-2's bytes_to_unicode table (written out here, not imported
// from src), the 512 byte symbols with and without </w>, "ab", "abc</w>" and
// the two specials, with merges "a b" and "ab c</w>".

export const SOT = '<|startoftext|>';
export const EOT = '<|endoftext|>';

/** GPT-2 bytes_to_unicode, index = byte. */
export const BYTE_TO_CHAR: string[] = (() => {
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table.push(String.fromCharCode(printable ? b : next++));
  }
  return table;
})();
export const BYTE_SYMBOLS = [...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));

/** The tokens in id order. */
export const BASE_TOKENS = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((s) => `${s}</w>`), 'ab', 'abc</w>', SOT, EOT];
export const BASE_MERGES = '#version: 0.2\na b\nab c</w>\n';
/** vocab.json text giving the tokens their positions as ids. */
export const vocabJson = (tokens: string[]): string => JSON.stringify(Object.fromEntries(tokens.map((t, id) => [t, id])));
