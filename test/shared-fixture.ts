// What the tests against the golden fixtures in ../shared share: the state a
// suite's `before` hook loads from a fixture, and a fixture tensor's upload.
import type { Gpu } from '../src/device.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor.js';

/** io tensor `name` on the GPU, with its stored shape. */
export async function uploadFixture(gpu: Gpu, io: SafetensorsFile, name: string): Promise<Tensor> {
  return Tensor.fromArray(gpu, await io.read(name), io.info(name).shape);
}

/**
 * The state a suite's `before` hook sets from the fixture at `dir` (null
 * when ../shared is absent). `get()` is undefined then (the caller skips),
 * the loaded state otherwise; it throws when the hook did not set it.
 */
export class SharedFixture<T> {
  state: T | undefined;

  constructor(
    readonly dir: string | null,
    private readonly suite: string,
    private readonly what: string,
  ) {}

  get(): T | undefined {
    if (!this.dir) return undefined;
    if (!this.state) throw new Error(`${this.suite}: the before hook did not load ${this.what}`);
    return this.state;
  }
}
