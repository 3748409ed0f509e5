// Batched matrix multiply with a fused epilogue:
//   y = act(alpha · (A · B) + bias) + residual
// One shader (shaders/matmul.wgsl) with two entry points: `tiled` stages
// tiles in workgroup memory (GPUs), `direct` reads through the caches with a
// large register block (CPU drivers such as lavapipe). Which entry point and
// tile shape is fastest is chosen per adapter by a timed sweep (tuneMatmul);
// everything else is specialised per call with override constants. B (the
// weight operand of a linear layer) may be f16: it is read as halves and
// widened to f32, so the products and sums stay f32 (B_F16 in the shader).

import type { Gpu } from '../device.js';
import { BYTES_PER_ELEMENT, Tensor, numel, shapeString, type Shape } from '../tensor.js';
import { ACTIVATIONS, activationCode, type Activation } from './activation.js';
import { dispatchKernel, placeholder } from './program.js';
import { checkValues, compareVariantOutput, sweepVariants, tunedVariant, type SweepResult } from './tune.js';

const MATMUL_ACTIVATION_NAMES: readonly Activation[] = ['none', 'relu', 'gelu', 'geluTanh', 'quickGelu'];
export type MatmulActivation = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'quickGelu';

export interface MatmulOptions {
  /** a is stored [..., K, M] instead of [..., M, K]. */
  transA?: boolean;
  /** b is stored [..., N, K] instead of [..., K, N]. */
  transB?: boolean;
  /** [N], added to every row before the activation. */
  bias?: Tensor;
  /** Applied after alpha and bias (gelu is the erf form). */
  activation?: MatmulActivation;
  /** Added after the activation: the output's shape, or its trailing dims (repeated over the leading ones). */
  residual?: Tensor;
  /** Scales A·B before the bias (default 1). */
  alpha?: number;
  /** Written instead of a new tensor; must have the output's shape and not share a buffer with an input. */
  out?: Tensor;
  /** A variant name (format and list: MATMUL_VARIANTS), overriding the tuned choice (tests and benchmarks). */
  variant?: string;
}

/**
 * Variant names: `tiled-wg<X>x<Y>-r<TM>x<TN>-k<TK>` or `direct-wg<X>x<Y>-r<TM>x<TN>`:
 * workgroup X × Y invocations, each owning TM × TN outputs, so the output
 * tile is (Y·TM) × (X·TN); tiled stages K in slices of TK.
 */
export const MATMUL_VARIANTS = [
  'tiled-wg16x16-r4x4-k16', // 64×64 tile, 256 invocations: the usual GPU shape
  'tiled-wg8x8-r4x4-k32', // 32×32 tile: more workgroups for small outputs
  'tiled-wg16x8-r8x4-k16', // 64×64 tile, 128 invocations, taller register block
  'tiled-wg16x16-r8x8-k8', // 128×128 tile for large GPUs
  'direct-wg8x1-r8x16', // CPU drivers: 8×128 tile (the fastest on lavapipe here)
  'direct-wg16x1-r8x16', // 8×256
  'direct-wg16x1-r12x8', // 12×128
  'direct-wg8x1-r8x8', // 8×64: fewer reads per block, quicker to compile
  'direct-wg8x1-r16x8', // 16×64: the default for N that 128-wide tiles pad (DIRECT_NARROW_VARIANT)
] as const;

/** Shapes [M, K, N] that tuneMatmul times by default: a ViT-B projection and a square product. */
export const MATMUL_TUNING_SHAPES: readonly (readonly [number, number, number])[] = [
  [197, 768, 768],
  [1024, 1024, 1024],
];

const TUNING_KEY = 'matmul';
const MAX_BATCH_DIMS = 4;

interface MatmulTile {
  entry: 'tiled' | 'direct';
  wgX: number;
  wgY: number;
  tm: number;
  tn: number;
  tk: number;
}

