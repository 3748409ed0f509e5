// Bounded gzip inflation for files that come from outside (a tokenizer's
// merges file): DecompressionStream, so browser-safe, refusing as soon as the
// output passes a cap so that a gzip bomb never inflates in memory.

import { concatBytes } from '../util/bytes.js';

/** Thrown by gunzip when the output passes its cap. */
export class InflateLimitError extends Error {}

/** Input is fed to the decompressor in slices this big, so output past the cap stays small. */
const GUNZIP_SLICE_BYTES = 16 * 1024;

/**
 * Inflates gzip bytes with DecompressionStream, refusing (InflateLimitError) as soon as the
 * output passes `maxBytes`: input goes in 16 KiB slices under backpressure and the output is
 * counted as it comes, so a bomb costs about maxBytes (plus what one slice inflates to) of
 * memory, never its full size.
 */
export async function gunzip(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  const stream = new DecompressionStream('gzip');
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const feeding = (async () => {
    for (let at = 0; at < bytes.length; at += GUNZIP_SLICE_BYTES) {
      await writer.ready;
      await writer.write(bytes.slice(at, at + GUNZIP_SLICE_BYTES));
    }
    await writer.close();
  })();
  // Errors surface on the readable side; the writer's are settled here to avoid unhandled rejections.
  feeding.catch(() => undefined);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new InflateLimitError(`more than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  await feeding;
  return concatBytes(chunks, total);
}
