// The few-shot subsets against the reference Python itself: python3 runs the
// subsample snippet of ../shared/datasets/README.md on each data set's
// manifest, and stratifiedSample must pick the very same images (every
// fraction, seeds 0–4). Underneath, PythonRandom against CPython's own
// random.Random(str) draws and shuffles, and our SHA-512 against node:crypto.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { relative } from 'node:path';
import * as assert from 'uvu/assert';
import { loadImageFolder, stratifiedSample } from '../src/medfocus/dataset.js';
import { PythonRandom, sha512 } from '../src/util/python-random.js';
import { NO_SHARED, rng, sharedPath, skip, suite } from './util.js';

const test = suite('subsample');
const datasets = sharedPath('datasets');

function python(source: string, ...args: string[]): string {
  return execFileSync('python3', ['-c', source, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

test('sha512 matches node:crypto on 0 to 300 bytes', () => {
  const random = rng(3);
  for (let n = 0; n <= 300; n += n < 20 ? 1 : 37) {
    const bytes = Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
    assert.is(Buffer.from(sha512(bytes)).toString('hex'), createHash('sha512').update(bytes).digest('hex'), `${n} bytes`);
  }
});

test('PythonRandom draws and shuffles what CPython random.Random(str) does', () => {
  const seeds = ['0:Covid', '4:Viral_Pneumonia', '3241:benign', '', 'é ü 🙂 long seed '.repeat(20)];
  const reference = JSON.parse(
    python(
      `import json, random, sys
seeds = json.loads(sys.argv[1])
out = []
for s in seeds:
    r = random.Random(s)
    bits = [r.getrandbits(32) for _ in range(700)] + [r.getrandbits(5) for _ in range(10)]
    r = random.Random(s)
    below = [r._randbelow(n) for n in (1, 2, 3, 7, 1000, 2**31 + 5)]
    r = random.Random(s)
    x = list(range(300)); r.shuffle(x)
    out.append({'bits': bits, 'below': below, 'shuffled': x})
print(json.dumps(out))`,
      JSON.stringify(seeds),
    ),
  );
  seeds.forEach((seed, i) => {
    let r = new PythonRandom(seed);
    const bits = [...Array.from({ length: 700 }, () => r.getrandbits(32)), ...Array.from({ length: 10 }, () => r.getrandbits(5))];
    assert.equal(bits, reference[i].bits, `getrandbits for seed ${JSON.stringify(seed)}`);
    r = new PythonRandom(seed);
    assert.equal([1, 2, 3, 7, 1000, 2 ** 31 + 5].map((n) => r.randbelow(n)), reference[i].below, `_randbelow for seed ${JSON.stringify(seed)}`);
    const x = Array.from({ length: 300 }, (_, k) => k);
    new PythonRandom(seed).shuffle(x);
    assert.equal(x, reference[i].shuffled, `shuffle for seed ${JSON.stringify(seed)}`);
  });
});

/** The snippet of ../shared/datasets/README.md ("so that everyone draws the same images"), for many fractions and seeds at once. */
const README_SUBSAMPLE = `import json, random, sys
def subsample(manifest_path, frac, seed):
    man = json.load(open(manifest_path))
    out = []
    for c in sorted({e['class'] for e in man}):
        paths = sorted(e['path'] for e in man if e['split'] == 'train' and e['class'] == c)
        random.Random(f'{seed}:{c}').shuffle(paths)
        out += paths[:max(1, int(frac * len(paths) + 0.5))]
    return sorted(out)
print(json.dumps({f'{f}/{s}': subsample(sys.argv[1], f, s) for f in (0.05, 0.1, 0.2, 0.5, 1.0) for s in range(5)}))`;

for (const name of ['covid3', 'busi3', 'brain4', 'lung4']) {
  test(`stratifiedSample picks the README's images on ${name} (fractions 5–100 %, seeds 0–4)`, async () => {
    if (!datasets) return skip(NO_SHARED);
    const root = sharedPath('datasets', name)!;
    const reference: Record<string, string[]> = JSON.parse(python(README_SUBSAMPLE, `${root}/manifest.json`));
    const train = await loadImageFolder(root, 'train');
    for (const [key, paths] of Object.entries(reference)) {
      const [fraction, seed] = key.split('/').map(Number);
      const ours = stratifiedSample(train.items, fraction, seed, train.classes).map((it) => relative(root, it.path));
      assert.equal([...ours].sort(), paths, `${name}, fraction ${fraction}, seed ${seed}`);
    }
  });
}

test.run();
