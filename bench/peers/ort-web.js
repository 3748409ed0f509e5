// onnxruntime-web with its WebGPU execution provider as a peer, on the
// runner's own GPUDevice (the webgpu EP's `device` option: onnxruntime-web
// 1.2x+ runs its native WebGPU EP, which ignores ort.env.webgpu.device on
// input and opens a device of its own without it), so ORT's kernels share
// the Dawn device and queue with ours and are timed the same way. Sessions
// must be created one at a time (the EP registers the device per creation).
//
// Node shims (ORT-web targets browsers; see also --liftoff-only below):
// - navigator.gpu: ORT checks for WebGPU through it (the tfjs peer sets the same).
// - device.features as a real Set: Dawn's node binding gives a setlike object
//   that ORT's feature checks do not accept.
// - queue.writeBuffer with SharedArrayBuffer views: ORT uploads straight from
//   its (threaded build, hence shared) wasm heap, and Dawn's binding refuses
//   shared memory. The patch, on the queue's prototype, copies only such views
//   into a fresh ArrayBuffer; other callers (our engine, tfjs) never pass
//   shared memory, so for them nothing changes. It stays for the whole run,
//   because ORT uploads on every session.run.
//
// Usage in a case:
//   const ortWeb = await ortWebPeer(ctx);
//   const session = await ortWeb.session(onnxBytes);                // once per model
//   const feeds = { x: ortWeb.gpuTensor(ourTensor) };               // inputs already on the GPU
//   peers: { 'ort-web webgpu': async () => { const out = await session.run(feeds); return () => ortWeb.dispose(out); } }

import { setFlagsFromString } from 'node:v8';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundle = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'onnxruntime-web', 'dist', 'ort.webgpu.bundle.min.mjs');

/** Copies SharedArrayBuffer-backed views before Dawn sees them. */
function patchWriteBuffer(queue) {
  const proto = Object.getPrototypeOf(queue);
  if (proto.writeBuffer.sharedMemoryCopy) return;
  const original = proto.writeBuffer;
  const patched = function (buffer, offset, data, dataOffset, size) {
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      // dataOffset and size count elements of data's type: keep them valid on the byte copy.
      const unit = data.BYTES_PER_ELEMENT ?? 1;
      return original.call(this, buffer, offset, bytes, dataOffset === undefined ? undefined : dataOffset * unit, size === undefined ? undefined : size * unit);
    }
    if (data instanceof SharedArrayBuffer) return original.call(this, buffer, offset, new Uint8Array(data).slice(), dataOffset, size);
    return original.call(this, buffer, offset, data, dataOffset, size);
  };
  patched.sharedMemoryCopy = true;
  proto.writeBuffer = patched;
}

/**
 * The ort-web module set up on ctx.device (once per run), with helpers:
 *   session(bytes)      an InferenceSession on the webgpu EP whose outputs stay on the GPU
 *   gpuTensor(t)        an ort.Tensor viewing one of our f32 Tensors' GPU buffer (no copy)
 *   dispose(outputs)    frees the GPU outputs of a session.run
 *   read(output)        an output's data on the CPU (Float32Array)
 */
export function ortWebPeer(ctx) {
  return ctx.once('ort-web', async () => {
    globalThis.navigator ??= {};
    globalThis.navigator.gpu ??= ctx.gpu.instance;
    const { device } = ctx;
    if (!(device.features instanceof Set)) Object.defineProperty(device, 'features', { value: new Set(device.features) });
    patchWriteBuffer(device.queue);
    // Baseline (Liftoff) wasm code only. With V8's default tiering, the first
    // session.run in a process stalls ~100 s of CPU (200 s wall on the loaded
    // 2-core machine) until TurboFan has compiled ORT's 20 MB module; with
    // Liftoff it starts at once. Liftoff code is slower on the CPU side of a
    // run (graph walk, dispatch recording) — milliseconds, next to GPU work of
    // tens to thousands on lavapipe. Set before the module is compiled; only
    // wasm compiled afterwards (ORT's) is affected.
    setFlagsFromString('--liftoff-only');
    const ort = await import(pathToFileURL(bundle).href);
    // One wasm thread: the work that matters runs on the GPU device, and worker threads would compete with lavapipe's.
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = 'error';
    return {
      ort,
      session: (bytes) => ort.InferenceSession.create(bytes, { executionProviders: [{ name: 'webgpu', device }], preferredOutputLocation: 'gpu-buffer', graphOptimizationLevel: 'all', logSeverityLevel: 3 }),
      gpuTensor: (t) => ort.Tensor.fromGpuBuffer(t.buffer, { dataType: 'float32', dims: [...t.shape] }),
      dispose: (outputs) => {
        for (const o of Object.values(outputs)) o.dispose();
      },
      read: async (output) => new Float32Array(await output.getData()),
    };
  });
}