function parseVariant(name: string): MatmulTile {
  const m = /^(tiled|direct)-wg(\d+)x(\d+)-r(\d+)x(\d+)(?:-k(\d+))?$/.exec(name);
  const tile: MatmulTile | undefined = m
    ? { entry: m[1] as MatmulTile['entry'], wgX: Number(m[2]), wgY: Number(m[3]), tm: Number(m[4]), tn: Number(m[5]), tk: Number(m[6] ?? 0) }
    : undefined;
  // Register-block limits of the shader: tiled TM, TN ∈ {4, 8}; direct TM, TN ∈ {4, 8, 12, 16}.
  const maxBlock = tile?.entry === 'tiled' ? 8 : 16;
  const valid =
    tile !== undefined &&
    (tile.entry === 'tiled') === tile.tk > 0 &&
    tile.wgX > 0 &&
    tile.wgY > 0 &&
    [tile.tm, tile.tn].every((t) => t > 0 && t % 4 === 0 && t <= maxBlock);
  if (!valid) {
    throw new Error(
      `matmul: malformed variant '${name}' (expected tiled-wg<X>x<Y>-r<TM>x<TN>-k<TK> with TM, TN in 4, 8, or direct-wg<X>x<Y>-r<TM>x<TN> with TM, TN in 4, 8, 12, 16)`,
    );
  }
  return tile;
}

/** Why the device cannot run this tile, or undefined if it can. */
function tileProblem(gpu: Gpu, tile: MatmulTile): string | undefined {
  const invocations = tile.wgX * tile.wgY;
  if (invocations > gpu.limits.maxComputeInvocationsPerWorkgroup || tile.wgX > gpu.limits.maxComputeWorkgroupSizeX || tile.wgY > gpu.limits.maxComputeWorkgroupSizeY) {
    return `workgroup ${tile.wgX}×${tile.wgY} exceeds the device's workgroup limits`;
  }
  // As and Bs: TK vec4 rows of BM/4 and BN/4 entries.
  const shared = tile.entry === 'tiled' ? tile.tk * (tile.wgY * tile.tm + tile.wgX * tile.tn) * 4 : 0;
  if (shared > gpu.limits.maxComputeWorkgroupStorageSize) {
    return `needs ${shared} bytes of workgroup memory, over the device's ${gpu.limits.maxComputeWorkgroupStorageSize}`;
  }
  return undefined;
}

/** Before tuning: the register-blocked kernel on CPU drivers, the usual GPU tile elsewhere. */
function defaultVariant(gpu: Gpu): string {
  return gpu.adapter.isCpu ? 'direct-wg8x1-r8x16' : 'tiled-wg16x16-r4x4-k16';
}

/**
 * The `direct` block for outputs whose N a wide tile would pad: 64 columns
 * (16 rows deep, so each B read still feeds as many FMAs). Columns past N are
 * computed and dropped, so a 128-wide tile wastes 50% at N = 64 and 37% at
 * N = 160 or 320 (TinyViT's widths); on lavapipe this block is 15–40% faster
 * there, and up to 15% slower where N is a multiple of 128.
 */
const DIRECT_NARROW_VARIANT = 'direct-wg8x1-r16x8';

/** The variant for an output N wide: the tuned (or default) one, unless it is a `direct` tile that pads N more than the narrow one. */
function variantFor(gpu: Gpu, N: number): string {
  const chosen = tunedVariant(gpu, TUNING_KEY) ?? defaultVariant(gpu);
  const tile = parseVariant(chosen);
  if (tile.entry !== 'direct') return chosen;
  const narrow = parseVariant(DIRECT_NARROW_VARIANT);
  const padded = (width: number) => Math.ceil(N / width) * width;
  const wide = tile.wgX * tile.tn;
  return padded(wide) > padded(narrow.wgX * narrow.tn) && tileProblem(gpu, narrow) === undefined ? DIRECT_NARROW_VARIANT : chosen;
}

/** Numpy broadcast of two batch shapes, or undefined if they do not broadcast. */
function broadcastShapes(x: Shape, y: Shape): number[] | undefined {
  const rank = Math.max(x.length, y.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dx = x[x.length - rank + i] ?? 1;
    const dy = y[y.length - rank + i] ?? 1;
    if (dx !== dy && dx !== 1 && dy !== 1) return undefined;
    out.push(dx === 1 ? dy : dx);
  }
  return out;
}

