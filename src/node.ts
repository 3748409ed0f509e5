// Node entry: registers Dawn (npm `webgpu`) as the WebGPU provider, then
// exposes the same library as the browser entry.

import { tmpdir } from 'node:os';
import { create, globals } from 'webgpu';
import { setGpuProvider } from './device.js';

// Dawn's Vulkan loader warns without it, and lavapipe wants a writable runtime dir.
process.env.XDG_RUNTIME_DIR ??= tmpdir();
Object.assign(globalThis, globals);
// One Dawn instance per process, kept alive here and by every Gpu made from it.
let instance: GPU | undefined;
setGpuProvider(() => (instance ??= create([]) as unknown as GPU));

export * from './index.js';
export * from './io/node-files.js';
export * from './io/tuning-file.js';
export * from './models/clip/tokenizer-node.js';
export * from './medfocus/dataset.js';
export * from './medfocus/phantom.js';
export * from './medfocus/cache.js';
export * from './util/atomic-write.js';
