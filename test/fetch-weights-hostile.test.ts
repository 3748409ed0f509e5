// scripts/fetch-weights.js against hostile manifests and servers (issue 16),
// end to end, every server on 127.0.0.1 only: manifest names that try to leave
// the weights folder, unpinned entries without --no-verify, responses cut
// short (declared length, chunked, close-delimited), HTML pages with status
// 200, a user's existing file with the wrong sha256 when the replacement
// fails, https → http (and other scheme) redirects from a local HTTPS server
// whose self-signed certificate the child trusts through NODE_EXTRA_CA_CERTS,
// and model names such as `toString` that a plain-object lookup would find.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from './util.js';
import * as assert from 'uvu/assert';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(repoRoot, 'scripts', 'fetch-weights.js');
/** No single run of the script may take longer than this (a hung child is killed and fails the test). */
const RUN_LIMIT_MS = 15_000;

const payload = randomBytes(1000);
const payloadSha = createHash('sha256').update(payload).digest('hex');

// A throwaway self-signed certificate for IP 127.0.0.1 (P-256, CA:TRUE, valid
// 2000-01-01 to 2100-01-01), made for this test with openssl; it protects
// nothing. The child process trusts it through NODE_EXTRA_CA_CERTS.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgl+cwrg8VF4BhL3zF
JyltvS/0ojyeWH6hmzI9fOtKtv+hRANCAASG/SENYxde7LTQJmINOV+LbMD55BaW
YY+/ZsTpW2F2TwEy7hDx1iGO2Gq4SRi4Ns/sUNPqJX5RDqgQC/zmf0gW
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBbDCCARKgAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAkxMjcuMC4w
LjEwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM
CTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIb9IQ1jF17stNAm
Yg05X4tswPnkFpZhj79mxOlbYXZPATLuEPHWIY7YarhJGLg2z+xQ0+olflEOqBAL
/OZ/SBajUzBRMA8GA1UdEQQIMAaHBH8AAAEwDwYDVR0TAQH/BAUwAwEB/zAOBgNV
HQ8BAf8EBAMCAoQwHQYDVR0OBBYEFI1+zrLS7wqquSfBQ82csPPtChMHMAoGCCqG
SM49BAMCA0gAMEUCIQCk841yzmUtCbGzgMqLLShkWKAKvkf3tfPWAHLgAgEPkgIg
EAKhjDxXF2jmwKxBi4tbTgBgGXs743a30bn20MRLOMg=
-----END CERTIFICATE-----
`;

interface Ctx {
  tmp: string;
  http: Server;
  https: Server;
  raw: NetServer;
  base: string;
  secureBase: string;
  rawBase: string;
  hits: string[];
  caFile: string;
}

const test = suite<Ctx>('fetch-weights hostile');

/** Routes of the plain HTTP server (and, for /redirect-*, the HTTPS one). */
function route(ctx: Ctx, req: IncomingMessage, res: ServerResponse, hitPrefix = ''): void {
  const path = req.url ?? '/';
  ctx.hits.push(`${hitPrefix}${path}`);
  switch (path) {
    case '/file.bin':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': payload.length }).end(payload);
      return;
    case '/wrong.bin': // the right length, the wrong bytes
      res.writeHead(200, { 'content-length': payload.length }).end(Buffer.alloc(payload.length, 1));
      return;
    case '/cut.bin': // declares 1,000 bytes, sends 100, drops the connection; every time, Range or not
      res.writeHead(200, { 'content-length': payload.length });
      res.write(payload.subarray(0, 100), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    case '/cut-chunked.bin': // chunked framing, 100 bytes, then the connection drops without the last chunk
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(payload.subarray(0, 100), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    case '/short.bin': // a consistent but short answer: Content-Length 100, 100 bytes
      res.writeHead(200, { 'content-length': 100 }).end(payload.subarray(0, 100));
      return;
    case '/html.bin': {
      const page = Buffer.from('<!doctype html><html><body>Sign in to continue</body></html>');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': page.length }).end(page);
      return;
    }
    case '/missing.bin':
      res.writeHead(404).end();
      return;
    default:
      res.writeHead(500).end();
  }
}

test.before(async (ctx) => {
  ctx.hits = [];
  ctx.tmp = mkdtempSync(join(tmpdir(), 'fetch-weights-hostile-'));
  ctx.caFile = join(ctx.tmp, 'test-ca.pem');
  writeFileSync(ctx.caFile, TEST_CERT);
  ctx.http = createServer((req, res) => route(ctx, req, res));
  await new Promise<void>((r) => ctx.http.listen(0, '127.0.0.1', r));
  ctx.base = `http://127.0.0.1:${(ctx.http.address() as { port: number }).port}`;

  ctx.https = createHttpsServer({ key: TEST_KEY, cert: TEST_CERT }, (req, res) => {
    const path = req.url ?? '/';
    const redirects: Record<string, string> = {
      '/to-http.bin': `${ctx.base}/file.bin`,
      '/to-https.bin': '/file.bin',
      '/to-file.bin': 'file:///etc/passwd',
      '/to-ftp.bin': 'ftp://127.0.0.1/file.bin',
    };
    if (Object.hasOwn(redirects, path)) {
      ctx.hits.push(`https:${path}`);
      res.writeHead(302, { location: redirects[path] }).end();
    } else route(ctx, req, res, 'https:');
  });
  await new Promise<void>((r) => ctx.https.listen(0, '127.0.0.1', r));
  ctx.secureBase = `https://127.0.0.1:${(ctx.https.address() as { port: number }).port}`;

  // Raw answers node:http would not produce: a body framed only by the connection closing.
  ctx.raw = createNetServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', (head) => {
      const path = /^GET (\S+)/.exec(head.toString('latin1'))?.[1] ?? '/';
      ctx.hits.push(`raw:${path}`);
      const body = path === '/close-cut.bin' ? payload.subarray(0, 100) : payload;
      socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n'), body]));
    });
  });
  await new Promise<void>((r) => ctx.raw.listen(0, '127.0.0.1', r));
  ctx.rawBase = `http://127.0.0.1:${(ctx.raw.address() as { port: number }).port}`;
});

