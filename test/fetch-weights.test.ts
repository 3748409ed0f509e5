// scripts/fetch-weights.js end to end against a local HTTP server (node:http)
// that serves a small file with Range support and can misbehave on demand:
// cut a connection midway, ignore Range, redirect. Also: sha256 mismatch,
// unreachable hosts (fast one-line failure), --list, and the real manifest.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from './util.js';
import * as assert from 'uvu/assert';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(repoRoot, 'scripts', 'fetch-weights.js');
/** An unreachable host must fail well within this (the brief: "within a few seconds"). */
const FAST_FAILURE_MS = 5000;

const payload = randomBytes(300_000);
const payloadSha = createHash('sha256').update(payload).digest('hex');

interface Hit {
  path: string;
  range?: string;
}

const test = suite<{ server: Server; base: string; hits: Hit[]; tmp: string }>('fetch-weights');

test.before(async (ctx) => {
  ctx.hits = [];
  ctx.tmp = mkdtempSync(join(tmpdir(), 'fetch-weights-'));
  let cuts = 0;
  ctx.server = createServer((req: IncomingMessage, res) => {
    const path = req.url ?? '/';
    ctx.hits.push({ path, range: req.headers.range });
    if (path === '/redirect/file.bin') {
      res.writeHead(302, { location: '/file.bin' }).end();
      return;
    }
    if (path === '/missing.bin') {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && path !== '/norange/file.bin') {
      const start = Number(m[1]);
      if (start >= payload.length) {
        res.writeHead(416, { 'content-range': `bytes */${payload.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': payload.length - start, 'content-range': `bytes ${start}-${payload.length - 1}/${payload.length}` });
      res.end(payload.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': payload.length });
    if (path === '/cut/file.bin' && cuts++ === 0) {
      // First request: send 40% and drop the connection.
      res.write(payload.subarray(0, 120_000), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(payload);
  });
  await new Promise<void>((r) => ctx.server.listen(0, '127.0.0.1', r));
  const address = ctx.server.address();
  if (typeof address !== 'object' || !address) throw new Error('no server address');
  ctx.base = `http://127.0.0.1:${address.port}`;
});

test.after((ctx) => {
  ctx.server.close();
  rmSync(ctx.tmp, { recursive: true, force: true });
});

/** A manifest with one model "m" holding one file, written to a fresh folder; returns the folder. */
function setup(ctx: { tmp: string }, file: { url: string; sha256?: string | null; size?: number | null }): string {
  const dir = mkdtempSync(join(ctx.tmp, 'case-'));
  const manifest = { models: { m: { dir: 'm', default: true, files: [{ name: 'file.bin', sha256: payloadSha, size: payload.length, ...file }] } } };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

/** The machine's own proxy settings stay out of these runs (the local server must be reached directly unless a test sets a proxy). */
const NO_PROXY_ENV = Object.fromEntries(['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'].map((k) => [k, '']));

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...NO_PROXY_ENV, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** A local port with nothing listening on it (bound, then closed). */
async function closedPort(): Promise<number> {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  return port;
}

const fetchCase = (dir: string, ...extra: string[]) => run(['--manifest', join(dir, 'manifest.json'), '--dir', join(dir, 'w'), ...extra]);
const downloaded = (dir: string) => join(dir, 'w', 'm', 'file.bin');

test('downloads, checks sha256 and renames the .part; a second run verifies and skips', async (ctx) => {
  const dir = setup(ctx, { url: `${ctx.base}/redirect/file.bin` });
  const r = await fetchCase(dir);
  assert.is(r.code, 0, r.stderr);
  assert.ok(readFileSync(downloaded(dir)).equals(payload));
  assert.not.ok(existsSync(`${downloaded(dir)}.part`));
  assert.match(r.stdout, `sha256 ${payloadSha} OK`);
  assert.match(r.stderr, /100\.0%/, 'progress reaches 100%');
  assert.match(r.stderr, /MB\/s ETA/, 'progress shows rate and ETA');
  const again = await fetchCase(dir);
  assert.is(again.code, 0);
  assert.match(again.stdout, /present, sha256 OK/);
});

test('a connection cut midway resumes with a Range request from the bytes received', async (ctx) => {
  const dir = setup(ctx, { url: `${ctx.base}/cut/file.bin` });
  ctx.hits.length = 0;
  const r = await fetchCase(dir);
  assert.is(r.code, 0, r.stderr);
  assert.ok(readFileSync(downloaded(dir)).equals(payload));
  assert.match(r.stderr, /interrupted at \d+ bytes.*resuming from byte \d+/);
  const ranges = ctx.hits.filter((h) => h.path === '/cut/file.bin').map((h) => h.range);
  assert.is(ranges.length, 2);
  assert.is(ranges[0], undefined);
  const resumedAt = Number(/bytes=(\d+)-/.exec(ranges[1] ?? '')?.[1]);
  assert.ok(resumedAt > 0 && resumedAt <= 120_000, `resumed at ${resumedAt}`);
});

test('a .part left by an earlier run is resumed; a server ignoring Range restarts it from 0', async (ctx) => {
  const dir = setup(ctx, { url: `${ctx.base}/file.bin` });
  const part = `${downloaded(dir)}.part`;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dirname(part), { recursive: true });
  writeFileSync(part, payload.subarray(0, 77_777));
  ctx.hits.length = 0;
  const r = await fetchCase(dir);
  assert.is(r.code, 0, r.stderr);
  assert.equal(ctx.hits.map((h) => h.range), ['bytes=77777-']);
  assert.ok(readFileSync(downloaded(dir)).equals(payload));

  const dir2 = setup(ctx, { url: `${ctx.base}/norange/file.bin` });
  mkdirSync(join(dir2, 'w', 'm'), { recursive: true });
  writeFileSync(`${downloaded(dir2)}.part`, Buffer.alloc(5000, 7)); // wrong bytes: must be overwritten, not kept
  const r2 = await fetchCase(dir2);
  assert.is(r2.code, 0, r2.stderr);
  assert.ok(readFileSync(downloaded(dir2)).equals(payload));
});

test('sha256 mismatch: exit 1, an Error naming both hashes, the .part removed, no final file', async (ctx) => {
  const wrong = '0'.repeat(64);
  const dir = setup(ctx, { url: `${ctx.base}/file.bin`, sha256: wrong });
  const r = await fetchCase(dir);
  assert.is(r.code, 1);
  assert.match(r.stderr, `sha256 mismatch: got ${payloadSha}, the manifest expects ${wrong}`);
  assert.not.ok(existsSync(downloaded(dir)));
  assert.not.ok(existsSync(`${downloaded(dir)}.part`));
  // Unknown hash: refused (exit 2, nothing fetched) unless --no-verify; then accepted unverified, the computed one printed.
  const open = setup(ctx, { url: `${ctx.base}/file.bin`, sha256: null, size: null });
  const refused = await fetchCase(open);
  assert.is(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /1 file\(s\) have no size and sha256 pinned .*\(m\/file\.bin\): refused\. Pass --no-verify/);
  assert.not.ok(existsSync(downloaded(open)));
  const r2 = await fetchCase(open, '--no-verify');
  assert.is(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, `sha256 ${payloadSha} (unverified`);
});

test('HTTP errors and unreachable hosts fail fast with one line and exit 1', async (ctx) => {
  const missing = await fetchCase(setup(ctx, { url: `${ctx.base}/missing.bin` }));
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /^fetch-weights: HTTP 404 .*missing\.bin\n$/);

  // A closed port (refused), a TEST-NET-1 address (RFC 5737: never routed; refused or silent) and a name that cannot resolve.
  const port = await closedPort();
  for (const url of [`http://127.0.0.1:${port}/file.bin`, 'http://192.0.2.1/file.bin', 'https://no-such-host.invalid/file.bin']) {
    const r = await fetchCase(setup(ctx, { url }), '--connect-timeout', '2000');
    assert.is(r.code, 1, url);
    assert.ok(r.ms < FAST_FAILURE_MS, `${url}: failed after ${r.ms} ms`);
    assert.match(r.stderr, /^fetch-weights: cannot reach [^\n]+no network\?[^\n]+\n$/, url);
  }
});

test('HTTP_PROXY: every connection is a CONNECT tunnel through the proxy; NO_PROXY bypasses it; a refusing proxy is named', async (ctx) => {
  const tunnels: string[] = [];
  let refuse = false;
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    if (refuse) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const address = proxy.address();
  if (typeof address !== 'object' || !address) throw new Error('no proxy address');
  const proxyUrl = `http://127.0.0.1:${address.port}`;
  const target = ctx.base.replace('http://', '');
  try {
    // A redirect and the file: both through the tunnel.
    const dir = setup(ctx, { url: `${ctx.base}/redirect/file.bin` });
    const r = await run(['--manifest', join(dir, 'manifest.json'), '--dir', join(dir, 'w')], { HTTP_PROXY: proxyUrl });
    assert.is(r.code, 0, r.stderr);
    assert.ok(readFileSync(downloaded(dir)).equals(payload), 'the file came through the proxy intact');
    assert.equal(tunnels, [target, target], 'one CONNECT per request (the redirect, then the file)');
    // NO_PROXY lists the host: no tunnel.
    const direct = setup(ctx, { url: `${ctx.base}/file.bin` });
    const r2 = await run(['--manifest', join(direct, 'manifest.json'), '--dir', join(direct, 'w')], { HTTP_PROXY: proxyUrl, NO_PROXY: 'localhost,127.0.0.1' });
    assert.is(r2.code, 0, r2.stderr);
    assert.is(tunnels.length, 2, 'NO_PROXY host bypassed the proxy');
    // A proxy that refuses: the error names the proxy and its answer.
    refuse = true;
    const refused = setup(ctx, { url: `${ctx.base}/file.bin` });
    const r3 = await run(['--manifest', join(refused, 'manifest.json'), '--dir', join(refused, 'w')], { HTTP_PROXY: proxyUrl });
    assert.is(r3.code, 1);
    assert.match(r3.stderr, /proxy 127\.0\.0\.1:\d+ refused CONNECT 127\.0\.0\.1:\d+: HTTP 407/);
    // A proxy setting that is not an http:// URL is refused up front.
    const r4 = await run(['--manifest', join(refused, 'manifest.json'), '--dir', join(refused, 'w')], { HTTP_PROXY: 'socks5://127.0.0.1:1080' });
    assert.is(r4.code, 1);
    assert.match(r4.stderr, /only http:\/\/ proxies are supported, got socks5:/);
  } finally {
    proxy.close();
  }
});

test('--list prints the real manifest; the real hub, made unreachable, fails fast with one line', async () => {
  const list = await run(['--list']);
  assert.is(list.code, 0, list.stderr);
  for (const name of ['clip-vit-base-patch32', 'clip-vit-base-patch16', 'clip-vit-large-patch14', 'sam2.1-hiera-tiny', 'sam2.1-hiera-large']) assert.match(list.stdout, name);
  assert.match(list.stdout, 'https://huggingface.co/timm/vit_base_patch16_clip_224.openai/resolve/main/open_clip_model.safetensors');
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'weights', 'manifest.json'), 'utf8'));
  type Entry = { default?: boolean; layout?: string; files: { name: string; sha256: string | null; size: number | null }[] };
  for (const m of Object.values(manifest.models) as Entry[]) {
    for (const f of m.files) assert.ok(f.sha256 === null || /^[0-9a-f]{64}$/.test(f.sha256), `${f.name}: sha256 ${f.sha256}`);
  }
  // The default set: CLIP B/32 and B/16, each with its tokenizer next to the weights, every file checksummed.
  const defaults = Object.entries(manifest.models as Record<string, Entry>).filter(([, m]) => m.default);
  assert.equal(defaults.map(([n]) => n).sort(), ['clip-vit-base-patch16', 'clip-vit-base-patch32']);
  for (const [name, m] of defaults) {
    assert.ok(m.files.some((f) => f.name.endsWith('.safetensors')) && m.files.some((f) => f.name === 'bpe_simple_vocab_16e6.txt.gz'), `${name}: weights + tokenizer`);
    for (const f of m.files) assert.ok(f.sha256 !== null, `${name}/${f.name} has a sha256`);
  }
  // The real manifest's https://huggingface.co URLs, unreachable by construction whatever this
  // machine's network: HTTPS_PROXY names a closed local port, so the CONNECT tunnel is refused
  // and no DNS lookup or packet leaves the machine. Then HF_ENDPOINT (a mirror) on a closed port.
  const port = await closedPort();
  const tmp = mkdtempSync(join(tmpdir(), 'fetch-weights-real-'));
  try {
    const viaProxy = await run(['--dir', tmp, '--connect-timeout', '2000', 'clip-vit-base-patch32'], { HTTPS_PROXY: `http://127.0.0.1:${port}` });
    assert.is(viaProxy.code, 1, viaProxy.stderr);
    assert.ok(viaProxy.ms < FAST_FAILURE_MS, `failed after ${viaProxy.ms} ms`);
    assert.match(viaProxy.stderr, new RegExp(`^fetch-weights: cannot reach huggingface\\.co [^\\n]*proxy 127\\.0\\.0\\.1:${port}[^\\n]*ECONNREFUSED[^\\n]*no network\\?[^\\n]+\\n$`));
    const mirror = await run(['--dir', tmp, '--connect-timeout', '2000', 'clip-vit-base-patch32'], { HF_ENDPOINT: `http://127.0.0.1:${port}/` });
    assert.is(mirror.code, 1, mirror.stderr);
    assert.ok(mirror.ms < FAST_FAILURE_MS, `failed after ${mirror.ms} ms`);
    assert.match(mirror.stderr, new RegExp(`^fetch-weights: cannot reach 127\\.0\\.0\\.1:${port} [^\\n]*ECONNREFUSED[^\\n]*no network\\?[^\\n]+\\n$`));
    assert.equal(readdirSync(tmp).flatMap((d) => readdirSync(join(tmp, d))), [], 'nothing written (not even a .part)');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
