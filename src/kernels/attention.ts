// Fused scaled-dot-product attention: softmax(scale·q·kᵀ + bias, masked)·v in
// one kernel with an online softmax (shaders/attention.wgsl), so the Lq × Lk
// score matrix never goes to global memory.
//
// Conventions (also in the shader header):
// - keyPaddingMask [B, Lk] (u32, i32 or f32): NONZERO = padded key, ignored
//   (PyTorch's key_padding_mask=True). For f32, -0 counts as zero.
// - causal: key j > query i is masked, top-left aligned as PyTorch's
//   is_causal also when Lq ≠ Lk.
// - A key whose biased score is ≤ -1e30 (e.g. -inf bias) counts as masked.
// - A query whose keys are all masked gets an output row of zeros and
//   lse = -Infinity, never NaN.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, placeholder } from './program.js';
import { MAX_HEAD_DIM, attentionOutputShape, attentionParams, sameShape, tileCapacity, validateAttentionInputs, type AttentionDims } from './attention-shapes.js';
import { checkValues, compareVariantOutput, sweepVariants, tunedVariant, type SweepResult } from './tune.js';

export interface AttentionOptions {
  /** Multiplies q·kᵀ; defaults to 1/sqrt(D). */
  scale?: number;
  /** Additive f32 scores, rank 4, broadcastable to [B, H, Lq, Lk] (dims of 1 broadcast). */
  bias?: Tensor;
  /** Mask key j > query i (top-left aligned, as PyTorch's is_causal). */
  causal?: boolean;
  /** [B, Lk] u32/i32/f32; nonzero marks a padded key, which is ignored. */
  keyPaddingMask?: Tensor;
  /** 'bhld' (default): q [B, H, Lq, D]; 'blhd': q [B, Lq, H, D] (a fused QKV projection's layout). Output follows. */
  layout?: 'bhld' | 'blhd';
  /** Receives the row log-sum-exp of the scaled, biased, masked scores: f32 [B, H, Lq]. */
  lse?: Tensor;
  /** Receives the output: f32 [B, H, Lq, Dv] ('bhld') or [B, Lq, H, Dv] ('blhd'). */
  out?: Tensor;
  /** A kernel variant such as 'w16r8k32s8', overriding the tuned choice (tests and benchmarks). */
  variant?: string;
}

const OP = 'attention';
/** The shader's MAX_ROWS and MAX_KEY_STEP. */
const MAX_ROWS = 8;
const KEY_STEPS = [4, 8, 16];

/**
 * A tuning variant: invocations per workgroup, queries per invocation, keys
 * per K/V tile in workgroup memory, keys per online-softmax step.
 */
interface Variant {
  workgroupSize: number;
  rows: number;
  keyTile: number;
  keyStep: number;
}

/**
 * Used until tuneAttention picks per adapter. GPUs: one query per invocation
 * (q and the accumulator in registers). CPU drivers (lavapipe, SwiftShader),
 * where every read at a computed index is a per-lane load and FMAs are cheap:
 * eight queries per invocation and sixteen keys per softmax step, so each
 * K/V read feeds eight rows and each q / accumulator read sixteen keys.
 */
const GPU_DEFAULT: Variant = { workgroupSize: 64, rows: 1, keyTile: 32, keyStep: 4 };
const CPU_DEFAULT: Variant = { workgroupSize: 16, rows: 8, keyTile: 32, keyStep: 16 };
/** What tuneAttention times by default: GPU-style, then CPU-style shapes. */
const TUNING_CANDIDATES = ['w64r1k32s4', 'w64r2k32s8', 'w16r8k32s8', 'w16r8k32s16', 'w32r8k32s16'];

const variantName = (v: Variant) => `w${v.workgroupSize}r${v.rows}k${v.keyTile}s${v.keyStep}`;

function parseVariant(name: string): Variant | undefined {
  const m = /^w(\d+)r(\d+)k(\d+)s(\d+)$/.exec(name);
  return m ? { workgroupSize: Number(m[1]), rows: Number(m[2]), keyTile: Number(m[3]), keyStep: Number(m[4]) } : undefined;
}

/**
 * Workgroup-memory row capacity in vec4s for a head dim: rounded up to a
 * multiple of 8 vec4s (32 elements), so head dims 1–32, 33–64, 65–96 and
 * 97–128 each share one pipeline.
 */

/** Tuning problem class: the larger tile capacity. */
const tuningKey = (capD: number, capDv: number) => `${OP}|cap${Math.max(capD, capDv)}`;

function fits(gpu: Gpu, v: Variant, capD: number, capDv: number): boolean {
  const workgroupBytes = v.keyTile * (capD + capDv) * 16 + v.keyTile * 4;
  return (
    v.rows >= 1 &&
    v.rows <= MAX_ROWS &&
    KEY_STEPS.includes(v.keyStep) &&
    v.keyTile > 0 &&
    v.keyTile % v.keyStep === 0 &&
    workgroupBytes <= gpu.limits.maxComputeWorkgroupStorageSize &&
    v.workgroupSize >= 1 &&
    v.workgroupSize <= gpu.limits.maxComputeInvocationsPerWorkgroup &&
    v.workgroupSize <= gpu.limits.maxComputeWorkgroupSizeX
  );
}

