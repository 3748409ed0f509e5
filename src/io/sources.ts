// Whole-file byte loaders for weights and images in browsers (and Node >= 20,
// which has fetch and Blob): a URL with download progress, a File or Blob
// (file inputs, drag and drop), or bytes already in memory. No Node built-ins.
// For random access into large safetensors files use urlSource / blobSource
// (src/io/safetensors.ts) instead; ONNX files are parsed whole, so they come
// through here.

import { concatBytes } from '../util/bytes.js';

export interface LoadProgress {
  /** Bytes received so far. */
  loaded: number;
  /** Total bytes when the server says (Content-Length), else undefined. */
  total: number | undefined;
}

export interface BytesFromUrlOptions {
  /** Called after every received chunk. */
  onProgress?: (progress: LoadProgress) => void;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Anything weights or images can be loaded from. */
export type ByteInput = string | URL | Blob | ArrayBuffer | ArrayBufferView;

/** Downloads a whole file; rejects on an HTTP error or a body shorter than its Content-Length. */
export async function bytesFromUrl(url: string | URL, options: BytesFromUrlOptions = {}): Promise<Uint8Array> {
  const fetchFn = options.fetch ?? fetch;
  const name = String(url);
  let response: Response;
  try {
    response = await fetchFn(url, { headers: options.headers, signal: options.signal });
  } catch (e) {
    throw new Error(`bytesFromUrl(${name}): the request failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!response.ok) throw new Error(`bytesFromUrl(${name}): HTTP ${response.status} ${response.statusText}`);
  const header = response.headers.get('content-length');
  // A compressed transfer reports the compressed length; only trust it for identity encoding.
  const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const total = header !== null && !encoded && /^\d+$/.test(header) ? Number(header) : undefined;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    options.onProgress?.({ loaded: bytes.length, total });
    return bytes;
  }
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      options.onProgress?.({ loaded, total });
    }
  } catch (e) {
    throw new Error(`bytesFromUrl(${name}): the download broke off after ${loaded} of ${total ?? 'unknown'} bytes: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (total !== undefined && loaded !== total) {
    throw new Error(`bytesFromUrl(${name}): received ${loaded} bytes, but Content-Length announced ${total} (truncated download?)`);
  }
  return concatBytes(chunks, loaded);
}

/** The bytes of a File or Blob (a file input's or a drop's). */
export async function bytesFromFile(file: Blob): Promise<Uint8Array> {
  if (typeof Blob === 'undefined' || !(file instanceof Blob)) {
    throw new Error(`bytesFromFile: expected a File or Blob, got ${Object.prototype.toString.call(file)}`);
  }
  return new Uint8Array(await file.arrayBuffer());
}

/**
 * Bytes from a URL (string or URL, fetched), a File/Blob, or memory (an
 * ArrayBuffer or a typed-array view, returned as a view without copying).
 */
export async function bytesFrom(input: ByteInput, options: BytesFromUrlOptions = {}): Promise<Uint8Array> {
  if (typeof input === 'string' || input instanceof URL) return bytesFromUrl(input, options);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return bytesFromFile(input);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new Error(`bytesFrom: expected a URL, a File/Blob, an ArrayBuffer or a typed array, got ${Object.prototype.toString.call(input)}`);
}
