#!/usr/bin/env node
// Downloads checkpoints listed in weights/manifest.json into weights/<dir>/.
//
//   node scripts/fetch-weights.js --list             print the manifest
//   node scripts/fetch-weights.js                    the default set (CLIP ViT-B/16 and B/32 with their tokenizer files)
//   node scripts/fetch-weights.js NAME...            the named entries
// Options: --dir DIR (default weights/), --manifest FILE, --connect-timeout MS
// (default 8000), --idle-timeout MS (default 30000), --retries N (default 3),
// --no-verify (allow entries the manifest does not pin by size and sha256).
// HF_ENDPOINT (as huggingface_hub reads it) replaces https://huggingface.co in
// every URL, for mirrors. HTTPS_PROXY / HTTP_PROXY (or lower case; http://
// proxies, user:password@ for Basic auth) send every connection through that
// proxy as a CONNECT tunnel, except hosts listed in NO_PROXY.
//
// Names: every model's `dir` (or its key) and every file's `name` must be a
// plain name ([A-Za-z0-9._+-], no leading dot, no '..', no separator, not
// absolute, not ending in .part), and the resolved path must lie inside --dir;
// a manifest breaking this is refused whole (exit 1) before anything is
// fetched.
//
// Verification: an entry is pinned when the manifest gives both its size and
// its sha256. Fetching an unpinned entry is refused (exit 2) unless
// --no-verify is given; then only what the server states is checked: a
// Content-Length (or Content-Range total) that disagrees with the bytes
// received, or a body with neither a length nor chunked framing (a cut could
// not be told from the end), is refused. A text/html answer is refused for
// every file. https -> http (or any non-https) redirects are refused.
//
// Each file goes to NAME.part first. An interrupted download (a cut
// connection, Ctrl-C, a crash) resumes from the .part's size with an HTTP
// Range request, within this run (up to --retries more attempts) or the next
// run. A server that ignores Range restarts the file from byte 0. When done,
// the size and the sha256 are checked, the .part is flushed to disk and then
// renamed over the final name (atomic on one filesystem): a file already there
// (say with the wrong sha256) is never deleted, only replaced by a verified
// copy, so a failed download leaves it as it was. On a sha256 or size mismatch
// the .part is DELETED (its bytes cannot be resumed into a correct file) and
// the script exits 1. Without a network the first connection fails (DNS,
// refused, or no answer within --connect-timeout) and the script exits 1 with
// one line. Exit 2: a usage error (unknown option or model name, an unpinned
// entry without --no-verify).

import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep, win32 } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

const HUB = 'https://huggingface.co';
const MAX_REDIRECTS = 10;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

class FetchError extends Error {
  /** retryable: a network failure midway, worth resuming; not a 404, a refused first connection, or a bad hash. */
  constructor(message, retryable = false) {
    super(message);
    this.retryable = retryable;
    this.exitCode = 1;
  }
}

