// Byte-level BPE over one piece of a word: the official `bpe` merge loop of
// openai/CLIP's simple_tokenizer.py in O(n log n), and the rule that bounds
// the pieces it is fed (MAX_BPE_WORD_BYTES). ClipTokenizer (tokenizer.ts)
// cuts words into pieces and looks the symbols up.

/** The suffix the last symbol of a word carries. */
export const END_OF_WORD = '</w>';

/**
 * The rule that bounds the cost of one word: a pre-token's UTF-8 bytes go through BPE in
 * pieces of at most MAX_BPE_WORD_BYTES bytes (cut between characters), only the last piece
 * carrying `</w>`. BPE itself is O(n log n) in the piece's length (a heap of candidate
 * pairs, see bpeSymbols), so a word costs O(length · log 4096) however long it is.
 *
 * Every pre-token up to 4,096 bytes — every real word: the longest vocabulary token is 32
 * bytes — is one piece, and its ids are the official ones. A longer pre-token (a hostile
 * 80,000-letter "word") is where this departs from the official tokenizer, which runs its
 * O(n²) BPE over the whole word: the ids can differ next to each cut. As 4,096 > 77 · 32,
 * the first piece alone yields more than 77 tokens, so `tokenize(…, { truncate: true })` of
 * a giant word runs BPE over one piece (a few ms) and stops there.
 */
export const MAX_BPE_WORD_BYTES = 4096;

/** Heap keys are rank · POSITION_SPAN + position: merge ranks < 2^24, positions < 2^16, exact in a double. */
const POSITION_SPAN = 65536;

/**
 * The official `bpe`, in O(n log n) instead of O(n²): repeatedly take the lowest-ranked
 * adjacent pair and merge every occurrence of it, left to right without overlap; the last
 * symbol carries `</w>` when `endOfWord`. The symbols form a linked list; a min-heap holds
 * (rank, position) of every candidate pair, stale entries skipped on the way out. All
 * entries of the lowest rank are taken at once and merged in position order, exactly as
 * the official loop rewrites the word for that pair, and only then are the changed
 * neighbouring pairs pushed — so the result is the official one, id for id.
 */
export function bpeSymbols(symbols: string, endOfWord: boolean, ranks: ReadonlyMap<string, number>): string[] {
  const n = symbols.length;
  if (n >= POSITION_SPAN) throw new Error(`ClipTokenizer: internal error: a BPE piece of ${n} symbols (at most ${MAX_BPE_WORD_BYTES} expected)`);
  const sym = new Array<string>(n);
  for (let i = 0; i < n; i++) sym[i] = symbols[i];
  if (endOfWord) sym[n - 1] += END_OF_WORD;
  if (n < 2) return sym;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  /** Rank of the pair that starts at i, -1 when there is none (or i was merged away). */
  const pairRank = new Int32Array(n);
  const stamp = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const rankAt = (i: number): number => {
    const j = next[i];
    return j < 0 ? -1 : (ranks.get(`${sym[i]} ${sym[j]}`) ?? -1);
  };
  const heap: number[] = [];
  for (let i = 0; i < n; i++) {
    pairRank[i] = rankAt(i);
    if (pairRank[i] >= 0) heap.push(pairRank[i] * POSITION_SPAN + i);
  }
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i);
  const batch: number[] = [];
  const touched: number[] = [];
  for (let round = 1; heap.length > 0; round++) {
    const rank = Math.floor(heap[0] / POSITION_SPAN);
    batch.length = 0;
    while (heap.length > 0 && Math.floor(heap[0] / POSITION_SPAN) === rank) batch.push(heapPop(heap) - rank * POSITION_SPAN);
    touched.length = 0;
    for (const i of batch) {
      // Stale (the pair there changed), a duplicate entry, or i merged into its left neighbour.
      if (pairRank[i] !== rank) continue;
      const j = next[i];
      sym[i] += sym[j];
      const k = next[j];
      next[i] = k;
      if (k >= 0) prev[k] = i;
      pairRank[i] = -1;
      pairRank[j] = -1;
      next[j] = -1;
      stamp[j] = -1; // gone for good
      for (const t of [prev[i], i]) {
        if (t >= 0 && stamp[t] !== round) {
          stamp[t] = round;
          touched.push(t);
        }
      }
      if (prev[i] >= 0) pairRank[prev[i]] = -1;
    }
    for (const t of touched) {
      if (stamp[t] < 0) continue;
      pairRank[t] = rankAt(t);
      if (pairRank[t] >= 0) heapPush(heap, pairRank[t] * POSITION_SPAN + t);
    }
  }
  const word: string[] = [];
  for (let i = 0; i >= 0; i = next[i]) word.push(sym[i]); // position 0 is never merged away
  return word;
}

function siftDown(heap: number[], i: number): void {
  const n = heap.length;
  const value = heap[i];
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1] < heap[child]) child++;
    if (heap[child] >= value) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = value;
}

function heapPush(heap: number[], value: number): void {
  let i = heap.length;
  heap.push(value);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= value) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    siftDown(heap, 0);
  }
  return top;
}
