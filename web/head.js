// The demo's classifier: a head exported by `medfocus train` (format below) on
// top of its CLIP checkpoint, with the segmentation mask as the focus.
//
// run/head.json (paths are relative to head.json's URL, or file names when
// the files are picked locally):
//   {
//     "format": "medfocus-head", "version": 1,
//     "classes": ["benign", "malignant", "normal"],
//     "clip": "clip.safetensors",        // the CLIP checkpoint the head was trained on
//     "tensors": "head.safetensors",     // weight [C, E]; optional bias [C], prompts [P, width]
//     "logitScale": 100,                 // optional (default 1): multiplies the logits
//     "normalize": true,                 // optional (default true): cosine of l2-normalised features and weight rows
//     "preprocess": { "mean": [..3], "std": [..3], "resample": "bicubic" },   // optional, CLIP's by default
//     "focus": { "strength": 4, "layers": [0, 1] }  // optional: how the mask steers attention
//   }
// Classification: features = CLIP image tower (VPT prompts if given; with a
// mask, the key of patch j gets the additive bias −strength·(1 − coverage_j)
// in the blocks listed, all by default, as src/medfocus/focus.ts trains it),
// logits = logitScale · f̂ · Ŵᵀ + bias,
// probabilities = softmax(logits). The explanation is the focus grid (which
// patches the classifier could attend to) and the probabilities without it.

const FORMAT = 'medfocus-head';
const DEFAULT_FOCUS = { strength: 4, layers: undefined };
/** Patches at least this covered count as inside the focus in the explanation. */
export const SHOWN_COVERAGE = 0.5;

function fail(message) {
  throw new Error(`head.json: ${message}`);
}

function checkSpec(spec) {
  if (spec === null || typeof spec !== 'object') fail(`expected a JSON object, got ${JSON.stringify(spec)}`);
  if (spec.format !== FORMAT) fail(`"format" must be "${FORMAT}", got ${JSON.stringify(spec.format)}`);
  if (spec.version !== 1) fail(`"version" ${JSON.stringify(spec.version)} is not supported (this demo reads version 1)`);
  if (!Array.isArray(spec.classes) || spec.classes.length < 2 || !spec.classes.every((c) => typeof c === 'string')) {
    fail(`"classes" must list at least two class names, got ${JSON.stringify(spec.classes)}`);
  }
  for (const key of ['clip', 'tensors']) if (typeof spec[key] !== 'string' || spec[key] === '') fail(`"${key}" must name a .safetensors file, got ${JSON.stringify(spec[key])}`);
  if (spec.logitScale !== undefined && !(Number.isFinite(spec.logitScale) && spec.logitScale > 0)) fail(`"logitScale" must be a positive number, got ${JSON.stringify(spec.logitScale)}`);
  const strength = spec.focus?.strength;
  if (strength !== undefined && !(Number.isFinite(strength) && strength >= 0)) fail(`"focus.strength" must be a number >= 0, got ${JSON.stringify(strength)}`);
}

function checkShape(file, name, expected, optional = false) {
  if (!file.tensors.has(name)) {
    if (optional) return false;
    fail(`${file.name} lacks tensor "${name}" ${JSON.stringify(expected)}`);
  }
  const shape = file.info(name).shape;
  if (shape.length !== expected.length || shape.some((d, i) => expected[i] !== undefined && d !== expected[i])) {
    fail(`${file.name}: tensor "${name}" has shape ${JSON.stringify(shape)}, expected ${JSON.stringify(expected.map((d) => d ?? 'any'))}`);
  }
  return true;
}

export class Head {
  /**
   * spec: parsed head.json; open(name) → Promise<SafetensorsFile> for the
   * files it names (relative URL or picked file).
   */
  static async load(lib, gpu, spec, open) {
    checkSpec(spec);
    const clipFile = await open(spec.clip);
    const clip = await lib.ClipModel.fromSafetensors(gpu, clipFile);
    await clipFile.close?.();
    const tensors = await open(spec.tensors);
    const C = spec.classes.length;
    const E = clip.config.embedDim;
    try {
      checkShape(tensors, 'weight', [C, E]);
      const weight = await tensors.read('weight');
      const bias = checkShape(tensors, 'bias', [C], true) ? await tensors.read('bias') : new Float32Array(C);
      const prompts = checkShape(tensors, 'prompts', [undefined, clip.config.vision.width], true)
        ? lib.Tensor.fromArray(gpu, await tensors.read('prompts'), tensors.info('prompts').shape)
        : undefined;
      return new Head(lib, gpu, spec, clip, weight, bias, prompts);
    } catch (e) {
      clip.dispose();
      throw e;
    } finally {
      await tensors.close?.();
    }
  }