/** A wrong invocation (option, model name, unpinned entry without --no-verify): exit 2. */
class UsageError extends FetchError {
  constructor(message) {
    super(message);
    this.exitCode = 2;
  }
}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        list: { type: 'boolean', default: false },
        dir: { type: 'string' },
        manifest: { type: 'string' },
        'connect-timeout': { type: 'string', default: '8000' },
        'idle-timeout': { type: 'string', default: '30000' },
        retries: { type: 'string', default: '3' },
        'no-verify': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${e.message.split('\n')[0]} (see --help)`);
  }
  const { values: v, positionals } = parsed;
  const count = (name) => {
    const raw = v[name];
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  return {
    dir: v.dir !== undefined ? resolve(v.dir) : join(repoRoot, 'weights'),
    manifest: v.manifest !== undefined ? resolve(v.manifest) : join(repoRoot, 'weights', 'manifest.json'),
    connectTimeout: count('connect-timeout'),
    idleTimeout: count('idle-timeout'),
    retries: count('retries'),
    noVerify: v['no-verify'],
    list: v.list,
    help: v.help,
    names: [...new Set(positionals)],
  };
}

const PLAIN = /^[A-Za-z0-9._+-]+$/;

/** Why `value` is not a plain file or folder name (one path component, nothing that can leave its folder), or undefined. */
function notPlainName(value) {
  if (typeof value !== 'string' || value.length === 0) return 'must be a non-empty string';
  if (value.length > 200) return 'is longer than 200 characters';
  if (isAbsolute(value) || win32.isAbsolute(value)) return 'is an absolute path';
  if (/[/\\]/.test(value)) return "contains a path separator ('/' or '\\'); a plain name is expected";
  if (value === '.' || value === '..' || value.includes('..')) return "contains '..'";
  if (value.startsWith('.')) return 'starts with a dot';
  if (!PLAIN.test(value)) return 'has characters outside A-Z a-z 0-9 . _ + -';
  if (value.endsWith('.part')) return 'ends with .part (the suffix of partial downloads)';
  return undefined;
}

/** resolve(base, ...parts), refused unless it lies strictly inside base. */
function inside(base, parts, what) {
  const path = resolve(base, ...parts);
  const rel = relative(base, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) throw new FetchError(`${what} resolves to ${path}, outside ${base}`);
  return path;
}

/**
 * Reads and checks the manifest; returns a Map name → { name, entry, dir, files }
 * where dir and every file's `target` are absolute paths inside `baseDir`.
 * Any bad entry refuses the whole manifest (nothing is fetched).
 */
function loadManifest(path, baseDir) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FetchError(`cannot read the manifest ${path}: ${e.message}`);
  }
  const isObject = (x) => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(manifest) || !isObject(manifest.models)) throw new FetchError(`${path}: expected an object "models"`);
  const models = new Map();
  for (const [name, m] of Object.entries(manifest.models)) {
    const label = `${path}: model ${JSON.stringify(name)}`;
    if (!isObject(m)) throw new FetchError(`${label} is not an object`);
    if (!Array.isArray(m.files) || m.files.length === 0) throw new FetchError(`${label} has no files`);
    const dirName = m.dir ?? name;
    const badDir = notPlainName(dirName);
    if (badDir) throw new FetchError(`${label}: its ${m.dir !== undefined ? '"dir"' : 'name (used as its folder)'} ${JSON.stringify(dirName)} ${badDir}`);
    const dir = inside(baseDir, [dirName], `${label}: folder ${JSON.stringify(dirName)}`);
    const seen = new Set();
    const files = m.files.map((f) => {
      if (!isObject(f) || typeof f.name !== 'string' || typeof f.url !== 'string') throw new FetchError(`${label}: every file needs "name" and "url"`);
      const what = `${label}: file ${JSON.stringify(f.name)}`;
      const badName = notPlainName(f.name);
      if (badName) throw new FetchError(`${what}: the name ${badName}`);
      if (seen.has(f.name)) throw new FetchError(`${what} is listed twice`);
      seen.add(f.name);
      let url;
      try {
        url = new URL(f.url);
      } catch {
        throw new FetchError(`${what}: "url" ${JSON.stringify(f.url)} is not a URL`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FetchError(`${what}: "url" must be https:// or http://, got ${url.protocol}`);
      if (f.sha256 != null && (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256))) throw new FetchError(`${what}: sha256 must be 64 lower-case hex digits or null`);
      if (f.size != null && !(Number.isSafeInteger(f.size) && f.size >= 0)) throw new FetchError(`${what}: size must be a non-negative integer or null`);
      if (f.approxSize != null && !(typeof f.approxSize === 'number' && f.approxSize >= 0)) throw new FetchError(`${what}: approxSize must be a non-negative number or null`);
      const target = inside(dir, [f.name], what);
      return { name: f.name, url: f.url, sha256: f.sha256 ?? null, size: f.size ?? null, approxSize: f.approxSize ?? null, target, pinned: f.sha256 != null && f.size != null };
    });
    models.set(name, { name, entry: m, dirName, dir, files });
  }
  return models;
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const clock = (s) => (Number.isFinite(s) ? `${Math.floor(s / 3600) > 0 ? `${Math.floor(s / 3600)}:` : ''}${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}` : '--:--');

