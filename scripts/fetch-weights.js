#!/usr/bin/env node
// Downloads checkpoints listed in weights/manifest.json into weights/<dir>/.
//
//   node scripts/fetch-weights.js --list             print the manifest
//   node scripts/fetch-weights.js                    the default set (CLIP ViT-B/16 and B/32 with their tokenizer files)
//   node scripts/fetch-weights.js NAME...            the named entries
// Options: --dir DIR (default weights/), --manifest FILE, --connect-timeout MS
// (default 8000), --idle-timeout MS (default 30000), --retries N (default 3).
// HF_ENDPOINT (as huggingface_hub reads it) replaces https://huggingface.co in
// every URL, for mirrors. HTTPS_PROXY / HTTP_PROXY (or lower case; http://
// proxies, user:password@ for Basic auth) send every connection through that
// proxy as a CONNECT tunnel, except hosts listed in NO_PROXY.
//
// Each file goes to NAME.part first. An interrupted download (a cut
// connection, Ctrl-C, a crash) resumes from the .part's size with an HTTP
// Range request, within this run (up to --retries more attempts) or the next
// run. A server that ignores Range restarts the file from byte 0. When done,
// the size and the sha256 are checked (when the manifest states them), then
// the .part is renamed onto the final name (atomic on one filesystem). On a
// sha256 or size mismatch the .part is DELETED (its bytes cannot be resumed
// into a correct file) and the script exits 1. A file whose manifest sha256
// is null is accepted unverified and its computed sha256 is printed.
// Without a network the first connection fails (DNS, refused, or no answer
// within --connect-timeout) and the script exits 1 with one line.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  }
}

function parseArgs(argv) {
  const opts = { dir: join(repoRoot, 'weights'), manifest: join(repoRoot, 'weights', 'manifest.json'), connectTimeout: 8000, idleTimeout: 30000, retries: 3, list: false, names: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new FetchError(`${a} needs a value`);
      return argv[++i];
    };
    const count = (v, what) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new FetchError(`${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
      return n;
    };
    if (a === '--list') opts.list = true;
    else if (a === '--dir') opts.dir = resolve(value());
    else if (a === '--manifest') opts.manifest = resolve(value());
    else if (a === '--connect-timeout') opts.connectTimeout = count(value(), a);
    else if (a === '--idle-timeout') opts.idleTimeout = count(value(), a);
    else if (a === '--retries') opts.retries = count(value(), a);
    else if (a === '--help' || a === '-h') opts.help = true;
    else if (a.startsWith('-')) throw new FetchError(`unknown option ${a} (see --help)`);
    else opts.names.push(a);
  }
  return opts;
}

function loadManifest(path) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FetchError(`cannot read the manifest ${path}: ${e.message}`);
  }
  if (typeof manifest?.models !== 'object' || manifest.models === null) throw new FetchError(`${path}: expected an object "models"`);
  for (const [name, m] of Object.entries(manifest.models)) {
    if (!Array.isArray(m.files) || m.files.length === 0) throw new FetchError(`${path}: model "${name}" has no files`);
    for (const f of m.files) {
      if (typeof f.name !== 'string' || typeof f.url !== 'string') throw new FetchError(`${path}: model "${name}": every file needs "name" and "url"`);
      if (f.sha256 != null && !/^[0-9a-f]{64}$/.test(f.sha256)) throw new FetchError(`${path}: ${name}/${f.name}: sha256 must be 64 hex digits or null`);
    }
  }
  return manifest;
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const clock = (s) => (Number.isFinite(s) ? `${Math.floor(s / 3600) > 0 ? `${Math.floor(s / 3600)}:` : ''}${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}` : '--:--');

function printList(manifest) {
  for (const [name, m] of Object.entries(manifest.models)) {
    console.log(`${name}${m.default ? ' (default)' : ''} → ${m.dir ?? name}/  ${m.description ?? ''}`);
    if (m.note) console.log(`    note: ${m.note}`);
    for (const f of m.files) {
      const size = f.size != null ? `${f.size} bytes` : f.approxSize != null ? `~${mb(f.approxSize)} (unverified)` : 'size unknown';
      console.log(`    ${f.name.padEnd(28)} ${size.padEnd(26)} sha256 ${f.sha256 ?? 'null (not verified)'}`);
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
        if (redirects >= MAX_REDIRECTS) reject(new FetchError(`too many redirects from ${url}`));
        else request(new URL(res.headers.location, parsed).href, headers, opts, redirects + 1).then(resolvePromise, reject);
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
  let total;
  if (res.statusCode === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (!m || Number(m[1]) !== offset) {
      res.resume();
      throw new FetchError(`bad Content-Range "${res.headers['content-range']}" for bytes=${offset}- of ${url}`);
    }
    total = m[3] === '*' ? undefined : Number(m[3]);
  } else {
    // 200: the whole file (the server ignored Range, or none was asked): start over.
    offset = 0;
    const length = Number(res.headers['content-length']);
    total = Number.isFinite(length) ? length : undefined;
  }
  if (expectedSize != null && total !== undefined && total !== expectedSize) {
    res.resume();
    throw new FetchError(`${url} has ${total} bytes, the manifest expects ${expectedSize}`);
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

async function fetchFile(file, dir, opts) {
  const target = join(dir, file.name);
  const part = `${target}.part`;
  const url = process.env.HF_ENDPOINT ? file.url.replace(HUB, process.env.HF_ENDPOINT.replace(/\/+$/, '')) : file.url;
  const label = file.name;
  if (existsSync(target)) {
    if (file.sha256 == null) {
      console.log(`${target}: present (no sha256 in the manifest to verify)`);
      return;
    }
    const digest = (await hashPrefix(target, statSync(target).size)).digest('hex');
    if (digest === file.sha256) {
      console.log(`${target}: present, sha256 OK`);
      return;
    }
    console.log(`${target}: present but its sha256 ${digest} is not the manifest's ${file.sha256}; downloading again`);
    rmSync(target);
  }
  mkdirSync(dir, { recursive: true });
  let result;
  for (let tries = 0; ; tries++) {
    try {
      result = await attempt(url, part, file.size ?? null, label, opts);
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
  renameSync(part, target);
  console.log(`${target}: ${result.size} bytes, sha256 ${digest}${file.sha256 ? ' OK' : ' (unverified: the manifest has no sha256)'}`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 12).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    return;
  }
  const manifest = loadManifest(opts.manifest);
  if (opts.list) {
    printList(manifest);
    return;
  }
  const names = opts.names.length > 0 ? opts.names : Object.keys(manifest.models).filter((n) => manifest.models[n].default);
  const unknown = names.filter((n) => !(n in manifest.models));
  if (unknown.length > 0) throw new FetchError(`unknown model ${unknown.map((n) => `"${n}"`).join(', ')} (known: ${Object.keys(manifest.models).join(', ')})`);
  for (const name of names) {
    const m = manifest.models[name];
    if (m.note) console.log(`${name}: ${m.note}`);
    for (const file of m.files) await fetchFile(file, join(opts.dir, m.dir ?? name), opts);
  }
}

main().catch((e) => {
  if (process.stderr.isTTY) process.stderr.write('\n');
  console.error(`fetch-weights: ${e instanceof FetchError ? e.message : e.stack ?? e}`);
  process.exit(1);
});
