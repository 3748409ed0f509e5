// The device layer in Node: device.ts with Dawn (npm `webgpu`) registered as
// its WebGPU provider, so `getDevice()` from here works in any Node process
// without the package barrel (node.ts imports this module for the same effect).

import { tmpdir } from 'node:os';
import { create, globals } from 'webgpu';
import { setGpuProvider, setGpuWaitStrategy } from './device.js';

// Dawn's Vulkan loader warns without it, and lavapipe wants a writable runtime dir.
process.env.XDG_RUNTIME_DIR ??= tmpdir();
Object.assign(globalThis, globals);
// One Dawn instance per process, kept alive here and by every Gpu made from it.
let instance: GPU | undefined;
setGpuProvider(() => (instance ??= create([]) as unknown as GPU));

// Waits sleep 2 ms between event-loop turns instead of spinning: Dawn's
// callbacks still run on every turn, and on a CPU adapter the core the spin
// took goes back to the GPU work (measured: a third of the process's CPU time
// during a MobileSAM encode went to the spin).
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
setGpuWaitStrategy(async <T>(promise: Promise<T>): Promise<T> => {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await Promise.resolve();
  while (!settled) {
    Atomics.wait(sleepCell, 0, 0, 2);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return promise;
});

export { getDevice, Gpu } from './device.js';
