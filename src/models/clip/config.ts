// CLIP (ViT image tower + text transformer) architecture, inferred from the
// tensor names and shapes of a checkpoint, plus the map from its key layout
// onto one internal set of parameter names the model is built from.
//
// Two key layouts are recognised:
// - 'openai': the official openai/CLIP (and OpenCLIP) state_dict —
//   `visual.conv1.weight`, `visual.transformer.resblocks.N.attn.in_proj_weight`
//   (q, k, v rows fused), `text_projection` / `visual.proj` as [in, out].
// - 'hf': Hugging Face `CLIPModel` — `vision_model.encoder.layers.N.self_attn.q_proj.weight`,
//   `visual_projection.weight` / `text_projection.weight` as Linear [out, in].
//
// Shapes give every size except the attention head counts (a head split does
// not show in any tensor). Those come from a config (safetensors
// `__metadata__.config`, or a config.json given by the caller); without one the
// official `build_model()` rule width / 64 is used for both towers.

export type ClipKeyLayout = 'openai' | 'hf';

/**
 * The MLP activation of every block: 'quickGelu' (x·σ(1.702x)) for OpenAI's
 * checkpoints, 'gelu' (exact, erf) for OpenCLIP models trained without
 * QuickGELU (e.g. the LAION ViT-B-32 / ViT-H-14) and their Hugging Face
 * conversions (`hidden_act: "gelu"`).
 */
export type ClipActivation = 'quickGelu' | 'gelu';

export interface ClipTowerConfig {
  width: number;
  layers: number;
  heads: number;
  /** MLP hidden size (4·width in every released CLIP). */
  mlpHidden: number;
}

export interface ClipConfig {
  layout: ClipKeyLayout;
  embedDim: number;
  vision: ClipTowerConfig & { patchSize: number; grid: number; imageResolution: number; tokens: number };
  text: ClipTowerConfig & { contextLength: number; vocabSize: number };
  /** LayerNorm epsilon of every norm (1e-5 in CLIP). */
  layerNormEps: number;
  /** Where the head counts came from: 'config' or the width/64 rule. */
  headsFrom: { vision: 'config' | 'width/64'; text: 'config' | 'width/64' };
  /** MLP activation of both towers. */
  activation: ClipActivation;
  /** Where it came from: the caller's override, the config, or the OpenAI default (QuickGELU). */
  activationFrom: 'option' | 'config' | 'default';
}

/** What the config inference reads of a checkpoint: tensor names and shapes. */
export type TensorShapes = ReadonlyMap<string, readonly number[]>;

/**
 * One tensor of the checkpoint and the internal parameters made from it
 * (most map one to one; OpenAI's fused in_proj splits into q, k, v; HF's
 * Linear projections are transposed to [in, out]).
 */
export interface SourceTensor {
  key: string;
  shape: readonly number[];
  /** Internal name → how to derive it from the stored data. */
  targets: ReadonlyArray<{ name: string; shape: readonly number[]; from: 'copy' | 'transpose' | { rows: [number, number] } }>;
}

/** Stored tensors every layout may carry that the forward pass does not use. */
const IGNORED_KEYS: Record<ClipKeyLayout, RegExp> = {
  openai: /^$/,
  hf: /^(text_model\.embeddings\.position_ids|vision_model\.embeddings\.position_ids)$/,
};

export function detectLayout(shapes: TensorShapes, fileName: string): ClipKeyLayout {
  if (shapes.has('visual.conv1.weight')) return 'openai';
  if (shapes.has('vision_model.embeddings.patch_embedding.weight')) return 'hf';
  if ([...shapes.keys()].some((k) => k.startsWith('visual.layer1.'))) {
    throw new Error(`${fileName}: a CLIP ResNet image tower (visual.layer1.*) is not supported; only ViT towers are`);
  }
  const listed = [...shapes.keys()].slice(0, 6).map((k) => `"${k}"`).join(', ');
  throw new Error(`${fileName}: not a CLIP ViT checkpoint: neither "visual.conv1.weight" (OpenAI/OpenCLIP) nor "vision_model.embeddings.patch_embedding.weight" (Hugging Face) is present (first keys: ${listed})`);
}

/** The number of blocks: 1 + the largest N among keys `${prefix}N.`. */
function countLayers(shapes: TensorShapes, prefix: string): number {
  let layers = 0;
  for (const key of shapes.keys()) {
    if (!key.startsWith(prefix)) continue;
    const n = Number(/^(\d+)\./.exec(key.slice(prefix.length))?.[1]);
    if (Number.isInteger(n)) layers = Math.max(layers, n + 1);
  }
  return layers;
}

