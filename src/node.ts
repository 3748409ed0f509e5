// Node entry: the browser entry's library (index.ts) with Dawn (npm `webgpu`)
// registered as the WebGPU provider (device-node.ts), plus the Node-only parts.

import './device-node.js';

export * from './index.js';
export * from './io/node-files.js';
export * from './io/tuning-file.js';
export * from './models/clip/tokenizer-node.js';
export * from './util/atomic-write.js';