test.after((ctx) => {
  ctx.http.closeAllConnections();
  ctx.http.close();
  ctx.https.closeAllConnections();
  ctx.https.close();
  ctx.raw.close();
  rmSync(ctx.tmp, { recursive: true, force: true });
});

/** The machine's proxy, mirror and extra-CA settings stay out of these runs (a test sets them where it means to). */
const UNSET = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY', 'HF_ENDPOINT', 'NODE_EXTRA_CA_CERTS'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env };
    for (const k of UNSET) delete childEnv[k];
    const child = spawn(process.execPath, [script, ...args], { env: { ...childEnv, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fetch-weights ${args.join(' ')} still running after ${RUN_LIMIT_MS} ms`));
    }, RUN_LIMIT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface FileEntry {
  name?: unknown;
  url?: string;
  sha256?: string | null;
  size?: number | null;
}

/** A fresh case folder holding manifest.json with the given models; the weights go to CASE/w. */
function caseDir(ctx: Ctx, models: Record<string, { dir?: unknown; default?: boolean; files: FileEntry[] }>): string {
  const dir = mkdtempSync(join(ctx.tmp, 'case-'));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ models }));
  return dir;
}

/** One model "m" (folder m, default) with one file file.bin, pinned to the payload unless `file` says otherwise. */
function oneFile(ctx: Ctx, file: FileEntry): string {
  return caseDir(ctx, { m: { dir: 'm', default: true, files: [{ name: 'file.bin', sha256: payloadSha, size: payload.length, ...file }] } });
}

const fetchIn = (dir: string, args: string[] = [], env: Record<string, string> = {}) =>
  run(['--manifest', join(dir, 'manifest.json'), '--dir', join(dir, 'w'), '--connect-timeout', '3000', '--idle-timeout', '3000', ...args], env);
const target = (dir: string) => join(dir, 'w', 'm', 'file.bin');

/** Every path under `root`, relative, recursively (empty when root is absent). */
function tree(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
}

/** stderr is exactly one line starting "fetch-weights: " and matching `pattern`. */
function oneLine(r: Run, pattern: RegExp | string, what: string): void {
  assert.match(r.stderr, /^fetch-weights: [^\n]*\n$/, `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, pattern, what);
}

test('manifest names that leave the weights folder are refused before anything is fetched', async (ctx) => {
  const cases: { label: string; dir?: unknown; key?: string; name?: unknown; why: RegExp; escape: (d: string) => string }[] = [
    { label: 'dir ../escape', dir: '../escape', why: /"dir" "\.\.\/escape" contains a path separator/, escape: (d) => join(d, 'escape') },
    { label: 'dir ..', dir: '..', why: /"dir" "\.\." contains '\.\.'/, escape: (d) => join(d, 'file.bin') },
    { label: 'absolute dir', dir: '/tmp/fetch-weights-hostile-abs', why: /is an absolute path/, escape: () => '/tmp/fetch-weights-hostile-abs' },
    { label: 'key .. as folder', key: '..', why: /name \(used as its folder\) "\.\." contains '\.\.'/, escape: (d) => join(d, 'file.bin') },
    { label: 'name ../../outside.bin', name: '../../outside.bin', why: /the name contains a path separator/, escape: (d) => join(d, 'outside.bin') },
    { label: 'name with a backslash', name: '..\\..\\outside.bin', why: /the name contains a path separator/, escape: (d) => join(d, 'outside.bin') },
    { label: 'name a/b', name: 'sub/file.bin', why: /the name contains a path separator/, escape: (d) => join(d, 'w', 'm', 'sub') },
    { label: 'name ..', name: '..', why: /the name contains '\.\.'/, escape: (d) => join(d, 'w', 'file.bin') },
    { label: 'Windows drive path', name: 'C:\\evil.bin', why: /the name (is an absolute path|contains a path separator)/, escape: (d) => join(d, 'C:\\evil.bin') },
    { label: 'dot file', name: '.bashrc', why: /the name starts with a dot/, escape: (d) => join(d, 'w', 'm', '.bashrc') },
    { label: 'a .part name', name: 'x.part', why: /ends with \.part/, escape: (d) => join(d, 'w', 'm', 'x.part') },
    { label: 'NUL in a name', name: 'a\u0000b', why: /has characters outside/, escape: (d) => join(d, 'w', 'm', 'a') },
    { label: 'a non-string name', name: 42, why: /every file needs "name" and "url"/, escape: (d) => join(d, 'w', 'm', '42') },
  ];
  for (const c of cases) {
    const dir = mkdtempSync(join(ctx.tmp, 'case-'));
    const models = { [c.key ?? 'm']: { ...(c.key ? {} : { dir: c.dir ?? 'm' }), default: true, files: [{ name: c.name ?? 'file.bin', url: `${ctx.base}/file.bin`, sha256: payloadSha, size: payload.length }] } };
    // A second, innocent model in the same manifest: the bad entry refuses the whole manifest.
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ models: { ok: { default: true, files: [{ name: 'ok.bin', url: `${ctx.base}/file.bin`, sha256: payloadSha, size: payload.length }] }, ...models } }));
    ctx.hits.length = 0;
    const r = await fetchIn(dir);
    assert.is(r.code, 1, `${c.label}: ${r.stderr}`);
    oneLine(r, c.why, c.label);
    assert.equal(ctx.hits, [], `${c.label}: nothing requested`);
    assert.not.ok(existsSync(c.escape(dir)), `${c.label}: nothing written at ${c.escape(dir)}`);
    assert.equal(tree(join(dir, 'w')), [], `${c.label}: nothing written in the weights folder`);
    const list = await fetchIn(dir, ['--list']);
    assert.is(list.code, 1, `${c.label}: --list refuses the manifest too`);
  }
  // The same names, harmless: a plain name inside --dir is fetched (the checks are not refusing everything).
  const fine = caseDir(ctx, { 'm.2_x+y': { default: true, files: [{ name: 'file-1.0_b+c.bin', url: `${ctx.base}/file.bin`, sha256: payloadSha, size: payload.length }] } });
  const r = await fetchIn(fine);
  assert.is(r.code, 0, r.stderr);
  assert.ok(readFileSync(join(fine, 'w', 'm.2_x+y', 'file-1.0_b+c.bin')).equals(payload));
});

