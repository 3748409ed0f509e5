// The command line under bad arguments (issue 16): each case exits 2 with a
// line naming the problem and the usage, before any GPU work (main() would
// print the adapter otherwise), and the option table is the one source of the
// parser, the usage line and --help.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { encodePng } from '../src/io/image.js';
import { main, OPTIONS, USAGE } from '../src/medfocus/cli.js';
import { SAM_SIZE_MIN } from '../src/medfocus/settings.js';
import { suite } from './util.js';

const test = suite('cli-args');
let root = '';
let data = '';
let oneClass = '';

test.before(() => {
  root = mkdtempSync(join(tmpdir(), 'medfocus-cli-args-'));
  const png = encodePng(new Uint8Array(8 * 8 * 4).fill(255), 8, 8);
  data = join(root, 'two');
  oneClass = join(root, 'one');
  for (const [dir, classes] of [[data, ['a', 'b']], [oneClass, ['only']]] as const) {
    for (const split of ['train', 'test']) {
      for (const c of classes) {
        mkdirSync(join(dir, split, c), { recursive: true });
        writeFileSync(join(dir, split, c, '1.png'), png);
      }
    }
  }
});
test.after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

async function usage(argv: string[], message: RegExp): Promise<void> {
  const err: string[] = [];
  const out: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  const text = err.join('\n');
  assert.is(code, 2, `${argv.join(' ')}: exit code (stderr: ${text})`);
  assert.match(text, message, `${argv.join(' ')}: message`);
  assert.match(text, /^usage: medfocus/m, `${argv.join(' ')}: usage line`);
  assert.not.match(text, /adapter|lavapipe|SwiftShader/i, `${argv.join(' ')}: no GPU work before the refusal`);
}

test('one class, --sam-size below the working range, a huge or exponent seed, an empty --out, a repeated flag, a folder as IMAGE', async () => {
  await usage(['train', '--data', oneClass, '--out', join(root, 'r')], /train: .*one\/train has 1 class folder \(only\); a classifier needs at least 2/);
  await usage(['protocol', '--data', oneClass], /protocol: .* a classifier needs at least 2/);
  await usage(['train', '--data', data, '--out', join(root, 'r'), '--sam-size', '240'], new RegExp(`--sam-size must be a multiple of 16 from ${SAM_SIZE_MIN} to 1024 .*got '240'`));
  await usage(['train', '--data', data, '--out', join(root, 'r'), '--seed', '1e21'], /--seed must be an integer from 0 to 999999999999999 in decimal digits, got '1e21'/);
  await usage(['protocol', '--data', data, '--seeds', '0,1e21'], /--seeds: '1e21' is not an integer >= 0 in decimal digits/);
  await usage(['train', '--data', data, '--out', ''], /train: --out is empty; expected PATH/);
  await usage(['train', '--data', data, '--out', 'a', '--out', 'b'], /train: --out is given 2 times \('a', 'b'\); give it once/);
  await usage(['predict', '--run', join(root, 'r'), root], /predict: .* is a folder; give image files/);
  await usage(['predict', '--run', join(root, 'r'), join(root, 'missing.png')], /predict: .*missing\.png does not exist/);
  await usage(['train', '--data', data, '--out', 'x', '--colour', 'red'], /train: unknown option --colour/);
  await usage(['train', '--data'], /train: --data needs a value/);
  await usage(['eval', '--run', 'x', '--data', data, '--epochs', '3'], /eval: unknown option --epochs/);
  // A negative number after an option is its value (parseArgs alone reads '-1' as an option), so the value's own check answers.
  await usage(['train', '--data', data, '--out', 'x', '--lr', '-1'], /--lr must be a number > 0, got '-1'/);
});

test('the option table drives the usage line and --help: every option appears, each under its commands', async () => {
  const out: string[] = [];
  assert.is(await main(['--help'], { out: (l) => out.push(l), err: () => {} }), 0);
  const help = out.join('\n');
  for (const [name, spec] of Object.entries(OPTIONS)) {
    assert.match(help, new RegExp(`--${name} `), `--help lists --${name}`);
    for (const command of spec.commands) {
      const line = USAGE.split('\n').find((l) => l.includes(`medfocus ${command} `))!;
      assert.ok(line.includes(`--${name} `), `the usage line of ${command} lists --${name}`);
    }
  }
});

test.run();
