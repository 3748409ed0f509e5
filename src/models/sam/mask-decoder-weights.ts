// The SAM / SAM2 mask decoder's weights: the configuration, the table of every
// tensor the decoder needs with its PyTorch shape, the sizes inferred from a
// checkpoint's shapes, the check that names every bad key, and SAM2's loader.
//
// Weights are plain named host tensors with the PyTorch module names of
// segment_anything / sam2, prefixes `prompt_encoder.` and `mask_decoder.`
// (SAM2 checkpoints' `sam_` prefix dropped), Linear [out, in], Conv2d
// [out, in, kh, kw], ConvTranspose2d [in, out, kh, kw]; the two-way
// transformer's MLP is `mlp.lin1` / `mlp.lin2` (SAM2's `mlp.layers.0/1`
// renamed). SamMaskDecoder.create (mask-decoder.ts) checks every key and
// shape with checkSamDecoderWeights, then uploads.

import type { SafetensorsFile } from '../../io/safetensors.js';
import type { HostTensor } from './prompt-encoder.js';

export interface SamDecoderConfig {
  /** Transformer width D (256 for SAM / MobileSAM / SAM2). */
  embedDim: number;
  /** The prompt frame S (model input side): 1024, or the SAM2 fixture's 256. */
  imageSize: number;
  /** Image embedding side h = w = S/16. */
  embeddingSize: number;
  /** Mask tokens M: 1 single-mask token + 3 multimask tokens. */
  numMaskTokens: number;
  depth: number;
  heads: number;
  /** Internal width of the cross attentions (D / downsample rate 2). */
  crossDim: number;
  mlpDim: number;
  iouHiddenDim: number;
  maskInChans: number;
  /** SAM2: sigmoid on the IoU head. */
  iouSigmoid: boolean;
  /** SAM2: object-score token (token 0) and its MLP head. */
  objectScore: boolean;
  /** SAM2: high-resolution features added in the upscaling (conv_s0/conv_s1 weights present). */
  highResFeatures: boolean;
  /** SAM2: single-mask output falls back to the best multimask token when token 0 is unstable. */
  dynamicMultimask?: { delta: number; threshold: number };
}

export interface SamDecoderWeights {
  readonly config: SamDecoderConfig;
  /** Canonical name → host tensor (see this file's header for the names and layouts). */
  readonly tensors: ReadonlyMap<string, HostTensor>;
}

type KeyShape = { key: string; shape: number[] };

