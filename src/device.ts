// The device layer: one `getDevice()` for browsers (navigator.gpu) and Node
// (Dawn through npm `webgpu`, registered by src/node.ts). It owns the queue
// discipline every kernel relies on: one open command encoder that kernels
// append compute passes to, flushed on submit, and a buffer pool that hands a
// buffer out again only after the queue has finished with it.

import { BufferPool } from './pool.js';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Short, file-name-safe adapter name, e.g. "llvmpipe" or "swiftshader". */
  name: string;
  isFallbackAdapter: boolean;
  /** A software adapter running on the CPU (lavapipe, SwiftShader): kernels pick CPU-friendly variants until tuned. False under MEDFOCUS_GPU_VARIANTS=1. */
  isCpu: boolean;
}

export interface GetDeviceOptions {
  /** A GPU object to use instead of the environment's (navigator.gpu or the registered provider). */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Throw unless the adapter offers `shader-f16`. */
  requireF16?: boolean;
  /** Do not ask for `shader-f16` even where the adapter offers it: the device then behaves as one on an adapter without it (tests of the f32 fallback). */
  disableF16?: boolean;
}

/** Features we ask for whenever the adapter has them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

const NO_ADAPTER_HELP =
  'No WebGPU adapter was found. In a browser, use one with WebGPU enabled (Chromium: --enable-unsafe-webgpu). ' +
  'In Node on Debian bookworm, install Mesa lavapipe >= 25 from backports: add the bookworm-backports suite, then ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`, and set XDG_RUNTIME_DIR.';

let defaultProvider: (() => GPU | Promise<GPU>) | undefined;
let waitStrategy: (<T>(promise: Promise<T>) => Promise<T>) | undefined;

/** Node registers Dawn here (src/node.ts); browsers use navigator.gpu. */
export function setGpuProvider(provider: () => GPU | Promise<GPU>): void {
  defaultProvider = provider;
}

/**
 * How to wait for a device promise (queue done, buffer mapped). Node sets one
 * that sleeps between event-loop turns (src/node.ts): Dawn's Node binding
 * otherwise polls from a setImmediate loop that keeps a core busy for the
 * whole wait, a core that CPU adapters (lavapipe) need for the work itself.
 */
export function setGpuWaitStrategy(strategy: <T>(promise: Promise<T>) => Promise<T>): void {
  waitStrategy = strategy;
}

async function environmentGpu(): Promise<GPU | undefined> {
  if (defaultProvider) return defaultProvider();
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

export async function getDevice(options: GetDeviceOptions = {}): Promise<Gpu> {
  const gpu = options.gpu ?? (await environmentGpu());
  if (!gpu) throw new Error(`getDevice: WebGPU is not available in this environment. ${NO_ADAPTER_HELP}`);
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new Error(`getDevice: ${NO_ADAPTER_HELP}`);
  if (options.requireF16 && options.disableF16) throw new Error('getDevice: requireF16 and disableF16 contradict each other');
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !(options.disableF16 && f === 'shader-f16'));
  if (options.requireF16 && !features.includes('shader-f16' as GPUFeatureName)) {
    throw new Error('getDevice: the adapter lacks the `shader-f16` feature that requireF16 asked for');
  }
  const al = adapter.limits;
  // Ask for the adapter's largest buffer limits: model weights and activations
  // routinely exceed the 128 MiB default storage binding.
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
  };
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  return new Gpu(device, summarize(adapter), features.map(String), gpu);
}

/**
 * MEDFOCUS_GPU_VARIANTS=1 in Node's environment: treat a CPU adapter as a GPU
 * for kernel variant choices (defaults and tuning candidates: tiled matmul
 * and conv, wide axis lanes, GPU-style attention), so lavapipe runs the paths
 * a real GPU takes (bench/gpu.sh --small uses it for the kernel tests).
 */
function gpuVariantsForced(): boolean {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MEDFOCUS_GPU_VARIANTS === '1';
}

