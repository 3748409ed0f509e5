// Loads a CLIP checkpoint (safetensors) onto the GPU, tensor by tensor.
//
// The whole key set is checked against the architecture inferred from it
// (config.ts) before anything is uploaded: a missing, unexpected or wrongly
// shaped tensor is an Error naming the file, the key, the expected and the
// actual shape. Uploads then happen one tensor at a time (only one tensor's
// bytes on the host at once); if a read fails midway, everything uploaded so
// far is disposed, so the caller never holds a partly built model.
//
// dtype 'f16' (where the adapter has shader-f16) stores the transformer
// blocks' linear weights (q, k, v, out, fc, proj: the matmul B operands) and
// the patch-embedding conv's weight (the conv kernels read halves too) as
// halves; everything else (embeddings, norms, biases, the projections)
// stays f32. A file that already stores a tensor as F16 has its halves
// uploaded as they are where they stay halves (no f32 copy on the host), and
// widened where they become f32; an F16 value that is Inf or NaN (what an
// f32 weight beyond ±65504 becomes when a checkpoint is converted to f16) is
// an Error naming the tensor.

import type { Gpu } from '../../device.js';
import { Tensor } from '../../tensor.js';
import { SAFETENSORS_FLOAT_DTYPES, widenF16, type SafetensorsFile } from '../../io/safetensors.js';
import { sameShape } from '../../util/shape.js';
import { chooseWeightDtype, type WeightDtype } from '../weight-dtype.js';
import { inferClipConfig, isIgnoredKey, parseConfigJson, sourceTensors, type ClipActivation, type ClipConfig, type SourceTensor } from './config.js';

export interface ClipWeights {
  readonly config: ClipConfig;
  /** Internal name (see config.ts sourceTensors) → resident tensor (f32; the blocks' linear weights and the patch-embedding conv weight f16 when weightDtype is). */
  readonly params: ReadonlyMap<string, Tensor>;
  /** What the blocks' linear weights and the patch-embedding conv weight are stored as. */
  readonly weightDtype: WeightDtype;
  /** Why weightDtype is not what was asked (f16 on an adapter without shader-f16), for diagnostics. */
  readonly weightDtypeNote?: string;
  /** The stored log-space temperature; logits use exp(logitScale). */
  readonly logitScale: number;
  dispose(): void;
}

export interface LoadClipWeightsOptions {
  /**
   * A parsed config (e.g. a config.json next to the weights) for what shapes
   * do not tell (attention head counts). Default: the file's
   * `__metadata__.config`, else the width/64 rule of the official build_model().
   */
  config?: Record<string, unknown>;
  /**
   * The MLP activation, overriding what the config says (default: the
   * config's hidden_act / quick_gelu, else QuickGELU as in OpenAI's CLIP).
   */
  activation?: ClipActivation;
  /** Storage of the transformer blocks' linear weights and the patch conv; default f16 where the adapter has shader-f16, else f32 (chooseWeightDtype); 'f16' asked for falls back to f32 where the adapter lacks shader-f16 (see weightDtypeNote). */
  dtype?: WeightDtype;
}

/** What dtype 'f16' stores as halves (internal names, config.ts): the blocks' linear weights (matmul's B operands) and the patch-embedding conv's weight. */
const HALF_WEIGHT = /\.blocks\.\d+\.(q|k|v|out|fc|proj)\.w$|^visual\.conv$/;

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Every problem of the key set, as lines; empty when the checkpoint matches the config exactly. */
function keyProblems(file: SafetensorsFile, config: ClipConfig, expected: readonly SourceTensor[]): string[] {
  const problems: string[] = [];
  const wanted = new Set<string>();
  for (const { key, shape } of expected) {
    wanted.add(key);
    const info = file.tensors.get(key);
    if (!info) problems.push(`missing tensor "${key}" (expected shape ${fmt(shape)})`);
    else if (!sameShape(info.shape, shape)) problems.push(`tensor "${key}" has shape ${fmt(info.shape)}, expected ${fmt(shape)}`);
    else if (!SAFETENSORS_FLOAT_DTYPES.includes(info.dtype)) problems.push(`tensor "${key}" is ${info.dtype}, expected a float dtype (${SAFETENSORS_FLOAT_DTYPES.join(', ')})`);
  }
  for (const [key, info] of file.tensors) {
    if (!wanted.has(key) && !isIgnoredKey(config.layout, key)) problems.push(`unexpected tensor "${key}" ${fmt(info.shape)} (not part of a ${config.layout} CLIP ViT)`);
  }
  return problems;
}

