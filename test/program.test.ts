// src/kernels/program.ts: a pipeline's bind group layout holds only the
// bindings its entry point uses, read from the shader, so a shader's entry
// points may together declare more storage buffers than a browser allows per
// shader stage; every entry point of every shader stays within the 10 that
// Chromium's SwiftShader allows (test/web-train-page.test.ts trains there).

import * as assert from 'uvu/assert';
import { dispatchKernel, storageBuffersPerEntry } from '../src/kernels/program.js';
import { shaderSources } from '../src/kernels/shaders.gen.js';
import { assertThrows, gpuSuite } from './util.js';

const test = gpuSuite('program');

/**
 * maxStorageBuffersPerShaderStage of Chromium's SwiftShader adapter (the
 * browser tests' device), the smallest among the browsers this engine is
 * tested in; a kernel entry point over it cannot run in those pages.
 */
const BROWSER_STORAGE_BUFFERS = 10;

test('every compute entry point of every shader binds at most 10 storage buffers (read from the shader), so each runs in Chromium', () => {
  const over: string[] = [];
  for (const [shader, code] of Object.entries(shaderSources)) {
    const counts = storageBuffersPerEntry(shader);
    assert.is(counts.size, (code.match(/@compute\b/g) ?? []).length, `${shader}: every compute entry point was read`);
    for (const [entry, count] of counts) if (count > BROWSER_STORAGE_BUFFERS) over.push(`${shader}/${entry}: ${count}`);
  }
  assert.equal(over, [], `entry points over ${BROWSER_STORAGE_BUFFERS} storage buffers`);
});

test("attention_backward: the module declares 13 storage buffers, each entry point's layout holds only its own 10", () => {
  assert.is((shaderSources.attention_backward.match(/var<storage\b/g) ?? []).length, 13);
  assert.equal([...storageBuffersPerEntry('attention_backward')], [
    ['query_grads', 10],
    ['key_grads', 10],
  ]);
});

test('dispatch names a binding its entry point uses and was not given, refuses a name the shader lacks, and compile refuses an entry over the device limit', async ({ gpu }) => {
  const src = { shader: 'attention_backward', entry: 'key_grads' };
  // key_grads uses no `out`, `lse` or `dq`: leaving them out is not what fails; `q` (its first binding) is named.
  await assertThrows(() => dispatchKernel(gpu, 'probe', src, {}, [1, 1, 1]), /probe: shader attention_backward binding 'q' \(used by entry point 'key_grads'\) was not supplied/);
  await assertThrows(() => dispatchKernel(gpu, 'probe', src, { nope: {} }, [1, 1, 1]), /probe: shader attention_backward has no binding 'nope'/);
  const small = Object.create(gpu, { limits: { value: { ...gpu.limits, maxStorageBuffersPerShaderStage: 9 } } }) as typeof gpu;
  await assertThrows(() => dispatchKernel(small, 'probe', src, {}, [1, 1, 1]), /kernel attention_backward\/key_grads: binds 10 storage buffers, the device's maxStorageBuffersPerShaderStage is 9/);
});

test.run();