/** The variant with its key tile halved until its workgroup memory fits (wide heads need smaller tiles). */
function shrinkToFit(gpu: Gpu, v: Variant, capD: number, capDv: number): Variant {
  const out = { ...v };
  while (!fits(gpu, out, capD, capDv) && out.keyTile > out.keyStep) out.keyTile /= 2;
  return out;
}

/**
 * The CPU default for Lq queries: CPU_DEFAULT, or its half-width workgroup
 * when that pads Lq to fewer query slots. A workgroup covers
 * workgroupSize · rows queries; short sequences (TinyViT's 7×7 windows,
 * Lq = 49) would leave most of a 128-query block idle, and on lavapipe the
 * 64-query block runs them ~40% faster.
 */
function cpuDefault(Lq: number): Variant {
  const slots = (v: Variant) => Math.ceil(Lq / (v.workgroupSize * v.rows)) * v.workgroupSize * v.rows;
  const half = { ...CPU_DEFAULT, workgroupSize: CPU_DEFAULT.workgroupSize / 2 };
  return slots(half) < slots(CPU_DEFAULT) ? half : CPU_DEFAULT;
}

/** The requested, else tuned, else default variant. */
function chooseVariant(gpu: Gpu, capD: number, capDv: number, Lq: number, requested?: string): Variant {
  if (requested !== undefined) {
    const v = parseVariant(requested);
    if (!v || !fits(gpu, v, capD, capDv)) {
      throw new Error(
        `${OP}: variant '${requested}' is malformed or does not fit this device and head dim (expected w<workgroup>r<rows ≤ ${MAX_ROWS}>k<key tile>s<key step ${KEY_STEPS.join('|')}>, e.g. '${variantName(CPU_DEFAULT)}')`,
      );
    }
    return v;
  }
  const tuned = tunedVariant(gpu, tuningKey(capD, capDv));
  const parsed = tuned === undefined ? undefined : parseVariant(tuned);
  if (parsed && fits(gpu, parsed, capD, capDv)) return parsed;
  return shrinkToFit(gpu, gpu.adapter.isCpu ? cpuDefault(Lq) : GPU_DEFAULT, capD, capDv);
}

