// tfjs-backend-webgpu as a peer, on the runner's own GPUDevice, so both
// libraries share one Dawn device and queue and are timed the same way.
// Usage in a case: const tf = await tfjsPeer(ctx);

/** The tfjs-core module with its 'webgpu' backend bound to ctx.device (set up once per run). */
export function tfjsPeer(ctx) {
  return ctx.once('tfjs', async () => {
    const tf = await import('@tensorflow/tfjs-core');
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    // Where navigator.gpu exists the import registered a 'webgpu' factory that
    // opens its own device. Kernels are registered under that name, so keep
    // the name and swap the factory.
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    // The backend refuses to start without navigator.gpu (Node 20 has no navigator).
    globalThis.navigator ??= {};
    globalThis.navigator.gpu ??= ctx.gpu.instance;
    tf.registerBackend('webgpu', () => new WebGPUBackend(ctx.device));
    if (!(await tf.setBackend('webgpu'))) throw new Error('bench: tfjs could not start its webgpu backend on our device');
    // Submit after every op, so waiting for the queue covers all of a timed op's work.
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 1);
    return tf;
  });
}
