// SAM2 (SAM 2.1, Hiera backbone) image-path architecture, inferred from the
// official `SAM2Base.state_dict()` key names and shapes of a checkpoint:
//   image_encoder.trunk.*   Hiera (patch embed, windowed pos embed, blocks)
//   image_encoder.neck.*    FpnNeck (1×1 lateral convs, convs.0 on stride 32)
//   sam_mask_decoder.conv_s0 / conv_s1   high-res feature projections
//   no_mem_embed            added to the stride-16 map for single images
//
// Shapes give the embed dim, the blocks per stage (a block whose dim changes
// carries `proj`), the background / window pos-embed sizes, the neck width
// and channel list. They do NOT give the head count, the global-attention
// blocks, the window sizes after stage 1 or the image size: those come from a
// config (the caller's, else the file's `__metadata__.config`), else from the
// four published sam2.1 configs (matched on embed dim + stages), else the
// inference throws naming what is missing.

import type { TensorShapes } from '../clip/config.js';
import { sameShape } from '../../util/shape.js';

export type Sam2Variant = 'tiny' | 'small' | 'base_plus' | 'large' | 'custom';

export interface HieraConfig {
  embedDim: number;
  /** Heads of stage 1 (doubled at each stage). */
  numHeads: number;
  /** Blocks per stage. */
  stages: number[];
  /** Blocks with full (global) attention. */
  globalAttBlocks: number[];
  /** Window side per stage (before the one-block lag). */
  windowSpec: number[];
  /** pos_embed's spatial size [h, w] (bicubic-resized to the stride-4 map). */
  bkgSize: [number, number];
  /** How many stage transitions pool (the first qPool ones). */
  qPool: number;
}

export interface HieraBlockSpec {
  index: number;
  dimIn: number;
  dimOut: number;
  heads: number;
  /** Window side; 0 = global attention over the whole map. */
  window: number;
  /** Queries and the shortcut are max-pooled 2×2 (the first block of stages 2..qPool+1). */
  qPool: boolean;
}

export interface Sam2NeckConfig {
  /** d_model: the width of every FPN level and of the decoder. */
  dModel: number;
  /** Trunk channels, stride 32 first (= convs[k]'s input). */
  backboneChannelList: number[];
  /** Levels (0 = stride 4) that receive the nearest ×2 top-down path. */
  fpnTopDownLevels: number[];
  /** Levels dropped from the end (1: the stride-32 level). */
  scalp: number;
}

export interface Sam2ImageConfig {
  variant: Sam2Variant;
  /** Square model input side S. */
  imageSize: number;
  trunk: HieraConfig;
  neck: Sam2NeckConfig;
  /** Where the non-shape facts came from. */
  from: 'config' | 'variant table';
}

/** The four published sam2.1 trunks (sam2/configs/sam2.1/*.yaml; unset values are Hiera's defaults). */
const VARIANTS: Record<Exclude<Sam2Variant, 'custom'>, Omit<HieraConfig, 'qPool'>> = {
  tiny: { embedDim: 96, numHeads: 1, stages: [1, 2, 7, 2], globalAttBlocks: [5, 7, 9], windowSpec: [8, 4, 14, 7], bkgSize: [7, 7] },
  small: { embedDim: 96, numHeads: 1, stages: [1, 2, 11, 2], globalAttBlocks: [7, 10, 13], windowSpec: [8, 4, 14, 7], bkgSize: [7, 7] },
  base_plus: { embedDim: 112, numHeads: 2, stages: [2, 3, 16, 3], globalAttBlocks: [12, 16, 20], windowSpec: [8, 4, 14, 7], bkgSize: [14, 14] },
  large: { embedDim: 144, numHeads: 2, stages: [2, 6, 36, 4], globalAttBlocks: [23, 33, 43], windowSpec: [8, 4, 16, 8], bkgSize: [7, 7] },
};

