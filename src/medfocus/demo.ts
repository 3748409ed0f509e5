// The built-in demo (medfocus with no command): a phantom data set, the
// protocol at 5 % and 100 % with focus none and attention, and an explanation
// picture per class, all in one folder.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathExists } from '../io/node-files.js';
import { formatDuration } from '../util/progress.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { loadImageFolder } from './dataset.js';
import { generatePhantomDataset } from './phantom.js';
import { protocol } from './protocol.js';
import { explainImage } from './runs.js';
import type { Session } from './session.js';
import { trainSettings } from './settings.js';

/**
 * The demo's size: every image costs one MobileSAM encoder pass plus the
 * automatic masks (about 4 s at input 512 on a quiet 2-core CPU adapter).
 */
const DEMO_TRAIN_PER_CLASS = 8;
const DEMO_TEST_PER_CLASS = 4;

/** The built-in demo: phantoms → MobileSAM → sam-encoder at 5% and 100%, focus none vs attention; table and explanation PNGs. */
export async function demo(s: Session, workDir: string): Promise<void> {
  const t0 = performance.now();
  const data = join(workDir, 'data');
  if (!(await pathExists(join(data, 'manifest.json')))) {
    s.log(`demo: generating the phantom dataset in ${data}`);
    await generatePhantomDataset(data, { seed: 7, size: 128, perClassTrain: DEMO_TRAIN_PER_CLASS, perClassTest: DEMO_TEST_PER_CLASS });
  } else s.log(`demo: reusing the phantom dataset in ${data}`);
  const settings = trainSettings(new Map(), s.log);
  const { markdown } = await protocol(s, { data, out: workDir, fractions: [0.05, 1], seeds: [0], modes: ['none', 'attention'], settings, name: 'phantom demo' });
  const test = await loadImageFolder(data, 'test');
  const explainDir = join(workDir, 'explain');
  await mkdir(explainDir, { recursive: true });
  for (const label of test.classes.keys()) {
    const item = test.items.find((it) => it.label === label)!;
    const { png, class: predicted, masks, salient } = await explainImage(s, join(workDir, 'runs', 'attention-f1-s0'), item.path);
    const out = join(explainDir, `${test.classes[label]}.png`);
    await writeFileAtomic(out, png);
    s.log(`explain: ${item.path} → ${out} (predicted ${predicted}; ${masks} automatic masks, salient region ${(100 * salient).toFixed(1)}% of the image)`);
  }
  s.log(`\n${markdown}`);
  s.log(`demo finished in ${formatDuration((performance.now() - t0) / 1000)}; results in ${workDir} (protocol.md and .png, runs/*/eval.json, explain/*.png)`);
}