/** A target's elements from its source tensor's: f32 values, or F16 bit patterns kept as halves. */
function derive<T extends Float32Array | Uint16Array>(data: T, src: SourceTensor, target: SourceTensor['targets'][number]): T {
  if (target.from === 'copy') return data;
  if (target.from === 'transpose') {
    const [rows, cols] = src.shape;
    const out = (data instanceof Uint16Array ? new Uint16Array(rows * cols) : new Float32Array(rows * cols)) as T;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
    return out;
  }
  // A row range of a fused [3·D, ...] tensor: rows are contiguous.
  const rowLength = src.shape.length > 1 ? src.shape[1] : 1;
  const [begin, end] = target.from.rows;
  return data.subarray(begin * rowLength, end * rowLength) as T;
}

/** An F16 tensor's halves; throws naming the file and tensor at the first Inf or NaN. */
async function readFiniteHalves(file: SafetensorsFile, key: string): Promise<Uint16Array> {
  const bits = await file.readF16Bits(key);
  for (let i = 0; i < bits.length; i++) {
    // Exponent bits all ones: Inf (mantissa 0) or NaN.
    if ((bits[i] & 0x7c00) === 0x7c00) {
      const what = bits[i] & 0x3ff ? 'NaN' : bits[i] & 0x8000 ? '-Inf' : 'Inf';
      const hex = bits[i].toString(16).padStart(4, '0');
      throw new Error(`${file.name}: tensor "${key}" (F16) element ${i} is ${what} (bits 0x${hex}), expected a finite weight: corrupt, or converted from f32 values beyond the f16 range ±65504`);
    }
  }
  return bits;
}

/**
 * Reads a CLIP ViT checkpoint into GPU tensors. The file stays open (the
 * caller closes it). Throws before uploading anything if the key set or a
 * shape does not match the inferred architecture.
 */
export async function loadClipWeights(gpu: Gpu, file: SafetensorsFile, options: LoadClipWeightsOptions = {}): Promise<ClipWeights> {
  const shapes = new Map([...file.tensors].map(([k, info]) => [k, info.shape] as const));
  const config = inferClipConfig(shapes, file.name, options.config ?? parseConfigJson(file.metadata.config), options.activation);
  const expected = sourceTensors(config);
  const problems = keyProblems(file, config, expected);
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; ... (${problems.length - 8} more)` : '');
    throw new Error(`${file.name}: does not match the CLIP ViT inferred from it (${config.layout} layout, vision ${config.vision.layers}×${config.vision.width}, text ${config.text.layers}×${config.text.width}, embed ${config.embedDim}): ${shown}`);
  }
  const { dtype, note } = chooseWeightDtype(gpu, options.dtype, `loadClipWeights(${file.name})`);
  const params = new Map<string, Tensor>();
  let logitScale = NaN;
  try {
    for (const src of expected) {
      const halves = file.info(src.key).dtype === 'F16' ? await readFiniteHalves(file, src.key) : undefined;
      // f32 values only where some target needs them (widened once from the halves).
      let values = halves ? undefined : await file.read(src.key);
      const f32 = () => (values ??= widenF16(halves!));
      for (const target of src.targets) {
        const storage = HALF_WEIGHT.test(target.name) ? dtype : 'f32';
        if (target.name === 'logitScale') logitScale = f32()[0];
        else if (halves && storage === 'f16') params.set(target.name, Tensor.fromF16Bits(gpu, derive(halves, src, target), target.shape));
        else params.set(target.name, Tensor.fromArray(gpu, derive(f32(), src, target), target.shape, storage));
      }
    }
  } catch (e) {
    for (const t of params.values()) t.dispose();
    throw e;
  }
  if (!Number.isFinite(logitScale)) {
    for (const t of params.values()) t.dispose();
    throw new Error(`${file.name}: tensor "logit_scale" is ${logitScale}, expected a finite number`);
  }
  return {
    config,
    params,
    logitScale,
    weightDtype: dtype,
    ...(note ? { weightDtypeNote: note } : {}),
    dispose() {
      for (const t of params.values()) t.dispose();
      params.clear();
    },
  };
}