/** Head counts from any of the config forms CLIP checkpoints come with. */
function headsFromConfig(config: Record<string, unknown> | undefined): { vision?: number; text?: number } {
  if (!config) return {};
  const obj = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const num = (...vs: unknown[]) => vs.find((v): v is number => Number.isInteger(v) && (v as number) > 0);
  const args = obj(config.clip_constructor_args) ?? {};
  const derived = obj(config.derived) ?? {};
  const visionCfg = obj(config.vision_config) ?? obj(config.vision_cfg) ?? {};
  const textCfg = obj(config.text_config) ?? obj(config.text_cfg) ?? {};
  const visionWidth = num(visionCfg.width);
  return {
    vision: num(derived.vision_heads, config.vision_heads, args.vision_heads, visionCfg.num_attention_heads, visionCfg.heads,
      // OpenCLIP's vision_cfg gives head_width (default 64), not a count.
      visionWidth !== undefined && num(visionCfg.head_width) ? visionWidth / (visionCfg.head_width as number) : undefined),
    text: num(args.transformer_heads, config.transformer_heads, textCfg.num_attention_heads, textCfg.heads),
  };
}

const HIDDEN_ACT: Record<string, ClipActivation> = { quick_gelu: 'quickGelu', gelu: 'gelu' };

/**
 * The activation a config names, or undefined when it names none:
 * - Hugging Face `hidden_act` (top level, or in vision_config / text_config; both must agree):
 *   "quick_gelu" or "gelu";
 * - OpenCLIP model configs (`vision_cfg` / `text_cfg`): `quick_gelu: true` → QuickGELU,
 *   otherwise GELU (OpenCLIP's default act_layer is nn.GELU);
 * - `quick_gelu` as a boolean anywhere at the top level.
 * Any other hidden_act is an Error (the engine would silently compute a different model).
 */
function activationFromConfig(config: Record<string, unknown> | undefined, fileName: string): ClipActivation | undefined {
  if (!config) return undefined;
  const obj = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const named = [config.hidden_act, obj(config.vision_config).hidden_act, obj(config.text_config).hidden_act].filter((v) => v !== undefined);
  if (named.length > 0) {
    const acts = named.map((v) => {
      const act = typeof v === 'string' ? HIDDEN_ACT[v] : undefined;
      if (!act) throw new Error(`${fileName}: config hidden_act ${JSON.stringify(v)} is not supported (expected "quick_gelu" or "gelu")`);
      return act;
    });
    if (acts.some((a) => a !== acts[0])) throw new Error(`${fileName}: config gives the towers different activations (${named.join(', ')}); the engine uses one for both`);
    return acts[0];
  }
  if (typeof config.quick_gelu === 'boolean') return config.quick_gelu ? 'quickGelu' : 'gelu';
  if ('vision_cfg' in config || 'text_cfg' in config) return 'gelu';
  return undefined;
}

/** Parses `__metadata__.config` (or a config.json text); undefined when absent or not JSON. */
export function parseConfigJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The architecture of the checkpoint with these tensors. `config` is an
 * optional parsed config (metadata or config.json) for the head counts and
 * the activation; `activation` overrides both the config and the default
 * (QuickGELU, as every OpenAI checkpoint). Throws naming the file and the
 * tensor when a shape needed for inference is missing or inconsistent.
 */