function printList(models) {
  for (const { name, entry: m, dirName, files } of models.values()) {
    console.log(`${name}${m.default ? ' (default)' : ''} → ${dirName}/  ${m.description ?? ''}`);
    if (m.note) console.log(`    note: ${m.note}`);
    for (const f of files) {
      const size = f.size != null ? `${f.size} bytes` : f.approxSize != null ? `~${mb(f.approxSize)} (unverified)` : 'size unknown';
      console.log(`    ${f.name.padEnd(28)} ${size.padEnd(26)} sha256 ${f.sha256 ?? 'null (not verified)'}${f.pinned ? '' : '  [not pinned: needs --no-verify]'}`);
      console.log(`      ${f.url}`);
    }
  }
}

/** Progress on stderr: a redrawn bar on a terminal, a line per 10% otherwise. */
class Progress {
  constructor(label, start, total) {
    Object.assign(this, { label, total, done: start, lastDraw: 0, lastDecile: -1, tty: process.stderr.isTTY });
    this.samples = [[Date.now(), start]];
  }

  add(bytes) {
    this.done += bytes;
    const now = Date.now();
    if (now - this.lastDraw < 200) return;
    this.lastDraw = now;
    this.samples.push([now, this.done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    this.draw(false);
  }

  draw(final) {
    const [t0, b0] = this.samples[0];
    const rate = (this.done - b0) / Math.max((Date.now() - t0) / 1000, 1e-3);
    const frac = this.total ? this.done / this.total : 0;
    const eta = this.total && rate > 0 ? (this.total - this.done) / rate : NaN;
    const width = 24;
    const bar = this.total ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ${(frac * 100).toFixed(1).padStart(5)}% ` : '';
    const line = `${this.label} ${bar}${mb(this.done)}${this.total ? `/${mb(this.total)}` : ''} ${mb(rate)}/s ETA ${clock(eta)}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
    else {
      const decile = Math.floor(frac * 10);
      if (final || decile > this.lastDecile) process.stderr.write(`${line}\n`);
      this.lastDecile = decile;
    }
  }
}

/** The proxy for a URL from the environment (curl's rules: scheme-specific variable, NO_PROXY suffixes, '*'), or undefined. */
function proxyFor(url, env = process.env) {
  const target = new URL(url);
  const scheme = target.protocol === 'https:' ? 'https' : 'http';
  const raw = env[`${scheme}_proxy`] || env[`${scheme.toUpperCase()}_PROXY`] || env.all_proxy || env.ALL_PROXY; // empty = unset, as curl reads them
  if (!raw) return undefined;
  const host = target.hostname.toLowerCase();
  for (const entry of (env.no_proxy || env.NO_PROXY || '').split(',')) {
    const rule = entry.trim().toLowerCase().replace(/:\d+$/, '');
    if (rule === '*' || (rule && (host === rule.replace(/^\./, '') || host.endsWith(rule.startsWith('.') ? rule : `.${rule}`)))) return undefined;
  }
  let proxy;
  try {
    proxy = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new FetchError(`the proxy setting ${JSON.stringify(raw)} is not a URL`);
  }
  if (proxy.protocol !== 'http:') throw new FetchError(`proxy ${proxy.origin}: only http:// proxies are supported, got ${proxy.protocol}`);
  return proxy;
}

/**
 * An agent whose connections are CONNECT tunnels through `proxy` (TLS on top
 * for https targets), so redirects, Range and timeouts work as without a proxy.
 */
function tunnelAgent(proxy, secure) {
  const Base = secure ? https.Agent : http.Agent;
  const agent = new Base({ keepAlive: false });
  agent.createConnection = (options, callback) => {
    const authority = `${options.host}:${options.port}`;
    const auth = proxy.username ? { 'proxy-authorization': `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}` } : {};
    const req = http.request({ host: proxy.hostname, port: proxy.port || 80, method: 'CONNECT', path: authority, headers: { host: authority, ...auth } });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        callback(Object.assign(new Error(`proxy ${proxy.host} refused CONNECT ${authority}: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim()), { code: 'EPROXY' }));
        return;
      }
      callback(null, secure ? tls.connect({ socket, servername: options.servername ?? options.host }) : socket);
    });
    req.once('error', (e) => callback(Object.assign(new Error(`proxy ${proxy.host}: ${e.message}`), { code: e.code })));
    req.end();
  };
  return agent;
}

/**
 * Why a redirect from `from` to `to` (both URLs) is not followed, or undefined:
 * only http(s) targets, and never from https to anything but https (a
 * downgrade would hand the rest of the download to whoever sits on the path).
 */
function redirectRefusal(from, to) {
  if (to.protocol !== 'https:' && to.protocol !== 'http:') return `${from.href} redirected to ${to.href}: refused (only https:// and http:// are followed)`;
  if (from.protocol === 'https:' && to.protocol !== 'https:') return `${from.href} redirected to ${to.href}: refused (an https download is never continued over ${to.protocol}//)`;
  return undefined;
}

/** Follows redirects; resolves with the final response (status 200/206/416), rejects with FetchError. */
function request(url, headers, opts, redirects = 0) {
  return new Promise((resolvePromise, reject) => {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      reject(new FetchError(`invalid URL ${url}`));
      return;
    }
    const lib = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : null;
    if (!lib) {
      reject(new FetchError(`unsupported URL scheme ${parsed.protocol} in ${url}`));
      return;
    }
    let connected = false;
    let proxy;
    try {
      proxy = proxyFor(url);
    } catch (e) {
      reject(e);
      return;
    }
    const agent = proxy && tunnelAgent(proxy, parsed.protocol === 'https:');
    const req = lib.get(parsed, { headers: { 'user-agent': 'medfocus-fetch-weights', ...headers }, ...(agent && { agent }) });
    const connectTimer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${opts.connectTimeout} ms`), { code: 'ETIMEDOUT' })), opts.connectTimeout);
    req.on('socket', (socket) => {
      const onConnect = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      if (!socket.connecting) onConnect();
      else socket.once(parsed.protocol === 'https:' ? 'secureConnect' : 'connect', onConnect);
    });
    req.setTimeout(opts.idleTimeout, () => req.destroy(Object.assign(new Error(`no data for ${opts.idleTimeout} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => {
      clearTimeout(connectTimer);
      const detail = e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
      if (connected) reject(new FetchError(`connection to ${parsed.host} failed (${detail})`, true));
      else reject(new FetchError(`cannot reach ${parsed.host} (${detail}); no network? Set HF_ENDPOINT for a mirror, or copy the files into ${opts.dir} by hand`));
    });
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        let next;
        try {
          next = new URL(res.headers.location, parsed);
        } catch {
          reject(new FetchError(`${url} redirected to an invalid Location ${JSON.stringify(res.headers.location)}`));
          return;
        }
        const refused = redirectRefusal(parsed, next);
        if (refused) reject(new FetchError(refused));
        else if (redirects >= MAX_REDIRECTS) reject(new FetchError(`too many redirects from ${url}`));
        else request(next.href, headers, opts, redirects + 1).then(resolvePromise, reject);
        return;
      }
      if (status !== 200 && status !== 206 && status !== 416) {
        res.resume();
        const hint = status === 401 || status === 403 ? ' (the repository may be gated: log in on the hub and download it by hand)' : '';
        reject(new FetchError(`HTTP ${status} ${res.statusMessage ?? ''} for ${url}${hint}`.replace(/\s+for/, ' for')));
        return;
      }
      resolvePromise(res);
    });
  });
}

/** sha256 of the first `bytes` of a file (the .part being resumed). */
function hashPrefix(path, bytes) {
  const hash = createHash('sha256');
  if (bytes === 0) return Promise.resolve(hash);
  return new Promise((res, rej) => {
    createReadStream(path, { start: 0, end: bytes - 1 })
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => res(hash))
      .on('error', rej);
  });
}

/** One attempt: continues `part` from its current size; resolves when the response ended complete. */
async function attempt(url, part, expectedSize, label, opts) {
  let offset = existsSync(part) ? statSync(part).size : 0;
  if (expectedSize != null && offset > expectedSize) {
    rmSync(part);
    offset = 0;
  }
  const res = await request(url, offset > 0 ? { range: `bytes=${offset}-` } : {}, opts);
  if (res.statusCode === 416) {
    // Nothing after offset: the .part already holds the whole file (checked by the caller), or it is longer than the file.
    res.resume();
    const total = Number(/\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1]);
    if (Number.isFinite(total) && total === offset) return { hash: await hashPrefix(part, offset), size: offset };
    rmSync(part, { force: true });
    throw new FetchError(`the server refused the range bytes=${offset}- of ${url}; the partial file was removed, run again`, true);
  }
  const type = String(res.headers['content-type'] ?? '').toLowerCase();
  if (/^\s*(text\/html|application\/xhtml\+xml)\b/.test(type)) {
    res.resume();
    throw new FetchError(`${url} answered with a web page (Content-Type ${type}), not the file: refused (a login, error or consent page?)`);
  }
  const declared = /^\d+$/.test(res.headers['content-length'] ?? '') ? Number(res.headers['content-length']) : undefined;
  let total;
  if (res.statusCode === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    const [start, end] = m ? [Number(m[1]), Number(m[2])] : [];
    total = m && m[3] !== '*' ? Number(m[3]) : declared !== undefined ? offset + declared : undefined;
    if (!m || start !== offset || end < start || (total !== undefined && end !== total - 1) || (declared !== undefined && declared !== end - start + 1)) {
      res.resume();
      throw new FetchError(`bad Content-Range "${res.headers['content-range']}" (Content-Length ${res.headers['content-length']}) for bytes=${offset}- of ${url}`);
    }
  } else {
    // 200: the whole file (the server ignored Range, or none was asked): start over.
    offset = 0;
    total = declared;
  }
  if (expectedSize != null && total !== undefined && total !== expectedSize) {
    res.resume();
    throw new FetchError(`${url} has ${total} bytes, the manifest expects ${expectedSize}`);
  }
  // Without a length or chunked framing the body ends when the connection closes, so a cut looks like the end:
  // only a pinned size can tell them apart.
  if (expectedSize == null && total === undefined && !/\bchunked\b/i.test(res.headers['transfer-encoding'] ?? '')) {
    res.resume();
    throw new FetchError(`${url} sent neither a Content-Length nor chunked framing, and the manifest pins no size: a cut download could not be told from a complete one, refused`);
  }
  const hash = await hashPrefix(part, offset);
  const out = createWriteStream(part, offset > 0 ? { flags: 'r+', start: offset } : { flags: 'w' });
  const progress = new Progress(label, offset, total ?? expectedSize);
  let size = offset;
  await new Promise((res2, rej) => {
    let failed = false;
    const fail = (e) => {
      if (failed) return;
      failed = true;
      // end(), not destroy(): the bytes received must reach the .part before a retry reads its size to resume.
      out.end(() => rej(e instanceof FetchError ? e : new FetchError(`download of ${url} interrupted at ${size} bytes (${e.code ?? e.message})`, true)));
    };
    res.on('data', (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      progress.add(chunk.length);
      if (!out.write(chunk)) {
        res.pause();
        out.once('drain', () => res.resume());
      }
    });
    res.on('error', fail);
    res.on('aborted', () => fail(new Error('connection closed')));
    res.on('end', () => {
      if (!res.complete) return fail(new Error('connection closed'));
      out.end(() => res2());
    });
    out.on('error', (e) => rej(new FetchError(`cannot write ${part}: ${e.message}`)));
  });
  progress.draw(true);
  if (total !== undefined && size !== total) throw new FetchError(`download of ${url} ended at ${size} of ${total} bytes`, true);
  return { hash, size };
}