function summarize(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const vendor = info.vendor ?? '';
  const architecture = info.architecture ?? '';
  const device = info.device ?? '';
  const description = info.description ?? '';
  const raw = (description || device || architecture || vendor || 'unknown').toLowerCase();
  const name = raw.includes('llvmpipe') ? 'llvmpipe' : raw.includes('swiftshader') ? 'swiftshader' : raw.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'unknown';
  const isFallbackAdapter = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const isCpu = !gpuVariantsForced() && (isFallbackAdapter || name === 'llvmpipe' || name === 'swiftshader' || architecture === 'software');
  return { vendor, architecture, device, description, name, isFallbackAdapter, isCpu };
}

/** A WebGPU device with the project's queue discipline. Create with `getDevice()`. */
export class Gpu {
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  readonly pool: BufferPool;
  private encoder: GPUCommandEncoder | undefined;
  private lostError: Error | undefined;
  private readonly lostPromise: Promise<never>;
  private destroyed = false;
  private readonly errors: Error[] = [];

  /**
   * `instance` is held so the GPU object outlives the device: Dawn frees its
   * instance when the JS object is collected, and a live device then crashes.
   */
  constructor(readonly device: GPUDevice, readonly adapter: AdapterSummary, features: string[], readonly instance?: GPU) {
    this.limits = device.limits;
    this.features = new Set(features);
    this.pool = new BufferPool(this);
    this.lostPromise = device.lost.then((info) => {
      this.lostError = new Error(
        this.destroyed
          ? 'GPU device was destroyed; create a new one with getDevice()'
          : `GPU device lost (${info.reason}): ${info.message || 'no message'}`,
      );
      throw this.lostError;
    });
    // Never let the lost promise surface as an unhandled rejection.
    this.lostPromise.catch(() => undefined);
    device.addEventListener('uncapturederror', (ev) => {
      this.reportError(new Error(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`));
    });
  }

  /** Records an asynchronous device error; the next sync() rejects with it instead of results being silently wrong. */
  reportError(error: Error): void {
    this.errors.push(error);
  }

  /** Throws the device errors reported since the last check. */
  checkErrors(): void {
    if (this.errors.length === 0) return;
    const all = this.errors.splice(0);
    throw new Error(all.map((e) => e.message).join('\n'));
  }

  get hasF16(): boolean {
    return this.features.has('shader-f16');
  }

  get isLost(): boolean {
    return this.lostError !== undefined || this.destroyed;
  }

  /** Throws if the device can no longer take work. */
  assertAlive(op: string): void {
    if (this.destroyed) throw new Error(`${op}: GPU device was destroyed; create a new one with getDevice()`);
    if (this.lostError) throw new Error(`${op}: ${this.lostError.message}`);
  }

  /** The open command encoder that kernels record into; created on demand. */
  commandEncoder(): GPUCommandEncoder {
    this.assertAlive('commandEncoder');
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  get hasOpenEncoder(): boolean {
    return this.encoder !== undefined;
  }

  /** Submits recorded work; buffers released meanwhile return to the pool once the queue is done with it. */
  flush(): void {
    if (this.destroyed) return;
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = undefined;
    }
    this.pool.onFlush();
  }

  /** Resolves once all submitted work finished; rejects (instead of hanging) if the device is lost. */
  async sync(): Promise<void> {
    this.flush();
    await this.guard(this.device.queue.onSubmittedWorkDone());
    this.checkErrors();
  }

  /** Races a device promise against device loss so nothing waits forever on a dead device. */
  guard<T>(promise: Promise<T>): Promise<T> {
    if (this.lostError) return Promise.reject(this.lostError);
    const raced = Promise.race([promise, this.lostPromise]);
    return waitStrategy ? waitStrategy(raced) : raced;
  }

  /** Destroys the device. Dawn busy-spins on exit if a device is left alive. */
  destroy(): void {
    if (this.destroyed) return;
    this.encoder = undefined;
    this.pool.clear();
    this.destroyed = true;
    this.device.destroy();
  }
}
