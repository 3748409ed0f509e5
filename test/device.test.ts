import * as assert from 'uvu/assert';
import { getDevice, Tensor } from '../src/node.js';
import { assertThrows, suite } from './util.js';

const test = suite('device');

test('getDevice reports the adapter, its features and its largest limits', async () => {
  const gpu = await getDevice();
  try {
    assert.type(gpu.adapter.name, 'string');
    assert.ok(gpu.adapter.name.length > 0);
    assert.ok(/^[a-z0-9-]+$/.test(gpu.adapter.name), `file-safe adapter name: ${gpu.adapter.name}`);
    for (const f of gpu.features) assert.ok(['shader-f16', 'subgroups', 'timestamp-query'].includes(f), `unexpected feature ${f}`);
    // The default limit is 128 MiB; we must never get less than that.
    assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    assert.ok(gpu.limits.maxBufferSize >= gpu.limits.maxStorageBufferBindingSize);
  } finally {
    gpu.destroy();
  }
});

test('no adapter: the Error says how to get one', async () => {
  const fakeGpu = { requestAdapter: async () => null } as unknown as GPU;
  await assertThrows(() => getDevice({ gpu: fakeGpu }), /getDevice/, /No WebGPU adapter/, /bookworm-backports/, /mesa-vulkan-drivers/);
});

test('a destroyed device rejects pending and new work instead of hanging', async () => {
  const gpu = await getDevice();
  const t = Tensor.fromArray(gpu, [1, 2, 3], [3]);
  const pending = t.read();
  gpu.destroy();
  // Either the read completed before destruction or it must reject; it must not hang.
  const outcome = await Promise.race([
    pending.then(() => 'resolved', (e: Error) => e.message),
    new Promise((r) => setTimeout(() => r('hung'), 5000)),
  ]);
  assert.not.equal(outcome, 'hung');
  await assertThrows(() => t.read(), /destroyed/);
  await assertThrows(() => Tensor.fromArray(gpu, [1], [1]), /destroyed/);
  await assertThrows(() => gpu.sync(), /destroyed/);
});

test('device loss behind our back: pending work rejects with the loss message', async () => {
  const gpu = await getDevice();
  const t = Tensor.fromArray(gpu, new Float32Array(1 << 16), [1 << 16]);
  const pending = t.read();
  gpu.device.destroy(); // as if the browser or driver dropped the device
  const outcome = await Promise.race([
    pending.then(() => 'resolved', (e: Error) => e.message),
    new Promise((r) => setTimeout(() => r('hung'), 5000)),
  ]);
  assert.not.equal(outcome, 'hung');
  await assertThrows(() => gpu.sync(), /lost|destroyed/);
  gpu.destroy();
});

test('asynchronous validation errors surface at the next sync()', async () => {
  const gpu = await getDevice();
  try {
    // MAP_READ may only be combined with COPY_DST: an invalid buffer.
    gpu.device.createBuffer({ size: 16, usage: 0x01 | 0x80 });
    await assertThrows(() => gpu.sync(), /WebGPU error/);
    await gpu.sync(); // reported once, then cleared
  } finally {
    gpu.destroy();
  }
});

test.run();