export function inferClipConfig(shapes: TensorShapes, fileName: string, config?: Record<string, unknown>, activation?: ClipActivation): ClipConfig {
  if (activation !== undefined && activation !== 'quickGelu' && activation !== 'gelu') {
    throw new Error(`${fileName}: activation must be 'quickGelu' or 'gelu', got ${JSON.stringify(activation)}`);
  }
  const layout = detectLayout(shapes, fileName);
  const k = KEYS[layout];
  const need = (key: string, rank: number, what: string): readonly number[] => {
    const s = shapes.get(key);
    if (!s) throw new Error(`${fileName}: missing tensor "${key}" (needed to infer the ${what})`);
    if (s.length !== rank) throw new Error(`${fileName}: tensor "${key}" has shape [${s.join(', ')}], expected rank ${rank} (${what})`);
    return s;
  };
  const conv = need(k.conv, 4, 'vision width and patch size');
  const [visionWidth, , patchSize] = conv;
  const visionPositions = need(k.visionPos, 2, 'vision token count')[0];
  const grid = Math.round(Math.sqrt(visionPositions - 1));
  if (grid * grid + 1 !== visionPositions) {
    throw new Error(`${fileName}: tensor "${k.visionPos}" has ${visionPositions} rows, expected grid² + 1 (a square patch grid plus the class token)`);
  }
  const tokenEmbedding = need(k.tokenEmbedding, 2, 'vocabulary size and text width');
  const [vocabSize, textWidth] = tokenEmbedding;
  const contextLength = need(k.textPos, 2, 'context length')[0];
  const textProj = need(k.textProj, 2, 'embedding dimension');
  const embedDim = layout === 'openai' ? textProj[1] : textProj[0];
  const visionLayers = countLayers(shapes, k.visionBlocks);
  const textLayers = countLayers(shapes, k.textBlocks);
  if (visionLayers === 0) throw new Error(`${fileName}: no vision blocks ("${k.visionBlocks}N.*")`);
  if (textLayers === 0) throw new Error(`${fileName}: no text blocks ("${k.textBlocks}N.*")`);
  const visionMlp = need(`${k.visionBlocks}0.${k.fc}.weight`, 2, 'vision MLP size')[0];
  const textMlp = need(`${k.textBlocks}0.${k.fc}.weight`, 2, 'text MLP size')[0];
  const fromConfig = headsFromConfig(config);
  const heads = (width: number, configured: number | undefined, tower: string): number => {
    const h = configured ?? Math.max(1, Math.floor(width / 64));
    if (width % h !== 0) throw new Error(`${fileName}: ${tower} width ${width} is not divisible by ${h} attention heads`);
    return h;
  };
  const configured = activationFromConfig(config, fileName);
  return {
    layout,
    embedDim,
    vision: {
      width: visionWidth,
      layers: visionLayers,
      heads: heads(visionWidth, fromConfig.vision, 'vision'),
      mlpHidden: visionMlp,
      patchSize,
      grid,
      imageResolution: grid * patchSize,
      tokens: visionPositions,
    },
    text: {
      width: textWidth,
      layers: textLayers,
      heads: heads(textWidth, fromConfig.text, 'text'),
      mlpHidden: textMlp,
      contextLength,
      vocabSize,
    },
    layerNormEps: 1e-5,
    headsFrom: { vision: fromConfig.vision ? 'config' : 'width/64', text: fromConfig.text ? 'config' : 'width/64' },
    activation: activation ?? configured ?? 'quickGelu',
    activationFrom: activation ? 'option' : configured ? 'config' : 'default',
  };
}

// The checkpoint's tensor names per layout: those outside the blocks (a
// layer's weight and bias by their common prefix), and the blocks' prefixes.
const KEYS = {
  openai: {
    conv: 'visual.conv1.weight',
    cls: 'visual.class_embedding',
    visionPos: 'visual.positional_embedding',
    lnPre: 'visual.ln_pre',
    lnPost: 'visual.ln_post',
    visionProj: 'visual.proj',
    tokenEmbedding: 'token_embedding.weight',
    textPos: 'positional_embedding',
    lnFinal: 'ln_final',
    textProj: 'text_projection',
    visionBlocks: 'visual.transformer.resblocks.',
    textBlocks: 'transformer.resblocks.',
    fc: 'mlp.c_fc',
  },
  hf: {
    conv: 'vision_model.embeddings.patch_embedding.weight',
    cls: 'vision_model.embeddings.class_embedding',
    visionPos: 'vision_model.embeddings.position_embedding.weight',
    // "pre_layrnorm" is the Hugging Face spelling.
    lnPre: 'vision_model.pre_layrnorm',
    lnPost: 'vision_model.post_layernorm',
    visionProj: 'visual_projection.weight',
    tokenEmbedding: 'text_model.embeddings.token_embedding.weight',
    textPos: 'text_model.embeddings.position_embedding.weight',
    lnFinal: 'text_model.final_layer_norm',
    textProj: 'text_projection.weight',
    visionBlocks: 'vision_model.encoder.layers.',
    textBlocks: 'text_model.encoder.layers.',
    fc: 'mlp.fc1',
  },
} as const;

/**
 * Every tensor the checkpoint must hold, with its expected shape and the
 * internal parameters made from it. Internal names:
 *   visual.{conv, cls, pos, lnPre.{w,b}, lnPost.{w,b}, proj [W, E]}, text.{tokenEmbedding, pos, lnFinal.{w,b}, proj [W, E]},
 *   {visual|text}.blocks.N.{ln1,ln2}.{w,b}, .{q,k,v,out,fc,proj}.{w [out, in], b}, logitScale.
 */