test('an entry without a pinned size and sha256 is refused unless --no-verify is given', async (ctx) => {
  for (const pin of [{ sha256: null, size: null }, { sha256: null }, { size: null }]) {
    const dir = oneFile(ctx, { url: `${ctx.base}/file.bin`, ...pin });
    ctx.hits.length = 0;
    const r = await fetchIn(dir);
    assert.is(r.code, 2, `${JSON.stringify(pin)}: ${r.stderr}`);
    oneLine(r, /m\/file\.bin\): refused\. Pass --no-verify/, JSON.stringify(pin));
    assert.equal(ctx.hits, [], 'nothing requested');
    assert.equal(tree(join(dir, 'w')), []);
    // With --no-verify: fetched, the sha256 printed as unverified; a stated value is still checked.
    const ok = await fetchIn(dir, ['--no-verify']);
    assert.is(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, `sha256 ${payloadSha}`);
    assert.ok(readFileSync(target(dir)).equals(payload));
  }
  const wrongSize = oneFile(ctx, { url: `${ctx.base}/file.bin`, sha256: null, size: 999 });
  const r = await fetchIn(wrongSize, ['--no-verify']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /has 1000 bytes, the manifest expects 999/);
  assert.not.ok(existsSync(target(wrongSize)));
  // The real manifest: its unpinned entries are refused without --no-verify before any connection (HTTPS_PROXY would catch one).
  const tmp = mkdtempSync(join(ctx.tmp, 'real-'));
  const real = await run(['--dir', tmp, 'sam2.1-hiera-tiny'], { HTTPS_PROXY: 'http://127.0.0.1:9' });
  assert.is(real.code, 2, real.stderr);
  oneLine(real, /sam2\.1-hiera-tiny\/sam2\.1_hiera_tiny\.pt\): refused\. Pass --no-verify/, 'real manifest');
  assert.equal(tree(tmp), []);
});