/** Element strides of an operand's batch dims aligned to the output batch shape (0 where broadcast). */
function batchStrides(batch: Shape, outBatch: Shape, matrixSize: number): number[] {
  const strides = new Array<number>(outBatch.length).fill(0);
  let stride = matrixSize;
  for (let i = batch.length - 1; i >= 0; i--) {
    strides[outBatch.length - batch.length + i] = batch[i] === 1 ? 0 : stride;
    stride *= batch[i];
  }
  return strides;
}

interface BatchLayout {
  shape: number[];
  aStrides: number[];
  bStrides: number[];
}

/**
 * Drops unit batch dims and merges neighbours that both operands index
 * contiguously (or both broadcast), so any broadcast needs few dims.
 */
function collapseBatch(shape: number[], aStrides: number[], bStrides: number[]): BatchLayout {
  const out: BatchLayout = { shape: [], aStrides: [], bStrides: [] };
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = out.shape.length - 1;
    if (last >= 0 && out.aStrides[last] === aStrides[i] * shape[i] && out.bStrides[last] === bStrides[i] * shape[i]) {
      out.shape[last] *= shape[i];
      out.aStrides[last] = aStrides[i];
      out.bStrides[last] = bStrides[i];
    } else {
      out.shape.push(shape[i]);
      out.aStrides.push(aStrides[i]);
      out.bStrides.push(bStrides[i]);
    }
  }
  return out;
}

/**
 * A tensor's whole buffer, for the shader's vec4 views: bound whole, a view
 * reaches a trailing partial vec4 (pool buffers are multiples of 16 bytes).
 */
function wholeBuffer(gpu: Gpu, name: string, t: Tensor): GPUBuffer {
  const reach = Math.min(t.buffer.size, gpu.limits.maxStorageBufferBindingSize);
  if (reach < Math.ceil(t.byteLength / 16) * 16) {
    throw new Error(`matmul: ${name}'s buffer (${t.buffer.size} bytes) must reach the multiple of 16 bytes after its ${t.byteLength} bytes of data`);
  }
  return t.buffer;
}

function padFront(v: number[], fill: number): number[] {
  return [...new Array<number>(MAX_BATCH_DIMS - v.length).fill(fill), ...v];
}

/**
 * y = act(alpha · (A · B) + bias) + residual, with a [...batchA, M, K] (or
 * [..., K, M] with transA) and b [...batchB, K, N] (or [..., N, K] with
 * transB); a, bias, residual and the output are f32, b is f32 or f16 (f16
 * weights: widened to f32 as read, f32 accumulation); batch dims broadcast
 * numpy-style. Returns [...batch, M, N] (or writes `out`).
 */