const DEFAULT_IMAGE_SIZE = 1024;
const DEFAULT_Q_POOL = 3;
const PATCH_KERNEL = 7;
const MLP_RATIO = 4;
const TRUNK = 'image_encoder.trunk.';
const NECK = 'image_encoder.neck.';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** The per-block schedule of hieradet.Hiera: dims and heads double at stage starts; the window lags one block. */
export function hieraBlocks(c: HieraConfig): HieraBlockSpec[] {
  const stageEnds = c.stages.map((_, i) => c.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const qPoolBlocks = stageEnds.slice(0, -1).map((e) => e + 1).slice(0, c.qPool);
  const depth = stageEnds.at(-1)! + 1;
  const blocks: HieraBlockSpec[] = [];
  let dim = c.embedDim;
  let heads = c.numHeads;
  let stage = 0;
  for (let i = 0; i < depth; i++) {
    let dimOut = dim;
    const window = c.globalAttBlocks.includes(i) ? 0 : c.windowSpec[stage];
    if (stageEnds.includes(i - 1)) {
      dimOut = dim * 2;
      heads *= 2;
      stage++;
    }
    blocks.push({ index: i, dimIn: dim, dimOut, heads, window, qPool: qPoolBlocks.includes(i) });
    dim = dimOut;
  }
  return blocks;
}

/** Every tensor the image path reads, with its expected shape (PyTorch layouts). */
export function sam2ImageTensors(c: Sam2ImageConfig): Array<{ key: string; shape: number[] }> {
  const t = c.trunk;
  const E = t.embedDim;
  const D = c.neck.dModel;
  const out: Array<{ key: string; shape: number[] }> = [
    { key: `${TRUNK}pos_embed`, shape: [1, E, ...t.bkgSize] },
    { key: `${TRUNK}pos_embed_window`, shape: [1, E, t.windowSpec[0], t.windowSpec[0]] },
    { key: `${TRUNK}patch_embed.proj.weight`, shape: [E, 3, PATCH_KERNEL, PATCH_KERNEL] },
    { key: `${TRUNK}patch_embed.proj.bias`, shape: [E] },
  ];
  for (const b of hieraBlocks(t)) {
    const n = `${TRUNK}blocks.${b.index}.`;
    const hidden = b.dimOut * MLP_RATIO;
    out.push(
      { key: `${n}norm1.weight`, shape: [b.dimIn] },
      { key: `${n}norm1.bias`, shape: [b.dimIn] },
      { key: `${n}attn.qkv.weight`, shape: [3 * b.dimOut, b.dimIn] },
      { key: `${n}attn.qkv.bias`, shape: [3 * b.dimOut] },
      { key: `${n}attn.proj.weight`, shape: [b.dimOut, b.dimOut] },
      { key: `${n}attn.proj.bias`, shape: [b.dimOut] },
      { key: `${n}norm2.weight`, shape: [b.dimOut] },
      { key: `${n}norm2.bias`, shape: [b.dimOut] },
      { key: `${n}mlp.layers.0.weight`, shape: [hidden, b.dimOut] },
      { key: `${n}mlp.layers.0.bias`, shape: [hidden] },
      { key: `${n}mlp.layers.1.weight`, shape: [b.dimOut, hidden] },
      { key: `${n}mlp.layers.1.bias`, shape: [b.dimOut] },
    );
    if (b.dimIn !== b.dimOut) out.push({ key: `${n}proj.weight`, shape: [b.dimOut, b.dimIn] }, { key: `${n}proj.bias`, shape: [b.dimOut] });
  }
  c.neck.backboneChannelList.forEach((ch, k) => {
    out.push({ key: `${NECK}convs.${k}.conv.weight`, shape: [D, ch, 1, 1] }, { key: `${NECK}convs.${k}.conv.bias`, shape: [D] });
  });
  out.push(
    { key: 'sam_mask_decoder.conv_s0.weight', shape: [D / 8, D, 1, 1] },
    { key: 'sam_mask_decoder.conv_s0.bias', shape: [D / 8] },
    { key: 'sam_mask_decoder.conv_s1.weight', shape: [D / 4, D, 1, 1] },
    { key: 'sam_mask_decoder.conv_s1.bias', shape: [D / 4] },
    { key: 'no_mem_embed', shape: [1, 1, D] },
  );
  return out;
}

/**
 * Throws (naming the file, the key, the expected and the actual shape) unless
 * every image-path tensor of `c` is present with its shape. Other keys (prompt
 * encoder, decoder, memory modules) are not the image path's business.
 */
export function checkSam2ImageTensors(shapes: TensorShapes, c: Sam2ImageConfig, fileName: string): void {
  const problems: string[] = [];
  for (const { key, shape } of sam2ImageTensors(c)) {
    const actual = shapes.get(key);
    if (!actual) problems.push(`missing tensor "${key}" (expected shape ${fmt(shape)})`);
    else if (!sameShape(actual, shape)) problems.push(`tensor "${key}" has shape ${fmt(actual)}, expected ${fmt(shape)}`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; ... (${problems.length - 8} more)` : '');
    throw new Error(`${fileName}: does not match the SAM2 image encoder inferred from it (${describeSam2Config(c)}): ${shown}`);
  }
}

export function describeSam2Config(c: Sam2ImageConfig): string {
  const t = c.trunk;
  return `${c.variant}, Hiera E=${t.embedDim} heads ${t.numHeads} stages ${fmt(t.stages)} global ${fmt(t.globalAttBlocks)} windows ${fmt(t.windowSpec)}, neck D=${c.neck.dModel}, image ${c.imageSize}`;
}

/** The trunk part of a config object in any of the forms we meet: {trunk: …}, {"trunk(Hiera)": …}, {model: {…}}. */
function trunkSection(config: Record<string, unknown>): { trunk?: Record<string, unknown>; imageSize?: unknown } {
  const root = (typeof config.model === 'object' && config.model !== null ? config.model : config) as Record<string, unknown>;
  const key = Object.keys(root).find((k) => k === 'trunk' || k.startsWith('trunk('));
  const trunk = key ? (root[key] as Record<string, unknown>) : undefined;
  return { trunk, imageSize: root.image_size ?? config.image_size };
}

/** A config value under `name` or `name(default)` (the fixtures mark defaults so). */
function field(section: Record<string, unknown> | undefined, name: string): unknown {
  return section?.[name] ?? section?.[`${name}(default)`];
}

function intList(value: unknown, what: string, fileName: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v) && v >= 0)) throw new Error(`${fileName}: config ${what} must be a list of non-negative integers, got ${JSON.stringify(value)}`);
  return value as number[];
}

function countBlocks(shapes: TensorShapes): number {
  let depth = 0;
  for (const key of shapes.keys()) {
    const m = /^image_encoder\.trunk\.blocks\.(\d+)\./.exec(key);
    if (m) depth = Math.max(depth, Number(m[1]) + 1);
  }
  return depth;
}

function shapeOf(shapes: TensorShapes, key: string, rank: number, fileName: string): readonly number[] {
  const s = shapes.get(key);
  if (!s) throw new Error(`${fileName}: missing tensor "${key}" (needed to infer the SAM2 image encoder)`);
  if (s.length !== rank) throw new Error(`${fileName}: tensor "${key}" has shape ${fmt(s)}, expected rank ${rank}`);
  return s;
}

export function parseSam2ConfigJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface InferSam2Options {
  /** A parsed config (config.json / metadata): heads, global blocks, windows, image size. */
  config?: Record<string, unknown>;
  /** Overrides the model input side (multiple of 32). */
  imageSize?: number;
}

/** The image-path architecture of a SAM2 checkpoint from its key shapes (+ config for what shapes cannot say). */
export function inferSam2Config(shapes: TensorShapes, fileName: string, options: InferSam2Options = {}): Sam2ImageConfig {
  const patch = shapes.get(`${TRUNK}patch_embed.proj.weight`);
  if (!patch) {
    const listed = [...shapes.keys()].slice(0, 6).map((k) => `"${k}"`).join(', ');
    throw new Error(`${fileName}: not a SAM2 (Hiera) checkpoint: no "${TRUNK}patch_embed.proj.weight" (first keys: ${listed})`);
  }
  const E = shapeOf(shapes, `${TRUNK}patch_embed.proj.weight`, 4, fileName)[0];
  const depth = countBlocks(shapes);
  if (depth === 0) throw new Error(`${fileName}: no "${TRUNK}blocks.N.*" tensors`);
  // A stage starts at block 0 and at every block that changes the width (it has a shortcut projection).
  const starts = [0];
  for (let i = 1; i < depth; i++) if (shapes.has(`${TRUNK}blocks.${i}.proj.weight`)) starts.push(i);
  const stages = starts.map((s, k) => (starts[k + 1] ?? depth) - s);
  const bkg = shapeOf(shapes, `${TRUNK}pos_embed`, 4, fileName);
  const win0 = shapeOf(shapes, `${TRUNK}pos_embed_window`, 4, fileName)[2];
  const convCount = [0, 1, 2, 3, 4, 5, 6, 7].filter((k) => shapes.has(`${NECK}convs.${k}.conv.weight`)).length;
  if (convCount === 0) throw new Error(`${fileName}: missing tensor "${NECK}convs.0.conv.weight" (needed to infer the FPN neck)`);
  const convs = Array.from({ length: convCount }, (_, k) => shapeOf(shapes, `${NECK}convs.${k}.conv.weight`, 4, fileName));
  const neck: Sam2NeckConfig = { dModel: convs[0][0], backboneChannelList: convs.map((s) => s[1]), fpnTopDownLevels: [2, 3], scalp: 1 };

  const given = options.config;
  const { trunk: section, imageSize: configImageSize } = given ? trunkSection(given) : { trunk: undefined, imageSize: undefined };
  const known = (Object.keys(VARIANTS) as Array<keyof typeof VARIANTS>).find((v) => VARIANTS[v].embedDim === E && sameShape(VARIANTS[v].stages, stages));
  const numHeads = field(section, 'num_heads');
  const globalAtt = intList(field(section, 'global_att_blocks'), 'global_att_blocks', fileName);
  const windowSpec = intList(field(section, 'window_spec'), 'window_spec', fileName);
  const configStages = intList(field(section, 'stages'), 'stages', fileName);
  if (configStages && !sameShape(configStages, stages)) {
    throw new Error(`${fileName}: config stages ${fmt(configStages)} disagree with the checkpoint's blocks (stages ${fmt(stages)} from the blocks that carry "proj")`);
  }
  const fromConfig = numHeads !== undefined && globalAtt !== undefined;
  let trunk: HieraConfig;
  if (fromConfig) {
    if (!Number.isInteger(numHeads) || (numHeads as number) < 1) throw new Error(`${fileName}: config num_heads must be a positive integer, got ${JSON.stringify(numHeads)}`);
    trunk = {
      embedDim: E,
      numHeads: numHeads as number,
      stages,
      globalAttBlocks: globalAtt,
      windowSpec: windowSpec ?? (known ? VARIANTS[known].windowSpec : [8, 4, 14, 7]),
      bkgSize: [bkg[2], bkg[3]],
      qPool: (field(section, 'q_pool') as number | undefined) ?? DEFAULT_Q_POOL,
    };
  } else if (known) {
    trunk = { ...VARIANTS[known], stages, bkgSize: [bkg[2], bkg[3]], qPool: DEFAULT_Q_POOL };
  } else {
    throw new Error(
      `${fileName}: a Hiera trunk with embed dim ${E} and stages ${fmt(stages)} is none of the published SAM2 models ` +
        `(${Object.entries(VARIANTS).map(([k, v]) => `${k}: ${v.embedDim}/${fmt(v.stages)}`).join(', ')}); ` +
        'its head count and global-attention blocks must come from a config (num_heads, global_att_blocks)',
    );
  }
  if (trunk.windowSpec.length !== stages.length) throw new Error(`${fileName}: window_spec ${fmt(trunk.windowSpec)} needs one entry per stage (${stages.length})`);
  if (trunk.windowSpec[0] !== win0) throw new Error(`${fileName}: window_spec[0] = ${trunk.windowSpec[0]} but "${TRUNK}pos_embed_window" is ${win0}×${win0}`);
  if (neck.backboneChannelList.length !== stages.length) {
    throw new Error(`${fileName}: the neck has ${convCount} lateral convs but the trunk has ${stages.length} stages`);
  }
  const imageSize = options.imageSize ?? (configImageSize as number | undefined) ?? DEFAULT_IMAGE_SIZE;
  if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize % 32 !== 0) {
    throw new Error(`${fileName}: image size ${imageSize} must be a positive multiple of 32 (the stride-32 level is upsampled onto stride 16)`);
  }
  if ((imageSize / 4) % win0 !== 0) throw new Error(`${fileName}: image size ${imageSize}: S/4 = ${imageSize / 4} must be a multiple of the ${win0}×${win0} window pos embed`);
  const c: Sam2ImageConfig = { variant: known ?? 'custom', imageSize, trunk, neck, from: fromConfig ? 'config' : 'variant table' };
  checkSam2ImageTensors(shapes, c, fileName);
  return c;
}
