// SAM2's image path up to the mask decoder's inputs, as SAM2ImagePredictor.set_image
// runs it (official sam2 at 2b90b9f; see ../shared/fixtures/sam2/README.md):
//   preprocess: RGB uint8 → /255 → antialiased bilinear resize to S×S (stretched)
//               → Normalize(ImageNet mean, std)
//   trunk (hiera.ts) → FpnNeck: level k = convs[3−k](stage k) (1×1); level 2
//               += nearest ×2 of level 3 (fpn_top_down_levels [2, 3]); levels 0, 1
//               lateral only → scalp 1 drops level 3
//   backbone_fpn[0] = conv_s0(level 0) [D/8, S/4], [1] = conv_s1(level 1) [D/4, S/8],
//   [2] = level 2 [D, S/16]
//   image_embed = level 2 + no_mem_embed; high_res_feats = backbone_fpn[0..1]
//   vision_pos_enc: the neck's sine PE of each kept level (not used by the
//   image decoder; returned on request).
// One compiled graph per (batch size, trace) is cached and reused.

import type { Gpu } from '../../device.js';
import { Tensor, shapeString } from '../../tensor.js';
import { Graph, weightBinder, type Value } from '../../graph/graph.js';
import { GraphCache } from '../../graph/graph-cache.js';
import * as ops from '../../graph/ops.js';
import { antialiasResizeRgba8 } from '../../kernels/antialias-resize.js';
import type { DecodedImage } from '../../io/image.js';
import type { SafetensorsFile } from '../../io/safetensors.js';
import { inferSam2Config, parseSam2ConfigJson, sam2ImageTensors, type InferSam2Options, type Sam2ImageConfig } from './config.js';
import { hieraPosEmbed, hieraTrunk } from './hiera.js';
import { Lifetime, disposeAll } from '../lifetime.js';

/** SAM2Transforms' Normalize (ImageNet statistics). */
export const SAM2_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const SAM2_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];
const SINE_TEMPERATURE = 10000;

export interface Sam2ImageFeatures {
  /** [N, D, S/16, S/16] = level 2 + no_mem_embed. */
  imageEmbed: Tensor;
  /** [[N, D/8, S/4, S/4], [N, D/4, S/8, S/8]] (conv_s0 / conv_s1 outputs). */
  highResFeats: [Tensor, Tensor];
  /** Sine PE [1, D, h, w] of levels 0..2, when asked for. */
  visionPosEnc?: Tensor[];
}

export interface Sam2EncodeOptions {
  /** Also return vision_pos_enc (the sine PE of the three levels). */
  posEnc?: boolean;
}

/**
 * PositionEmbeddingSine (normalize=True, scale 2π) of an h×w map with D
 * channels, [D, h, w]: channels [0, D/2) encode y, [D/2, D) x; inside a half
 * sin(p/t_k), cos(p/t_k) alternate with p = (i+1)/(n+1e-6)·2π and
 * t_k = 10000^(2k/(D/2)).
 */
export function sinePositionEncoding(d: number, h: number, w: number): Float32Array {
  const half = d / 2;
  const out = new Float32Array(d * h * w);
  for (let j = 0; j < half; j++) {
    const t = SINE_TEMPERATURE ** ((2 * Math.floor(j / 2)) / half);
    const f = j % 2 === 0 ? Math.sin : Math.cos;
    for (let y = 0; y < h; y++) {
      const py = ((y + 1) / (h + 1e-6)) * 2 * Math.PI;
      for (let x = 0; x < w; x++) {
        const px = ((x + 1) / (w + 1e-6)) * 2 * Math.PI;
        out[(j * h + y) * w + x] = f(py / t);
        out[((half + j) * h + y) * w + x] = f(px / t);
      }
    }
  }
  return out;
}

export class Sam2ImageEncoder {
  private readonly graphs = new GraphCache();
  private readonly lifetime = new Lifetime('Sam2ImageEncoder', 'the encoder');