export function matmul(gpu: Gpu, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, bias, residual, out, alpha = 1, activation = 'none' } = opts;
  if (a.dtype !== 'f32' || (b.dtype !== 'f32' && b.dtype !== 'f16')) throw new Error(`matmul: expected a f32 and b f32 or f16, got a ${a.dtype} and b ${b.dtype}`);
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank >= 2, got a ${shapeString(a.shape)} and b ${shapeString(b.shape)}`);
  activationCode('matmul', activation, MATMUL_ACTIVATION_NAMES);
  if (!Number.isFinite(alpha)) throw new Error(`matmul: alpha must be a finite number, got ${alpha}`);
  const [ra, ca] = a.shape.slice(-2);
  const [rb, cb] = b.shape.slice(-2);
  const [M, K] = transA ? [ca, ra] : [ra, ca];
  const [Kb, N] = transB ? [cb, rb] : [rb, cb];
  if (K !== Kb) {
    throw new Error(`matmul: inner dimensions differ: a ${shapeString(a.shape)}${transA ? ' (transA)' : ''} has K=${K}, b ${shapeString(b.shape)}${transB ? ' (transB)' : ''} has K=${Kb}`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB);
  if (!batch) {
    throw new Error(`matmul: batch dimensions do not broadcast: a ${shapeString(a.shape)} has ${shapeString(batchA)}, b ${shapeString(b.shape)} has ${shapeString(batchB)}`);
  }
  const outShape = [...batch, M, N];
  if (bias && (bias.dtype !== 'f32' || bias.rank !== 1 || bias.shape[0] !== N)) {
    throw new Error(`matmul: bias must be f32 [${N}] (N), got ${bias.dtype} ${shapeString(bias.shape)}`);
  }
  if (residual) {
    // Leading 1s aside, the residual's dims must be the output's trailing dims.
    const firstNonUnit = residual.shape.findIndex((d) => d !== 1);
    const trimmed = firstNonUnit < 0 ? [] : residual.shape.slice(firstNonUnit);
    const isSuffix = trimmed.every((d, i) => d === outShape[outShape.length - trimmed.length + i]);
    if (residual.dtype !== 'f32' || residual.rank > outShape.length || !isSuffix) {
      throw new Error(`matmul: residual must be f32 with the output shape ${shapeString(outShape)} (or its trailing dims), got ${residual.dtype} ${shapeString(residual.shape)}`);
    }
  }
  if (out) {
    if (out.dtype !== 'f32' || shapeString(out.shape) !== shapeString(outShape)) {
      throw new Error(`matmul: out must be f32 ${shapeString(outShape)}, got ${out.dtype} ${shapeString(out.shape)}`);
    }
    for (const [name, t] of [['a', a], ['b', b], ['bias', bias], ['residual', residual]] as const) {
      if (t && t.buffer === out.buffer) throw new Error(`matmul: out must not share its buffer with ${name} (one dispatch cannot read and write a buffer)`);
    }
  }
  // Checked here, before the output exists; dispatchKernel would only catch inputs after allocating it.
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  for (const [name, shape, dtype] of [['a', a.shape, a.dtype], ['b', b.shape, b.dtype], ['output', outShape, 'f32']] as const) {
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    if (bytes > maxBinding) {
      throw new Error(`matmul: ${name} ${shapeString(shape)} is ${bytes} bytes, over the device's maxStorageBufferBindingSize of ${maxBinding} bytes`);
    }
  }
  const layout = collapseBatch(batch, batchStrides(batchA, batch, M * K), batchStrides(batchB, batch, K * N));
  if (layout.shape.length > MAX_BATCH_DIMS) {
    throw new Error(`matmul: broadcasting a ${shapeString(a.shape)} with b ${shapeString(b.shape)} needs ${layout.shape.length} batch dims; at most ${MAX_BATCH_DIMS} are supported`);
  }
  const variant = opts.variant ?? variantFor(gpu, N);
  const tile = parseVariant(variant);
  const problem = tileProblem(gpu, tile);
  if (problem) throw new Error(`matmul: variant ${variant} ${problem}`);

  const y = out ?? Tensor.empty(gpu, outShape);
  dispatchKernel(
    gpu,
    'matmul',
    {
      shader: 'matmul',
      entry: tile.entry,
      constants: {
        WG_X: tile.wgX,
        WG_Y: tile.wgY,
        TM4: tile.tm / 4,
        TN4: tile.tn / 4,
        ...(tile.entry === 'tiled' ? { TK: tile.tk } : {}),
        TRANS_A: transA,
        TRANS_B: transB,
        // vec4 reads along an operand's contiguous dimension stay aligned when it is a multiple of 4.
        VEC_A: (transA ? M : K) % 4 === 0,
        VEC_B: (transB ? K : N) % 4 === 0,
        VEC_Y: N % 4 === 0,
        HAS_BIAS: bias !== undefined,
        HAS_RESIDUAL: residual !== undefined,
        ACT: ACTIVATIONS[activation],
        B_F16: b.dtype === 'f16',
      },
    },
    {
      a,
      b,
      a4: wholeBuffer(gpu, 'a', a),
      b4: wholeBuffer(gpu, 'b', b),
      b_halves4: wholeBuffer(gpu, 'b', b),
      bias: wholeBuffer(gpu, 'bias', bias ?? placeholder(gpu)),
      residual: wholeBuffer(gpu, 'residual', residual ?? placeholder(gpu)),
      y: wholeBuffer(gpu, 'output', y),
      params: {
        M,
        N,
        K,
        alpha,
        batch_shape: padFront(layout.shape, 1),
        a_batch_strides: padFront(layout.aStrides, 0),
        b_batch_strides: padFront(layout.bStrides, 0),
        residual_size: Math.max(residual?.size ?? 1, 1),
      },
    },
    [Math.ceil(N / (tile.wgX * tile.tn)), Math.ceil(M / (tile.wgY * tile.tm)), numel(batch)],
  );
  return y;
}

