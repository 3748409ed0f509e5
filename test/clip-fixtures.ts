// The CLIP golden fixtures (../shared/fixtures/clip/*, made with the official
// openai/CLIP code) that test/clip.test.ts and test/clip-f16.test.ts check
// against, and the loops of their tests over them.
import type { Gpu } from '../src/device.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import type { Tensor } from '../src/tensor.js';
import { uploadFixture } from './shared-fixture.js';
import { NO_SHARED, sharedPath, skip } from './util.js';

/** Each fixture's files: null when ../shared is absent; a missing file fails the importing test file here. */
export const CLIP_FIXTURE_FILES = ['clip-tiny-p16', 'clip-tiny-p32'].map((name) => ({
  name,
  weights: sharedPath('fixtures', 'clip', name, 'weights.safetensors'),
  io: sharedPath('fixtures', 'clip', name, 'io.safetensors'),
  tokens: sharedPath('fixtures', 'clip', name, 'tokens.json'),
}));

/** What a test file keeps of a loaded fixture: at least its name and its io tensors (inputs and the official outputs). */
export interface ClipFixture {
  name: string;
  io: SafetensorsFile;
}

/** The fixtures a test file loads in its `before` hook: `list` stays null when ../shared is absent. */
export class ClipFixtures<F extends ClipFixture> {
  list: F[] | null = null;

  /** The loaded fixtures, or null after marking the test skipped (../shared is absent). */
  loaded(): F[] | null {
    if (this.list === null) skip(NO_SHARED);
    return this.list;
  }

  /** Runs `body` on every fixture with its io tensor 'image' on the GPU (disposed after); returns what `loaded` does. */
  async withImages(gpu: Gpu, body: (f: F, image: Tensor) => Promise<void>): Promise<F[] | null> {
    const fixtures = this.loaded();
    for (const f of fixtures ?? []) {
      const image = await uploadFixture(gpu, f.io, 'image');
      await body(f, image);
      image.dispose();
    }
    return fixtures;
  }
}