function validate(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionDims {
  const d = validateAttentionInputs(OP, q, k, v, opts);
  if (opts.lse) {
    const want = [d.B, d.H, d.Lq];
    if (opts.lse.dtype !== 'f32' || !sameShape(opts.lse.shape, want)) {
      throw new Error(`${OP}: lse must be f32 [B, H, Lq] = ${shapeString(want)}, got ${opts.lse.dtype} ${shapeString(opts.lse.shape)}`);
    }
  }
  if (opts.out) {
    const want = attentionOutputShape(opts.layout ?? 'bhld', d);
    if (opts.out.dtype !== 'f32' || !sameShape(opts.out.shape, want)) {
      throw new Error(`${OP}: out must be f32 ${shapeString(want)}, got ${opts.out.dtype} ${shapeString(opts.out.shape)}`);
    }
  }
  return d;
}

function run(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions, d: AttentionDims, variant: Variant): Tensor {
  const layout = opts.layout ?? 'bhld';
  const out = opts.out ?? Tensor.empty(gpu, attentionOutputShape(layout, d));
  const bias = opts.bias;
  // The shared placeholder is bound read-only elsewhere in this dispatch, so an
  // unused writable binding gets its own scratch buffer.
  const lse = opts.lse ?? Tensor.empty(gpu, [1]);
  dispatchKernel(
    gpu,
    OP,
    {
      shader: 'attention',
      constants: {
        WORKGROUP_SIZE: variant.workgroupSize,
        ROWS: variant.rows,
        KEY_TILE: variant.keyTile,
        KEY_STEP: variant.keyStep,
        TILE_D_VEC4: tileCapacity(d.D),
        TILE_DV_VEC4: tileCapacity(d.Dv),
        HAS_BIAS: bias !== undefined,
        HAS_MASK: opts.keyPaddingMask !== undefined,
        MASK_IS_F32: opts.keyPaddingMask?.dtype === 'f32',
        CAUSAL: opts.causal === true,
        WRITE_LSE: opts.lse !== undefined,
      },
    },
    {
      q,
      k,
      v,
      bias: bias ?? placeholder(gpu),
      key_mask: opts.keyPaddingMask ?? placeholder(gpu),
      out,
      lse,
      params: attentionParams(d, opts),
    },
    [Math.ceil(d.Lq / (variant.workgroupSize * variant.rows)), d.H, d.B],
  );
  if (lse !== opts.lse) lse.dispose();
  return out;
}

/**
 * softmax(scale·q·kᵀ + bias, masked)·v per (batch, head), fused. See
 * AttentionOptions for shapes; the conventions for masks and fully masked
 * rows are in this file's header.
 */
export function attention(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const d = validate(q, k, v, opts);
  return run(gpu, q, k, v, opts, d, chooseVariant(gpu, tileCapacity(d.D), tileCapacity(d.Dv), d.Lq, opts.variant));
}

/**
 * Times kernel variants on this adapter for each head-dim class (shape
 * B=1, H=2, L=256) and remembers the fastest per class for attention().
 * `headDims`: one representative per class (default 32, 64, 96, 128);
 * `variants`: names to time (default: a mix of GPU- and CPU-style shapes).
 * Takes minutes on CPU drivers, where every variant compiles its own pipeline.
 */
export async function tuneAttention(gpu: Gpu, opts: { headDims?: number[]; variants?: string[] } = {}): Promise<Record<string, SweepResult>> {
  const results: Record<string, SweepResult> = {};
  for (const D of opts.headDims ?? [32, 64, 96, 128]) {
    if (!Number.isInteger(D) || D < 1 || D > MAX_HEAD_DIM) throw new Error(`tuneAttention: head dims must be integers in 1..${MAX_HEAD_DIM}, got ${D}`);
    const cap = tileCapacity(D);
    const variants = new Map<string, Variant>();
    for (const name of opts.variants ?? TUNING_CANDIDATES) {
      const parsed = parseVariant(name);
      if (!parsed) throw new Error(`tuneAttention: malformed variant '${name}' (expected like '${variantName(CPU_DEFAULT)}')`);
      const v = shrinkToFit(gpu, parsed, cap, cap);
      if (fits(gpu, v, cap, cap)) variants.set(variantName(v), v);
    }
    const shape = [1, 2, 256, D];
    const d: AttentionDims = { B: 1, H: 2, Lq: 256, Lk: 256, D, Dv: D };
    const x = Tensor.fromArray(gpu, Float32Array.from({ length: 2 * 256 * D }, (_, i) => Math.sin(i * 0.37)), shape);
    const out = Tensor.empty(gpu, shape);
    const key = tuningKey(cap, cap);
    try {
      results[key] = await sweepVariants(
        gpu,
        key,
        [...variants.keys()],
        (name) => {
          run(gpu, x, x, x, { out }, d, variants.get(name) as Variant);
        },
        { check: (name) => checkAttentionVariant(gpu, key, name, variants.get(name) as Variant, D) },
      );
    } finally {
      x.dispose();
      out.dispose();
    }
  }
  return results;
}

/**
 * The tuner's check of an attention variant on this adapter: B=1, H=2,
 * Lq=70 queries over Lk=75 keys of head dim D (partial query blocks and key
 * tiles) from separate random q, k, v, against a float64 softmax(q·kᵀ/√D)·v
 * on the CPU.
 */
async function checkAttentionVariant(gpu: Gpu, key: string, name: string, variant: Variant, D: number): Promise<string | undefined> {
  const d: AttentionDims = { B: 1, H: 2, Lq: 70, Lk: 75, D, Dv: D };
  const qData = checkValues(d.H * d.Lq * D, 51);
  const kData = checkValues(d.H * d.Lk * D, 53);
  const vData = checkValues(d.H * d.Lk * D, 59);
  const scale = 1 / Math.sqrt(D);
  const want = new Float64Array(d.H * d.Lq * D);
  const p = new Float64Array(d.Lk);
  for (let h = 0; h < d.H; h++) {
    for (let i = 0; i < d.Lq; i++) {
      let max = -Infinity;
      for (let j = 0; j < d.Lk; j++) {
        let dot = 0;
        for (let c = 0; c < D; c++) dot += qData[(h * d.Lq + i) * D + c] * kData[(h * d.Lk + j) * D + c];
        p[j] = dot * scale;
        max = Math.max(max, p[j]);
      }
      let sum = 0;
      for (let j = 0; j < d.Lk; j++) sum += p[j] = Math.exp(p[j] - max);
      for (let j = 0; j < d.Lk; j++) {
        for (let c = 0; c < D; c++) want[(h * d.Lq + i) * D + c] += (p[j] / sum) * vData[(h * d.Lk + j) * D + c];
      }
    }
  }
  const q = Tensor.fromArray(gpu, qData, [1, d.H, d.Lq, D]);
  const k = Tensor.fromArray(gpu, kData, [1, d.H, d.Lk, D]);
  const v = Tensor.fromArray(gpu, vData, [1, d.H, d.Lk, D]);
  let y: Tensor | undefined;
  let got: Float32Array;
  try {
    y = run(gpu, q, k, v, {}, d, variant);
    got = (await y.read()) as Float32Array;
  } finally {
    for (const t of [q, k, v, y]) t?.dispose();
  }
  const problem = compareVariantOutput(key, name, got, want);
  return problem && `q [1,2,70,${D}], k/v [1,2,75,${D}]: ${problem}`;
}
