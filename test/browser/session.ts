// A browser session for the tests: scripts/serve.js on a free port plus
// Debian's headless Chromium (never a downloaded one) with WebGPU enabled,
// which gives the SwiftShader adapter. `browserSkipReason()` says why the
// tests cannot run here (no chromium), as a one-line skip. `startServer`
// alone serves without a browser (test/web-head.test.ts loads a head over HTTP).
// `freshBundle` rebuilds the browser bundle the page loads when src/ is newer.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Debian's package path; MEDFOCUS_CHROMIUM overrides it. */
export const chromiumPath = process.env.MEDFOCUS_CHROMIUM ?? '/usr/bin/chromium';

/** The browser bundle the pages load. */
export const bundlePath = join(repoRoot, 'dist', 'medfocus.browser.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The page must run the current sources: rebundles (scripts/bundle.js) when dist/ is missing or older than src/. */
export function freshBundle(): void {
  if (existsSync(bundlePath) && statSync(bundlePath).mtimeMs >= newestMtime(join(repoRoot, 'src'))) return;
  const bundled = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'bundle.js')], { cwd: repoRoot, encoding: 'utf8' });
  if (bundled.status !== 0) throw new Error(`scripts/bundle.js failed: ${bundled.stderr}`);
}

export function browserSkipReason(): string | undefined {
  if (!existsSync(chromiumPath)) return `${chromiumPath} is absent (apt-get install chromium; .ci/run does)`;
  return undefined;
}

export interface BrowserSession {
  /** e.g. http://127.0.0.1:41234 (no trailing slash). */
  base: string;
  browser: Browser;
  close(): Promise<void>;
}

export interface StaticServer {
  /** e.g. http://127.0.0.1:41234 (no trailing slash). */
  base: string;
  /** What it printed on stdout so far (the mounts, the run's head). */
  output(): string;
  stop(): void;
}

/** Starts scripts/serve.js on a free port (extra args such as --run DIR); resolves once it listens. */
export async function startServer(serveArgs: string[] = []): Promise<StaticServer> {
  const server = spawn(process.execPath, [join(repoRoot, 'scripts', 'serve.js'), '--port', '0', ...serveArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  try {
    const base = await serverUrl(server);
    return { base, output: () => out, stop: () => void server.kill('SIGTERM') };
  } catch (e) {
    server.kill();
    throw e;
  }
}

/** Starts scripts/serve.js (extra args such as --run DIR) and Chromium. */
export async function openSession(serveArgs: string[] = []): Promise<BrowserSession> {
  const server = await startServer(serveArgs);
  const base = server.base;
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-gpu-sandbox'],
    });
  } catch (e) {
    server.stop();
    throw e;
  }
  return {
    base,
    browser,
    async close() {
      await browser.close();
      server.stop();
    },
  };
}

function serverUrl(server: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`scripts/serve.js did not report its port within 10 s: ${out}${err}`)), 10_000);
    server.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /serving (http:\/\/[^/\s]+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    server.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`scripts/serve.js exited with ${code}: ${err}`));
    });
  });
}