/**
 * Times the matmul variants on `shapes` ([M, K, N] each; all timed together)
 * and makes the fastest the default for this device. On CPU (fallback)
 * adapters only the `direct` variants are candidates: the `tiled` ones are
 * several times slower there and cost seconds each to time.
 */
export async function tuneMatmul(
  gpu: Gpu,
  shapes: readonly (readonly [number, number, number])[] = MATMUL_TUNING_SHAPES,
  variants: readonly string[] = MATMUL_VARIANTS.filter((v) => !gpu.adapter.isCpu || v.startsWith('direct-')),
): Promise<SweepResult> {
  const candidates = variants.filter((v) => tileProblem(gpu, parseVariant(v)) === undefined);
  if (candidates.length === 0) throw new Error(`tuneMatmul: none of the variants ${variants.join(', ')} fits this device`);
  // Small exactly representable values: no denormals or NaNs that would skew CPU timings.
  const fill = (n: number, period: number) => Float32Array.from({ length: n }, (_, i) => ((i % period) - period / 2) / period);
  const problems = shapes.map(([M, K, N]) => ({
    a: Tensor.fromArray(gpu, fill(M * K, 7), [M, K]),
    b: Tensor.fromArray(gpu, fill(K * N, 5), [K, N]),
    y: Tensor.empty(gpu, [M, N]),
  }));
  try {
    return await sweepVariants(
      gpu,
      TUNING_KEY,
      candidates,
      (variant) => {
        for (const p of problems) matmul(gpu, p.a, p.b, { out: p.y, variant });
      },
      { check: (variant) => checkMatmulVariant(gpu, variant) },
    );
  } finally {
    for (const p of problems) for (const t of [p.a, p.b, p.y]) t.dispose();
  }
}

/**
 * The tuner's check of a variant on this adapter: a vec4-aligned product
 * (37×64 · 64×72, the vector paths the timed shapes take) and a ragged one
 * (29×51 · 51×45 with B stored transposed and a bias: scalar paths, partial
 * tiles and the K tail), each against a float64 product on the CPU.
 */
export async function checkMatmulVariant(gpu: Gpu, variant: string): Promise<string | undefined> {
  const problems = [
    { M: 37, K: 64, N: 72, transB: false, withBias: false },
    { M: 29, K: 51, N: 45, transB: true, withBias: true },
  ];
  for (const [index, { M, K, N, transB, withBias }] of problems.entries()) {
    const aData = checkValues(M * K, 11 + index);
    const bData = checkValues(K * N, 23 + index);
    const biasData = checkValues(N, 37 + index);
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = withBias ? biasData[j] : 0;
        for (let k = 0; k < K; k++) sum += aData[i * K + k] * (transB ? bData[j * K + k] : bData[k * N + j]);
        want[i * N + j] = sum;
      }
    }
    const a = Tensor.fromArray(gpu, aData, [M, K]);
    const b = Tensor.fromArray(gpu, bData, transB ? [N, K] : [K, N]);
    const bias = withBias ? Tensor.fromArray(gpu, biasData, [N]) : undefined;
    let y: Tensor | undefined;
    let got: Float32Array;
    try {
      y = matmul(gpu, a, b, { transB, bias, variant });
      got = (await y.read()) as Float32Array;
    } finally {
      for (const t of [a, b, bias, y]) t?.dispose();
    }
    const problem = compareVariantOutput(TUNING_KEY, variant, got, want);
    if (problem) return `${M}x${K}x${N}${transB ? ' transB' : ''}${withBias ? ' +bias' : ''}: ${problem}`;
  }
  return undefined;
}