/** Every tensor the decoder needs, with its PyTorch shape. */
export function samDecoderKeys(c: SamDecoderConfig): KeyShape[] {
  const D = c.embedDim;
  const keys: KeyShape[] = [];
  const add = (key: string, shape: number[]) => keys.push({ key, shape });
  const linear = (name: string, inDim: number, outDim: number) => {
    add(`${name}.weight`, [outDim, inDim]);
    add(`${name}.bias`, [outDim]);
  };
  const attention = (name: string, inner: number) => {
    for (const p of ['q_proj', 'k_proj', 'v_proj']) linear(`${name}.${p}`, D, inner);
    linear(`${name}.out_proj`, inner, D);
  };
  const norm = (name: string, n: number) => {
    add(`${name}.weight`, [n]);
    add(`${name}.bias`, [n]);
  };
  const mlp = (name: string, dims: number[]) => dims.slice(1).forEach((out, i) => linear(`${name}.layers.${i}`, dims[i], out));
  const pe = 'prompt_encoder';
  const m4 = c.maskInChans / 4;
  add(`${pe}.pe_layer.positional_encoding_gaussian_matrix`, [2, D / 2]);
  for (let i = 0; i < 4; i++) add(`${pe}.point_embeddings.${i}.weight`, [1, D]);
  add(`${pe}.not_a_point_embed.weight`, [1, D]);
  add(`${pe}.no_mask_embed.weight`, [1, D]);
  add(`${pe}.mask_downscaling.0.weight`, [m4, 1, 2, 2]);
  add(`${pe}.mask_downscaling.0.bias`, [m4]);
  norm(`${pe}.mask_downscaling.1`, m4);
  add(`${pe}.mask_downscaling.3.weight`, [c.maskInChans, m4, 2, 2]);
  add(`${pe}.mask_downscaling.3.bias`, [c.maskInChans]);
  norm(`${pe}.mask_downscaling.4`, c.maskInChans);
  add(`${pe}.mask_downscaling.6.weight`, [D, c.maskInChans, 1, 1]);
  add(`${pe}.mask_downscaling.6.bias`, [D]);
  const md = 'mask_decoder';
  add(`${md}.iou_token.weight`, [1, D]);
  add(`${md}.mask_tokens.weight`, [c.numMaskTokens, D]);
  if (c.objectScore) add(`${md}.obj_score_token.weight`, [1, D]);
  for (let i = 0; i < c.depth; i++) {
    const l = `${md}.transformer.layers.${i}`;
    attention(`${l}.self_attn`, D);
    attention(`${l}.cross_attn_token_to_image`, c.crossDim);
    attention(`${l}.cross_attn_image_to_token`, c.crossDim);
    linear(`${l}.mlp.lin1`, D, c.mlpDim);
    linear(`${l}.mlp.lin2`, c.mlpDim, D);
    for (let k = 1; k <= 4; k++) norm(`${l}.norm${k}`, D);
  }
  attention(`${md}.transformer.final_attn_token_to_image`, c.crossDim);
  norm(`${md}.transformer.norm_final_attn`, D);
  add(`${md}.output_upscaling.0.weight`, [D, D / 4, 2, 2]);
  add(`${md}.output_upscaling.0.bias`, [D / 4]);
  norm(`${md}.output_upscaling.1`, D / 4);
  add(`${md}.output_upscaling.3.weight`, [D / 4, D / 8, 2, 2]);
  add(`${md}.output_upscaling.3.bias`, [D / 8]);
  if (c.highResFeatures) {
    add(`${md}.conv_s0.weight`, [D / 8, D, 1, 1]);
    add(`${md}.conv_s0.bias`, [D / 8]);
    add(`${md}.conv_s1.weight`, [D / 4, D, 1, 1]);
    add(`${md}.conv_s1.bias`, [D / 4]);
  }
  for (let i = 0; i < c.numMaskTokens; i++) mlp(`${md}.output_hypernetworks_mlps.${i}`, [D, D, D, D / 8]);
  mlp(`${md}.iou_prediction_head`, [D, c.iouHiddenDim, c.iouHiddenDim, c.numMaskTokens]);
  if (c.objectScore) mlp(`${md}.pred_obj_score_head`, [D, D, D, 1]);
  return keys;
}

/** Options the weights cannot tell. */
export interface SamDecoderConfigOptions {
  imageSize: number;
  /** Attention heads (8 in every SAM and SAM2 model). */
  heads?: number;
  iouSigmoid: boolean;
  dynamicMultimask?: { delta: number; threshold: number };
}