  private constructor(
    readonly gpu: Gpu,
    readonly config: Sam2ImageConfig,
    /** Official key → resident tensor. */
    private readonly params: Map<string, Tensor>,
    /** hieraPosEmbed for the configured image size [1, S/4, S/4, E]. */
    private readonly trunkPos: Tensor,
  ) {}

  /**
   * Reads the image path of a SAM2 checkpoint (official state_dict keys); the
   * file stays open. Architecture from the shapes + options.config, else the
   * file's `__metadata__.config`, else the published variants. Throws, naming
   * the key, expected and actual shape, before uploading anything.
   */
  static async fromSafetensors(gpu: Gpu, file: SafetensorsFile, options: InferSam2Options = {}): Promise<Sam2ImageEncoder> {
    const shapes = new Map([...file.tensors].map(([k, info]) => [k, info.shape] as const));
    const config = inferSam2Config(shapes, file.name, { ...options, config: options.config ?? parseSam2ConfigJson(file.metadata.config) });
    const params = new Map<string, Tensor>();
    try {
      let posEmbed: Float32Array | undefined;
      let windowEmbed: Float32Array | undefined;
      for (const { key, shape } of sam2ImageTensors(config)) {
        const data = await file.read(key);
        if (key === 'image_encoder.trunk.pos_embed') posEmbed = data;
        else if (key === 'image_encoder.trunk.pos_embed_window') windowEmbed = data;
        else if (key.endsWith('.attn.qkv.weight') || key.endsWith('.attn.qkv.bias')) {
          // Rows [q; k; v] (each dimOut rows, heads then head dims), as hiera.ts reads them.
          const rows = shape[0] / 3;
          const rowLength = data.length / shape[0];
          (['q', 'k', 'v'] as const).forEach((part, i) => {
            const name = key.replace('.attn.qkv.', `.attn.${part}.`);
            params.set(name, Tensor.fromArray(gpu, data.subarray(i * rows * rowLength, (i + 1) * rows * rowLength), [rows, ...shape.slice(1)]));
          });
        } else params.set(key, Tensor.fromArray(gpu, data, shape));
      }
      const t = config.trunk;
      const side = config.imageSize / 4;
      const pos = hieraPosEmbed(posEmbed!, t.bkgSize, windowEmbed!, t.windowSpec[0], t.embedDim, side, side);
      return new Sam2ImageEncoder(gpu, config, params, Tensor.fromArray(gpu, pos, [1, side, side, t.embedDim]));
    } catch (e) {
      for (const p of params.values()) p.dispose();
      throw e;
    }
  }

  /** The model input [1, 3, S, S] of an RGB(A) image: SAM2Transforms (antialiased resize, stretched, normalized). */
  preprocess(image: DecodedImage): Tensor {
    this.lifetime.check('preprocess');
    const S = this.config.imageSize;
    return antialiasResizeRgba8(this.gpu, image, { size: [S, S], mean: SAM2_MEAN, std: SAM2_STD });
  }

  /** input [N, 3, S, S] (preprocessed) → the decoder's image inputs (owned by the caller). */
  encode(input: Tensor, options: Sam2EncodeOptions = {}): Sam2ImageFeatures {
    const out = this.run('encode', input, false);
    const features: Sam2ImageFeatures = { imageEmbed: out.image_embed, highResFeats: [out.high_res_feats_0, out.high_res_feats_1] };
    if (options.posEnc) features.visionPosEnc = this.visionPosEnc();
    return features;
  }

  /** Every image-path intermediate, named as the golden fixture names them (owned by the caller). */
  trace(input: Tensor): Record<string, Tensor> {
    const out = this.run('trace', input, true);
    out.trunk_pos_embed = this.copy(this.trunkPos);
    this.visionPosEnc().forEach((t, i) => (out[`vision_pos_enc_${i}`] = t));
    return out;
  }

