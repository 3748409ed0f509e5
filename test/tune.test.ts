import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileTuningStore, setTuningStore, sweepVariants, tunedVariant } from '../src/node.js';
import { assertThrows, gpuSuite } from './util.js';

const test = gpuSuite('tune');

test('a sweep picks the fastest variant, remembers it per device and in the store', async ({ gpu }) => {
  const dir = mkdtempSync(join(tmpdir(), 'medfocus-tune-'));
  const path = join(dir, 'tuning.json');
  setTuningStore(fileTuningStore(path));
  try {
    // "slow" really is slower: it busy-waits on the host while recording.
    const result = await sweepVariants(gpu, 'test|sleep', ['slow', 'fast'], (v) => {
      const until = performance.now() + (v === 'slow' ? 30 : 0);
      while (performance.now() < until);
    });
    assert.is(result.best, 'fast');
    assert.ok(result.times.slow > result.times.fast);
    assert.is(tunedVariant(gpu, 'test|sleep'), 'fast');
    assert.is(JSON.parse(readFileSync(path, 'utf8'))[`${gpu.adapter.name}|test|sleep`], 'fast');
    // A fresh store over the same file sees the choice (another process would).
    assert.is(fileTuningStore(path).get(`${gpu.adapter.name}|test|sleep`), 'fast');
    // Variants that throw are skipped; all failing is an Error.
    const partial = await sweepVariants(gpu, 'test|throws', ['bad', 'good'], (v) => {
      if (v === 'bad') throw new Error('unsupported here');
    });
    assert.is(partial.best, 'good');
    await assertThrows(() => sweepVariants(gpu, 'test|none', ['a'], () => { throw new Error('no'); }), /every variant failed/);
    writeFileSync(path, '{ not json');
    await assertThrows(() => fileTuningStore(path), /fileTuningStore/, /tuning\.json/, /not a valid tuning file/);
  } finally {
    setTuningStore(undefined);
  }
});

test.run();