/** Sizes from the tensors' shapes (Error naming the first missing key), flags from `opts`. */
export function inferSamDecoderConfig(source: string, tensors: ReadonlyMap<string, HostTensor>, opts: SamDecoderConfigOptions): SamDecoderConfig {
  const shape = (key: string): readonly number[] => {
    const t = tensors.get(key);
    if (!t) throw new Error(`${source}: missing tensor "${key}" (needed to infer the SAM decoder's sizes)`);
    return t.shape;
  };
  let depth = 0;
  while (tensors.has(`mask_decoder.transformer.layers.${depth}.norm1.weight`)) depth++;
  const S = opts.imageSize;
  if (!Number.isInteger(S) || S <= 0 || S % 16 !== 0) throw new Error(`${source}: image size ${S} must be a positive multiple of 16`);
  return {
    embedDim: 2 * shape('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix')[1],
    imageSize: S,
    embeddingSize: S / 16,
    numMaskTokens: shape('mask_decoder.mask_tokens.weight')[0],
    depth,
    heads: opts.heads ?? 8,
    crossDim: shape('mask_decoder.transformer.final_attn_token_to_image.q_proj.weight')[0],
    mlpDim: depth > 0 ? shape('mask_decoder.transformer.layers.0.mlp.lin1.weight')[0] : 0,
    iouHiddenDim: shape('mask_decoder.iou_prediction_head.layers.0.weight')[0],
    maskInChans: shape('prompt_encoder.mask_downscaling.3.weight')[0],
    iouSigmoid: opts.iouSigmoid,
    objectScore: tensors.has('mask_decoder.obj_score_token.weight'),
    highResFeatures: tensors.has('mask_decoder.conv_s0.weight'),
    dynamicMultimask: opts.dynamicMultimask,
  };
}

/** Throws one Error listing every missing or misshapen tensor (at most 8 shown). */
export function checkSamDecoderWeights(source: string, w: SamDecoderWeights): void {
  const c = w.config;
  const problems: string[] = [];
  if (c.depth < 1) problems.push('no two-way transformer layers (mask_decoder.transformer.layers.0.*)');
  if (c.embedDim % 8 !== 0 || c.crossDim % c.heads !== 0 || c.embedDim % c.heads !== 0) {
    problems.push(`width ${c.embedDim} / cross width ${c.crossDim} do not split into ${c.heads} heads and D/8 channels`);
  }
  for (const { key, shape } of samDecoderKeys(c)) {
    const t = w.tensors.get(key);
    if (!t) problems.push(`missing tensor "${key}" (expected shape [${shape.join(', ')}])`);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) problems.push(`tensor "${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    else if (t.data.length !== shape.reduce((a, b) => a * b, 1)) problems.push(`tensor "${key}" holds ${t.data.length} values for shape [${shape.join(', ')}]`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; ... (${problems.length - 8} more)` : '');
    throw new Error(`${source}: not a SAM mask decoder of width ${c.embedDim}: ${shown}`);
  }
}

/** SAM2's dynamic single-mask rule as configured by build_sam2 (apply_postprocessing=True). */
export const SAM2_DYNAMIC_MULTIMASK = { delta: 0.05, threshold: 0.98 } as const;

export interface LoadSam2DecoderOptions {
  /** The model input side S; default: the file's `__metadata__.config` image_size, else 1024. */
  imageSize?: number;
}

/** Reads `sam_prompt_encoder.*` and `sam_mask_decoder.*` of a SAM2 checkpoint (SAM2Base state_dict names). */
export async function loadSam2DecoderWeights(file: SafetensorsFile, opts: LoadSam2DecoderOptions = {}): Promise<SamDecoderWeights> {
  const tensors = new Map<string, HostTensor>();
  for (const [key, info] of file.tensors) {
    const m = /^sam_(prompt_encoder|mask_decoder)\.(.*)$/.exec(key);
    if (!m) continue;
    const name = `${m[1]}.${m[2].replace(/\.mlp\.layers\.0\./, '.mlp.lin1.').replace(/\.mlp\.layers\.1\./, '.mlp.lin2.')}`;
    tensors.set(name, { data: await file.read(key), shape: [...info.shape] });
  }
  let imageSize = opts.imageSize;
  if (imageSize === undefined) {
    const text = file.metadata.config;
    const parsed = text ? (JSON.parse(text) as { image_size?: number; model?: { image_size?: number } }) : {};
    imageSize = parsed.image_size ?? parsed.model?.image_size ?? 1024;
  }
  const config = inferSamDecoderConfig(file.name, tensors, { imageSize, iouSigmoid: true, dynamicMultimask: { ...SAM2_DYNAMIC_MULTIMASK } });
  const weights = { config, tensors };
  checkSamDecoderWeights(file.name, weights);
  return weights;
}