test('a response cut short is refused and nothing is renamed into place', async (ctx) => {
  const unpinned = { sha256: null, size: null };
  const cases: { label: string; file: FileEntry; args: string[]; why: RegExp }[] = [
    // Content-Length 1000, 100 bytes, connection dropped: retried (Range), cut again, then refused.
    { label: 'declared length, unpinned', file: { url: `${ctx.base}/cut.bin`, ...unpinned }, args: ['--no-verify', '--retries', '1'], why: /interrupted at 100 bytes/ },
    { label: 'declared length, pinned', file: { url: `${ctx.base}/cut.bin` }, args: ['--retries', '0'], why: /interrupted at 100 bytes/ },
    { label: 'chunked without its last chunk', file: { url: `${ctx.base}/cut-chunked.bin`, ...unpinned }, args: ['--no-verify', '--retries', '0'], why: /interrupted at 100 bytes/ },
    // No length and no chunked framing: the end of the body is the end of the connection.
    { label: 'close-delimited, unpinned', file: { url: `${ctx.rawBase}/close-cut.bin`, ...unpinned }, args: ['--no-verify'], why: /neither a Content-Length nor chunked framing/ },
    { label: 'close-delimited, pinned', file: { url: `${ctx.rawBase}/close-cut.bin` }, args: [], why: /got 100 bytes, the manifest expects 1000/ },
    // A consistent answer of 100 bytes where the manifest pins 1000.
    { label: 'short but consistent, pinned', file: { url: `${ctx.base}/short.bin` }, args: [], why: /has 100 bytes, the manifest expects 1000/ },
  ];
  for (const c of cases) {
    const dir = oneFile(ctx, c.file);
    const r = await fetchIn(dir, c.args);
    assert.is(r.code, 1, `${c.label}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, c.why, c.label);
    assert.match(r.stderr.trimEnd().split('\n').at(-1) ?? '', /^fetch-weights: /, `${c.label}: ends with the one-line error`);
    assert.not.ok(existsSync(target(dir)), `${c.label}: nothing renamed into place`);
    const part = `${target(dir)}.part`;
    if (existsSync(part)) assert.ok(readFileSync(part).length <= 100, `${c.label}: the .part holds only what came`);
  }
  // The same close-delimited body in full, pinned: accepted (the pin proves it complete).
  const whole = oneFile(ctx, { url: `${ctx.rawBase}/whole.bin` });
  const r = await fetchIn(whole);
  assert.is(r.code, 0, r.stderr);
  assert.ok(readFileSync(target(whole)).equals(payload));
});

test('an HTML page with status 200 is refused, pinned or not', async (ctx) => {
  for (const [label, file, args] of [
    ['unpinned', { url: `${ctx.base}/html.bin`, sha256: null, size: null }, ['--no-verify']],
    ['pinned', { url: `${ctx.base}/html.bin` }, []],
  ] as const) {
    const dir = oneFile(ctx, file);
    const r = await fetchIn(dir, [...args]);
    assert.is(r.code, 1, `${label}: ${r.stderr}`);
    oneLine(r, /answered with a web page \(Content-Type text\/html; charset=utf-8\), not the file: refused/, label);
    assert.not.ok(existsSync(target(dir)), label);
    assert.not.ok(existsSync(`${target(dir)}.part`), `${label}: no .part either`);
  }
});

test('an existing file with the wrong sha256 stays in place until a verified replacement is renamed over it', async (ctx) => {
  // The user's own file: the manifest's size, other bytes (so the sha256 is what tells them apart).
  const mine = Buffer.alloc(payload.length, 0x2a);
  const port = await (async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const p = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    return p;
  })();
  const failures: [string, string, string[], RegExp][] = [
    ['offline (refused connection)', `http://127.0.0.1:${port}/file.bin`, [], /cannot reach 127\.0\.0\.1/],
    ['HTTP 404', `${ctx.base}/missing.bin`, [], /HTTP 404/],
    ['cut connection', `${ctx.base}/cut.bin`, ['--retries', '0'], /interrupted at 100 bytes/],
    ['sha256 mismatch', `${ctx.base}/wrong.bin`, [], /sha256 mismatch/],
    ['HTML page', `${ctx.base}/html.bin`, [], /web page/],
  ];
  for (const [label, url, args, why] of failures) {
    const dir = oneFile(ctx, { url });
    mkdirSync(dirname(target(dir)), { recursive: true });
    writeFileSync(target(dir), mine);
    const r = await fetchIn(dir, args);
    assert.is(r.code, 1, `${label}: ${r.stderr}`);
    assert.match(r.stdout, /present but its sha256 [0-9a-f]{64} is not the manifest's/, label);
    assert.match(r.stderr, why, label);
    assert.ok(existsSync(target(dir)) && readFileSync(target(dir)).equals(mine), `${label}: the existing file is untouched`);
  }
  // A wrong size is noticed without hashing, and the file is likewise kept on failure.
  const sized = oneFile(ctx, { url: `${ctx.base}/missing.bin` });
  const small = Buffer.from('a short file of the user’s');
  mkdirSync(dirname(target(sized)), { recursive: true });
  writeFileSync(target(sized), small);
  const r = await fetchIn(sized);
  assert.is(r.code, 1);
  assert.match(r.stdout, new RegExp(`present but its size ${small.length} is not the manifest's ${payload.length}`));
  assert.ok(readFileSync(target(sized)).equals(small));
  // A good download replaces it, with no .part left behind.
  const good = oneFile(ctx, { url: `${ctx.base}/file.bin` });
  mkdirSync(dirname(target(good)), { recursive: true });
  writeFileSync(target(good), mine);
  const ok = await fetchIn(good);
  assert.is(ok.code, 0, ok.stderr);
  assert.ok(readFileSync(target(good)).equals(payload));
  assert.equal(tree(join(good, 'w', 'm')), ['file.bin']);
});

test('https → http (or any non-https) redirects are refused; https → https is followed', async (ctx) => {
  const env = { NODE_EXTRA_CA_CERTS: ctx.caFile };
  // Control: the child trusts the local certificate, so what follows is the redirect policy, not a TLS failure.
  const secure = oneFile(ctx, { url: `${ctx.secureBase}/to-https.bin` });
  ctx.hits.length = 0;
  const ok = await fetchIn(secure, [], env);
  assert.is(ok.code, 0, ok.stderr);
  assert.ok(readFileSync(target(secure)).equals(payload));
  assert.equal(ctx.hits, ['https:/to-https.bin', 'https:/file.bin']);

  for (const [path, scheme] of [['/to-http.bin', 'http:'], ['/to-file.bin', 'file:'], ['/to-ftp.bin', 'ftp:']]) {
    const dir = oneFile(ctx, { url: `${ctx.secureBase}${path}` });
    ctx.hits.length = 0;
    const r = await fetchIn(dir, [], env);
    assert.is(r.code, 1, `${path}: ${r.stderr}`);
    oneLine(r, new RegExp(`redirected to ${scheme}//[^ ]*: refused`), path);
    assert.equal(ctx.hits, [`https:${path}`], `${path}: the redirect was not followed`);
    assert.not.ok(existsSync(target(dir)), path);
    assert.not.ok(existsSync(`${target(dir)}.part`), path);
  }
});

test('an unknown model name (toString, __proto__, …) is one line listing the known names, exit 2', async (ctx) => {
  const dir = oneFile(ctx, { url: `${ctx.base}/file.bin` });
  for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'nope']) {
    ctx.hits.length = 0;
    const r = await fetchIn(dir, [name]);
    assert.is(r.code, 2, `${name}: ${r.stderr}`);
    assert.is(r.stderr, `fetch-weights: unknown model ${JSON.stringify(name)} (known: "m")\n`, name);
    assert.is(r.stdout, '', name);
    assert.equal(ctx.hits, [], name);
  }
  const real = await run(['toString']);
  assert.is(real.code, 2, real.stderr);
  oneLine(real, /^fetch-weights: unknown model "toString" \(known: [^\n]*"clip-vit-base-patch32"[^\n]*\)\n$/, 'real manifest');
  // A manifest whose model is literally named "__proto__" (JSON.parse makes it an own key) is served like any other.
  const proto = mkdtempSync(join(ctx.tmp, 'case-'));
  writeFileSync(join(proto, 'manifest.json'), `{"models": {"__proto__": {"dir": "m", "files": [{"name": "file.bin", "url": "${ctx.base}/file.bin", "sha256": "${payloadSha}", "size": ${payload.length}}]}}}`);
  const r = await fetchIn(proto, ['__proto__']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(readFileSync(target(proto)).equals(payload));
  // Bad options are usage errors too: one line, exit 2.
  for (const args of [['--bogus'], ['--retries', '-1'], ['--retries', 'x'], ['--dir']]) {
    const bad = await run(args);
    assert.is(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    oneLine(bad, /^fetch-weights: /, args.join(' '));
  }
});

test.run();