  constructor(lib, gpu, spec, clip, weight, bias, prompts) {
    this.lib = lib;
    this.gpu = gpu;
    this.spec = spec;
    this.clip = clip;
    this.weight = weight;
    this.bias = bias;
    this.prompts = prompts;
    this.focus = { ...DEFAULT_FOCUS, ...spec.focus };
  }

  get classes() {
    return this.spec.classes;
  }

  /**
   * image: DecodedImage; mask: Uint8Array (1 inside) at the image size, or
   * undefined. Returns { probabilities, plain (without the mask), grid, coverage }.
   */
  async classify(image, mask) {
    const { lib, gpu } = this;
    const v = this.clip.config.vision;
    const pre = this.spec.preprocess ?? {};
    const pixels = lib.clipPreprocess(gpu, [image], { size: v.imageResolution, mean: pre.mean, std: pre.std, resample: pre.resample });
    const plain = await this.probabilities(pixels, undefined);
    let focused;
    let coverage;
    if (mask) {
      coverage = patchCoverage(mask, image.width, image.height, v.imageResolution, v.grid);
      const bias = this.focusBias(coverage);
      focused = await this.probabilities(pixels, bias);
      bias.dispose();
    }
    pixels.dispose();
    return { probabilities: focused ?? plain, plain, grid: v.grid, coverage };
  }

  /** Additive attention bias [1, 1, T, T]: the key of patch j gets −strength·(1 − coverage_j). */
  focusBias(coverage) {
    const v = this.clip.config.vision;
    const P = this.prompts ? this.prompts.shape[0] : 0;
    const T = v.tokens + P;
    const bias = new Float32Array(T * T);
    coverage.forEach((c, patch) => {
      // Token order: class token, prompts, then the patches row-major.
      const key = 1 + P + patch;
      for (let q = 0; q < T; q++) bias[q * T + key] = -this.focus.strength * (1 - c);
    });
    return this.lib.Tensor.fromArray(this.gpu, bias, [1, 1, T, T]);
  }

  async probabilities(pixels, attnBias) {
    const features = this.clip.encodeImage(pixels, { prompts: this.prompts, attnBias, attnBiasLayers: attnBias ? this.focus.layers : undefined });
    const f = await features.read();
    features.dispose();
    const normalize = this.spec.normalize ?? true;
    const scale = this.spec.logitScale ?? 1;
    const E = f.length;
    const norm = (x, at) => {
      if (!normalize) return 1;
      let s = 0;
      for (let i = 0; i < E; i++) s += x[at + i] ** 2;
      return Math.sqrt(s) || 1;
    };
    const fn = norm(f, 0);
    const logits = this.classes.map((_, c) => {
      let dot = 0;
      for (let i = 0; i < E; i++) dot += f[i] * this.weight[c * E + i];
      return (scale * dot) / (fn * norm(this.weight, c * E)) + this.bias[c];
    });
    const max = Math.max(...logits);
    const exps = logits.map((l) => Math.exp(l - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    return exps.map((e) => e / sum);
  }

  dispose() {
    this.clip.dispose();
    this.prompts?.dispose();
  }
}

/**
 * The fraction of each CLIP patch covered by the mask, following CLIP's
 * preprocessing (shorter side resized to `size`, centre crop): patch (r, c)
 * of the grid is mapped back to image pixels and the mask is averaged there.
 */
export function patchCoverage(mask, width, height, size, grid) {
  const scale = size / Math.min(width, height);
  const left = Math.round((Math.round(width * scale) - size) / 2);
  const top = Math.round((Math.round(height * scale) - size) / 2);
  const patch = size / grid;
  const coverage = new Float32Array(grid * grid);
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const x0 = Math.floor((left + c * patch) / scale);
      const x1 = Math.max(x0 + 1, Math.min(width, Math.ceil((left + (c + 1) * patch) / scale)));
      const y0 = Math.floor((top + r * patch) / scale);
      const y1 = Math.max(y0 + 1, Math.min(height, Math.ceil((top + (r + 1) * patch) / scale)));
      let inside = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) inside += mask[y * width + x];
      coverage[r * grid + c] = inside / ((x1 - x0) * (y1 - y0));
    }
  }
  return coverage;
}