/** The URL to fetch: HF_ENDPOINT (a mirror) in place of https://huggingface.co at the start of the manifest's URL. */
function sourceUrl(url) {
  const endpoint = process.env.HF_ENDPOINT;
  if (!endpoint) return url;
  let mirror;
  try {
    mirror = new URL(endpoint);
  } catch {
    throw new UsageError(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not a URL`);
  }
  if (mirror.protocol !== 'https:' && mirror.protocol !== 'http:') throw new UsageError(`HF_ENDPOINT must be https:// or http://, got ${JSON.stringify(endpoint)}`);
  return url.startsWith(`${HUB}/`) ? `${endpoint.replace(/\/+$/, '')}${url.slice(HUB.length)}` : url;
}

/** Flushes a file's bytes to disk (so the rename that follows never exposes a file whose data is still in flight). */
function flushToDisk(path) {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Fetches one manifest file to file.target via file.target.part. An existing
 * target is checked against what the manifest states; when it fails, it stays
 * in place until a verified download is renamed over it.
 */
async function fetchFile(file, opts) {
  const { target, name: label } = file;
  const dir = dirname(target);
  const part = `${target}.part`;
  const url = sourceUrl(file.url);
  if (existsSync(target)) {
    const st = statSync(target);
    if (!st.isFile()) throw new FetchError(`${target} exists and is not a file; move it away first`);
    let problem;
    if (file.size != null && st.size !== file.size) problem = `its size ${st.size} is not the manifest's ${file.size}`;
    else if (file.sha256 != null) {
      const digest = (await hashPrefix(target, st.size)).digest('hex');
      if (digest !== file.sha256) problem = `its sha256 ${digest} is not the manifest's ${file.sha256}`;
    }
    if (!problem) {
      if (file.sha256 != null) console.log(`${target}: present, sha256 OK`);
      else if (file.size != null) console.log(`${target}: present, size OK (the manifest pins no sha256)`);
      else console.log(`${target}: present (not verified: the manifest pins no size or sha256)`);
      return;
    }
    console.log(`${target}: present but ${problem}; downloading a replacement (the present file stays until a verified copy replaces it)`);
  }
  mkdirSync(dir, { recursive: true });
  let result;
  for (let tries = 0; ; tries++) {
    try {
      result = await attempt(url, part, file.size, label, opts);
      break;
    } catch (e) {
      if (!(e instanceof FetchError) || !e.retryable || tries >= opts.retries) throw e;
      const kept = existsSync(part) ? statSync(part).size : 0;
      process.stderr.write(`\n${e.message}; resuming from byte ${kept} (retry ${tries + 1} of ${opts.retries})\n`);
    }
  }
  const digest = result.hash.digest('hex');
  if (file.size != null && result.size !== file.size) {
    rmSync(part, { force: true });
    throw new FetchError(`${target}: got ${result.size} bytes, the manifest expects ${file.size}; removed the partial file`);
  }
  if (file.sha256 != null && digest !== file.sha256) {
    rmSync(part, { force: true });
    throw new FetchError(`${target}: sha256 mismatch: got ${digest}, the manifest expects ${file.sha256}; removed the download`);
  }
  flushToDisk(part);
  renameSync(part, target);
  const verdict = file.pinned ? ' OK' : file.sha256 != null ? ' OK (size not pinned)' : ' (unverified: the manifest pins no sha256; record size and sha256 there once checked against the source)';
  console.log(`${target}: ${result.size} bytes, sha256 ${digest}${verdict}`);
}

const USAGE = readFileSync(fileURLToPath(import.meta.url), 'utf8')
  .split('\n')
  .slice(1)
  .filter((_, i, lines) => lines.slice(0, i + 1).every((l) => l.startsWith('//')))
  .map((l) => l.replace(/^\/\/ ?/, ''))
  .join('\n');

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.help) {
    console.log(USAGE);
    return;
  }
  const models = loadManifest(opts.manifest, opts.dir);
  if (opts.list) {
    printList(models);
    return;
  }
  const names = opts.names.length > 0 ? opts.names : [...models.values()].filter((m) => m.entry.default === true).map((m) => m.name);
  const unknown = names.filter((n) => !models.has(n));
  if (unknown.length > 0) {
    throw new UsageError(`unknown model ${unknown.map((n) => JSON.stringify(n)).join(', ')} (known: ${[...models.keys()].map((n) => JSON.stringify(n)).join(', ')})`);
  }
  const selected = names.map((n) => models.get(n));
  const unpinned = selected.flatMap((m) => m.files.filter((f) => !f.pinned).map((f) => `${m.name}/${f.name}`));
  if (unpinned.length > 0 && !opts.noVerify) {
    throw new UsageError(
      `${unpinned.length} file(s) have no size and sha256 pinned in ${opts.manifest} (${unpinned.join(', ')}): refused. Pass --no-verify to download them anyway, checked only against the server's Content-Length and Content-Type`,
    );
  }
  for (const m of selected) {
    if (m.entry.note) console.log(`${m.name}: ${m.entry.note}`);
    for (const file of m.files) await fetchFile(file, opts);
  }
}

main().catch((e) => {
  if (process.stderr.isTTY) process.stderr.write('\n');
  const line = e instanceof FetchError ? e.message.replace(/\s*\n\s*/g, ' ') : (e.stack ?? String(e));
  console.error(`fetch-weights: ${line}`);
  process.exit(e instanceof FetchError ? e.exitCode : 1);
});
