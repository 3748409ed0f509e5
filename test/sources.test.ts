// Whole-file byte loaders (src/io/sources.ts) against a local HTTP server:
// progress, the bytes, and useful errors for HTTP failures, truncated bodies
// and wrong inputs. No GPU.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as assert from 'uvu/assert';
import { bytesFrom, bytesFromFile, bytesFromUrl, type LoadProgress } from '../src/io/sources.js';
import { assertThrows, suite } from './util.js';

const test = suite<{ server: Server; base: string }>('sources', {} as { server: Server; base: string });
const payload = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) & 255);

test.before(async (ctx) => {
  ctx.server = createServer((req, res) => {
    if (req.url === '/file.bin') {
      res.writeHead(200, { 'content-length': String(payload.length) });
      // In pieces, so progress is reported more than once.
      for (let i = 0; i < payload.length; i += 65536) res.write(payload.subarray(i, i + 65536));
      res.end();
    } else if (req.url === '/truncated.bin') {
      res.writeHead(200, { 'content-length': String(payload.length) });
      res.write(payload.subarray(0, 1000));
      setTimeout(() => res.destroy(), 20);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('nope');
    }
  });
  await new Promise<void>((resolve) => ctx.server.listen(0, '127.0.0.1', resolve));
  ctx.base = `http://127.0.0.1:${(ctx.server.address() as AddressInfo).port}`;
});

test.after((ctx) => {
  ctx.server.closeAllConnections();
  ctx.server.close();
});

test('bytesFromUrl: the whole file, with growing progress up to the announced total', async ({ base }) => {
  const seen: LoadProgress[] = [];
  const bytes = await bytesFromUrl(`${base}/file.bin`, { onProgress: (p) => seen.push(p) });
  assert.equal(bytes, payload);
  assert.ok(seen.length >= 2, `progress reported ${seen.length} times`);
  assert.ok(seen.every((p, i) => p.total === payload.length && (i === 0 || p.loaded > seen[i - 1].loaded)), 'progress grows, total known');
  assert.is(seen.at(-1)!.loaded, payload.length);
});

test('bytesFromUrl: HTTP errors, truncated downloads and unreachable hosts are Errors naming the URL', async ({ base }) => {
  await assertThrows(() => bytesFromUrl(`${base}/missing.onnx`), /bytesFromUrl\(http:\/\/127\.0\.0\.1:\d+\/missing\.onnx\)/, /HTTP 404/);
  await assertThrows(() => bytesFromUrl(`${base}/truncated.bin`), /truncated\.bin/, /(broke off after \d+ of 300000 bytes|received 1000 bytes, but Content-Length announced 300000)/);
  await assertThrows(() => bytesFromUrl('http://127.0.0.1:1/x.onnx'), /bytesFromUrl\(http:\/\/127\.0\.0\.1:1\/x\.onnx\)/, /request failed/);
});

test('bytesFromFile and bytesFrom: Blob, ArrayBuffer, typed-array view (no copy), URL; wrong inputs throw', async ({ base }) => {
  assert.equal(await bytesFromFile(new Blob([payload.subarray(0, 10)])), payload.subarray(0, 10));
  assert.equal(await bytesFrom(new Blob([payload.subarray(5, 9)])), payload.subarray(5, 9));
  const buffer = payload.slice(0, 8).buffer;
  assert.equal(await bytesFrom(buffer), new Uint8Array(buffer));
  const view = new Float32Array([1, 2]);
  const viewed = await bytesFrom(view);
  assert.is(viewed.buffer, view.buffer, 'a view is returned without copying');
  assert.is(viewed.length, 8);
  assert.equal(await bytesFrom(new URL(`${base}/file.bin`)), payload);
  await assertThrows(() => bytesFromFile('model.onnx' as unknown as Blob), /bytesFromFile/, /File or Blob/, /\[object String\]/);
  await assertThrows(() => bytesFrom(42 as unknown as ArrayBuffer), /bytesFrom/, /\[object Number\]/);
});

test.run();
