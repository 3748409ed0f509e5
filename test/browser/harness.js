// The page side of the parity tests: loads dist/medfocus.browser.js, opens
// the page's WebGPU device (SwiftShader in headless Chromium) and exposes
// window.harness. The test hands it the source of test/browser/vectors.ts
// (bundled by esbuild) so the page runs exactly the code Node runs. Float32
// arrays cross between Node and the page as base64 of their bytes (exact,
// and far smaller than JSON number arrays).

import * as lib from '/dist/medfocus.browser.js';

const status = document.getElementById('status');

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(array) {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const decodeAll = (data) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, new Float32Array(fromBase64(v).buffer)]));
const encodeAll = (data) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, toBase64(v)]));

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function start() {
  const gpu = await lib.getDevice();
  let vectors;
  return {
    adapter: gpu.adapter,
    features: [...gpu.features],
    /** Imports the bundled vectors module from its source text. */
    async load(source) {
      const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
      vectors = await import(url);
      URL.revokeObjectURL(url);
    },
    /** Which optional parts of the API this bundle exports. */
    exports: Object.keys(lib),
    /** Runs one kernel vector on {input: base64 f32}; returns {output: base64 f32}. */
    async run(name, data) {
      return encodeAll(await vectors.runVector(lib, gpu, name, decodeAll(data)));
    },
    /** The CLIP fixture forward, its files fetched by HTTP range requests. */
    async clip(base) {
      const weights = await lib.openSafetensors(await lib.urlSource(`${base}/weights.safetensors`));
      const io = await lib.openSafetensors(await lib.urlSource(`${base}/io.safetensors`));
      return encodeAll(await vectors.runClip(lib, gpu, weights, io));
    },
    /**
     * The CLIP fixture forward with weight dtype `dtype` asked for; with
     * disableF16 on a second device opened without shader-f16 (the f32
     * fallback on an adapter that has it). Returns the dtype the weights got,
     * the note, and the features (base64 f32).
     */
    async clipDtype(base, dtype, disableF16) {
      const device = disableF16 ? await lib.getDevice({ disableF16: true }) : gpu;
      try {
        const weights = await lib.openSafetensors(await lib.urlSource(`${base}/weights.safetensors`));
        const io = await lib.openSafetensors(await lib.urlSource(`${base}/io.safetensors`));
        const run = await vectors.runClipWithDtype(lib, device, weights, io, dtype);
        return { ...run, outputs: encodeAll(run.outputs) };
      } finally {
        if (disableF16) device.destroy();
      }
    },
    /** The MobileSAM decoder on a given embedding (base64 f32). */
    async samDecoder(onnxUrl, embedding) {
      return encodeAll(await vectors.runSamDecoder(lib, gpu, await fetchBytes(onnxUrl), decodeAll({ embedding }).embedding));
    },
  };
}

start().then(
  (harness) => {
    window.harness = harness;
    status.textContent = `ready: ${harness.adapter.name}`;
  },
  (error) => {
    window.harnessError = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
    status.textContent = `failed: ${window.harnessError}`;
  },
);