  /** vision_pos_enc of levels 0..2, [1, D, S/4 | S/8 | S/16, …] (new tensors, computed on request: 16M values at 1024). */
  visionPosEnc(): Tensor[] {
    this.lifetime.check('visionPosEnc');
    const D = this.config.neck.dModel;
    return [4, 8, 16].map((stride) => {
      const side = this.config.imageSize / stride;
      return Tensor.fromArray(this.gpu, sinePositionEncoding(D, side, side), [1, D, side, side]);
    });
  }

  dispose(): void {
    this.graphs.dispose();
    disposeAll(this.params);
    this.trunkPos.dispose();
    this.lifetime.end();
  }

  private copy(t: Tensor): Tensor {
    const c = Tensor.empty(this.gpu, t.shape, t.dtype);
    this.gpu.commandEncoder().copyBufferToBuffer(t.buffer, 0, c.buffer, 0, Math.ceil(t.byteLength / 4) * 4);
    return c;
  }

  private run(op: string, input: Tensor, trace: boolean): Record<string, Tensor> {
    this.lifetime.check(op);
    const S = this.config.imageSize;
    if (input.dtype !== 'f32' || input.rank !== 4 || input.shape[1] !== 3 || input.shape[2] !== S || input.shape[3] !== S || input.shape[0] < 1) {
      throw new Error(`Sam2ImageEncoder.${op}: input must be f32 [N, 3, ${S}, ${S}] (preprocess() output), got ${input.dtype} ${shapeString(input.shape)}`);
    }
    const N = input.shape[0];
    return this.graphs.get(`${N}|${trace}`, () => this.buildGraph(N, trace)).run({ images: input });
  }

  private buildGraph(N: number, trace: boolean): Graph {
    const c = this.config;
    const S = c.imageSize;
    const D = c.neck.dModel;
    const g = new Graph(this.gpu, `sam2.image[N=${N}]`);
    const { p } = weightBinder(g, this.params, 'Sam2ImageEncoder');
    const images = g.input('images', [N, 3, S, S]);
    const trunk = hieraTrunk(g, p, images, g.weight('trunk_pos_embed', this.trunkPos), c.trunk);
    // FpnNeck.forward: from the coarsest level down; convs[n − i] acts on stage i.
    const n = trunk.stages.length - 1;
    const levels: Value[] = [];
    let previous: Value | undefined;
    for (let i = n; i >= 0; i--) {
      const conv = `image_encoder.neck.convs.${n - i}.conv`;
      const lateral = ops.conv2d(g, trunk.stages[i], p(`${conv}.weight`), { bias: p(`${conv}.bias`) });
      if (c.neck.fpnTopDownLevels.includes(i) && previous) {
        const [, , h, w] = previous.shape;
        previous = ops.add(g, lateral, ops.resize(g, previous, [2 * h, 2 * w], { mode: 'nearest' }));
      } else previous = lateral;
      levels[i] = previous;
    }
    const kept = levels.slice(0, levels.length - c.neck.scalp);
    const fpn0 = ops.conv2d(g, kept[0], p('sam_mask_decoder.conv_s0.weight'), { bias: p('sam_mask_decoder.conv_s0.bias') });
    const fpn1 = ops.conv2d(g, kept[1], p('sam_mask_decoder.conv_s1.weight'), { bias: p('sam_mask_decoder.conv_s1.bias') });
    const fpn2 = kept[kept.length - 1];
    const imageEmbed = ops.add(g, fpn2, g.reshape(p('no_mem_embed'), [1, D, 1, 1]));
    g.output('image_embed', imageEmbed);
    g.output('high_res_feats_0', fpn0);
    g.output('high_res_feats_1', fpn1);
    if (trace) {
      g.output('trunk_patch_embed', trunk.patchEmbed);
      g.output('trunk_block_input', trunk.blockInput);
      trunk.blocks.forEach((b, i) => g.output(`trunk_block_${i}`, b));
      trunk.stages.forEach((s, i) => g.output(`trunk_stage_${i + 1}`, s));
      g.output('neck_fpn_1', kept[1]);
      g.output('backbone_fpn_0', fpn0);
      g.output('backbone_fpn_1', fpn1);
      g.output('backbone_fpn_2', fpn2);
    }
    return g;
  }
}
