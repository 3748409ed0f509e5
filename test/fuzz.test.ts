// Seeded, bounded fuzzing of every reader of user files (test/fuzz/targets.ts:
// PNG, JPEG, safetensors, ONNX, CLIP vocabularies, merges and texts,
// head.json, config.json, checkpoints, ImageFolder trees): 3,000 mutated
// inputs each, 200 trees (bit flips, interesting lengths, insertions,
// deletions, duplicated slices, truncation; JSON values replaced), each run in
// a child process that is killed when an input stalls for 2 s. Asserted: no
// hang, no crash, resident memory under 1 GiB, every refusal a plain Error
// naming the file, and nothing accepted that breaks the reader's invariants.
// `node scripts/fuzz.js --minutes N` runs the same for longer, for hunting.

import * as assert from 'uvu/assert';
import { formatReport, fuzz } from './fuzz/driver.js';
import { TARGETS } from './fuzz/targets.js';
import { suite } from './util.js';

const test = suite('fuzz');
/** Inputs per target: a few thousand (1–3 s each here), fewer where one input builds a folder tree. */
const INPUTS = 3000;

for (const [name, target] of Object.entries(TARGETS)) {
  const count = target.testInputs ?? INPUTS;
  test(`${name}: ${count} mutated inputs, none mishandled`, async () => {
    const report = await fuzz(name, { seed: 20261207, count });
    console.log(formatReport(report));
    assert.is(report.bad.length, 0, formatReport(report));
    assert.is(report.inputs, count);
    assert.is(report.accepted + report.refused, count);
    if (target.acceptsAll) assert.is(report.refused, 0, 'every input is valid here');
    else assert.ok(report.refused > 0, 'the mutations reach the refusals');
  });
}

test.run();