export function sourceTensors(c: ClipConfig): SourceTensor[] {
  const list: SourceTensor[] = [];
  const copy = (key: string, shape: readonly number[], name: string) => list.push({ key, shape, targets: [{ name, shape, from: 'copy' }] });
  const transposed = (key: string, [rows, cols]: readonly number[], name: string) =>
    list.push({ key, shape: [rows, cols], targets: [{ name, shape: [cols, rows], from: 'transpose' }] });
  // A layer's `key`.weight of `shape` and `key`.bias of [shape[0]] as `name`.w and `name`.b.
  const weightAndBias = (key: string, shape: readonly number[], name: string) => {
    copy(`${key}.weight`, shape, `${name}.w`);
    copy(`${key}.bias`, [shape[0]], `${name}.b`);
  };
  const v = c.vision;
  const t = c.text;
  const E = c.embedDim;
  const blocks = (tower: 'visual' | 'text', prefix: string, { width: D, layers, mlpHidden: F }: ClipTowerConfig) => {
    for (let i = 0; i < layers; i++) {
      const p = `${prefix}${i}.`;
      const n = `${tower}.blocks.${i}.`;
      if (c.layout === 'openai') {
        const split = (key: string, shape: readonly number[], kind: 'w' | 'b') =>
          list.push({
            key,
            shape,
            targets: (['q', 'k', 'v'] as const).map((part, j) => ({ name: `${n}${part}.${kind}`, shape: kind === 'w' ? [D, D] : [D], from: { rows: [j * D, (j + 1) * D] as [number, number] } })),
          });
        split(`${p}attn.in_proj_weight`, [3 * D, D], 'w');
        split(`${p}attn.in_proj_bias`, [3 * D], 'b');
        weightAndBias(`${p}attn.out_proj`, [D, D], `${n}out`);
        for (const ln of ['ln_1', 'ln_2'] as const) {
          weightAndBias(`${p}${ln}`, [D], `${n}${ln === 'ln_1' ? 'ln1' : 'ln2'}`);
        }
        weightAndBias(`${p}mlp.c_fc`, [F, D], `${n}fc`);
        weightAndBias(`${p}mlp.c_proj`, [D, F], `${n}proj`);
      } else {
        for (const part of ['q', 'k', 'v', 'out'] as const) {
          const src = part === 'out' ? 'out_proj' : `${part}_proj`;
          weightAndBias(`${p}self_attn.${src}`, [D, D], `${n}${part}`);
        }
        for (const [src, dst] of [['layer_norm1', 'ln1'], ['layer_norm2', 'ln2']] as const) {
          weightAndBias(`${p}${src}`, [D], `${n}${dst}`);
        }
        weightAndBias(`${p}mlp.fc1`, [F, D], `${n}fc`);
        weightAndBias(`${p}mlp.fc2`, [D, F], `${n}proj`);
      }
    }
  };
  const key = KEYS[c.layout];
  // The projections: [W, E] as stored by OpenAI, [E, W] (a Linear's weight) by Hugging Face.
  const projection = (name: string, W: number, to: string) => (c.layout === 'openai' ? copy(name, [W, E], to) : transposed(name, [E, W], to));
  copy(key.conv, [v.width, 3, v.patchSize, v.patchSize], 'visual.conv');
  copy(key.cls, [v.width], 'visual.cls');
  copy(key.visionPos, [v.tokens, v.width], 'visual.pos');
  weightAndBias(key.lnPre, [v.width], 'visual.lnPre');
  blocks('visual', key.visionBlocks, v);
  weightAndBias(key.lnPost, [v.width], 'visual.lnPost');
  projection(key.visionProj, v.width, 'visual.proj');
  copy(key.tokenEmbedding, [t.vocabSize, t.width], 'text.tokenEmbedding');
  copy(key.textPos, [t.contextLength, t.width], 'text.pos');
  blocks('text', key.textBlocks, t);
  weightAndBias(key.lnFinal, [t.width], 'text.lnFinal');
  projection(key.textProj, t.width, 'text.proj');
  copy('logit_scale', [], 'logitScale');
  return list;
}

/** Whether a stored key is one the layout may carry without using it. */
export const isIgnoredKey = (layout: ClipKeyLayout, key: string) => IGNORED_KEYS[layout].test(key);
