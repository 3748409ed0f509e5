// Node entry of the MedFocus application (`medfocus/app` in Node): the
// browser-safe application (app.ts), plus ImageFolder data sets, phantoms and
// the disk cache, with Dawn registered as the WebGPU provider as the engine's
// Node entry (node.ts) does.

import './device-node.js';

export * from './app.js';
export * from './medfocus/dataset.js';
export * from './medfocus/phantom.js';
export * from './medfocus/cache.js';
