// A trained MedFocus CLIP head outside the CLI: what `medfocus train`
// exports next to its checkpoint so that a web page (web/, or any app
// embedding the library) classifies exactly as the run does. Browser-safe.
//
// RUN/head.json (file names are relative to head.json):
//   {
//     "format": "medfocus-head", "version": 2,
//     "classes": ["benign", "malignant", "normal"],
//     "clip": "clip.safetensors",      // the CLIP checkpoint the head was trained on
//     "tensors": "head.safetensors",   // head [E, K]; prompts [P, width] or, deep, [D, P, width]
//     "prompts": 8, "deep": 0,          // VPT tokens and deep blocks (0: shallow)
//     "workSide": 256,                  // the square frame masks and images are resampled to
//     "focus": { "mode": "attention", "strength": 4, "overlayAlpha": 0.5 }
//   }
// Classification is the trainer's, step by step (trainer.ts FocusPipeline +
// backbones.ts ClipPromptClassifier, which this module runs): the image is
// stretched to workSide² (nothing cropped), the focus mask (1 inside, at the
// image size) is resampled to it by nearest neighbour; overlay/both paint the
// mask semi-transparently on the work image; the work image is resized to the
// tower's R² and normalised; attention/both give each patch key the bias
// −strength·(1 − its mask coverage); logits = exp(logit_scale)·f̂·head.

import type { Gpu } from '../device.js';
import type { DecodedImage } from '../io/image.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { clipPreprocess } from '../kernels/preprocess.js';
import { ClipModel } from '../models/clip/model.js';
import { renderOverlay } from '../render/overlay.js';
import { ClipPromptClassifier } from './backbones.js';
import { FOCUS_MODES, patchCoverage, patchKeyBias, resizeRgba, usesAttention, usesOverlay, type FocusMode } from './focus.js';

export const HEAD_FORMAT = 'medfocus-head';
export const HEAD_VERSION = 2;

export interface HeadSpec {
  format: typeof HEAD_FORMAT;
  version: typeof HEAD_VERSION;
  classes: string[];
  clip: string;
  tensors: string;
  prompts: number;
  deep: number;
  workSide: number;
  focus: { mode: FocusMode; strength: number; overlayAlpha: number };
}

/** Opens a file that head.json names (a URL next to it, a picked File, a path in Node). */
export type OpenHeadFile = (name: string) => Promise<SafetensorsFile>;

export interface HeadClassification {
  /** Class probabilities with the focus (without it when no mask was given or the head has no focus). */
  probabilities: number[];
  /** Class probabilities of the plain image (no overlay, no attention bias). */
  plain: number[];
  /** The tower's patch grid side G. */
  grid: number;
  /** The mask's coverage of each patch [G²] (row-major, over the stretched image); undefined without a mask. */
  coverage?: Float32Array;
  /** The class token's attention over the patches in the last block [G²] (mean over heads), of the focused pass. */
  attention: Float32Array;
  /** The image the tower saw, at workSide² (with the overlay painted for overlay/both). */
  shown: DecodedImage;
}

function fail(message: string): never {
  throw new Error(`head.json: ${message}`);
}

/** A value for an error message: its JSON, at most 200 characters ('nothing' when absent). */
const show = (v: unknown) => (JSON.stringify(v) ?? 'nothing').slice(0, 200);

const isCount = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
/**
 * A file head.json may name: a plain .safetensors file name beside it — no
 * folder, no '..', no scheme or host — so a head can only reach its own
 * folder (or a page its own origin's /run/ files).
 */
const HEAD_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\.safetensors$/;
/** Bounds on head.json's sizes, far above what train writes (VPT uses 1–50 tokens, ViT-L has 24 blocks). */
export const HEAD_LIMITS = { classes: 10_000, className: 256, prompts: 1024, deep: 256, workSide: 4096 } as const;

/** Validates a parsed head.json; every problem names the field, what was expected and what came. */
export function checkHeadSpec(spec: unknown): HeadSpec {
  if (spec === null || typeof spec !== 'object') fail(`expected a JSON object, got ${show(spec)}`);
  const s = spec as Record<string, unknown>;
  if (s.format !== HEAD_FORMAT) fail(`"format" must be "${HEAD_FORMAT}", got ${show(s.format)}`);
  if (s.version !== HEAD_VERSION) fail(`"version" ${show(s.version)} is not supported (this library reads version ${HEAD_VERSION}; re-export with medfocus train)`);
  const classes = s.classes;
  if (
    !Array.isArray(classes) ||
    classes.length < 2 ||
    classes.length > HEAD_LIMITS.classes ||
    !classes.every((c) => typeof c === 'string' && c.length > 0 && c.length <= HEAD_LIMITS.className)
  ) {
    fail(`"classes" must list 2 to ${HEAD_LIMITS.classes} class names of 1 to ${HEAD_LIMITS.className} characters, got ${show(classes)}`);
  }
  const repeated = classes.find((c, i) => classes.indexOf(c) !== i);
  if (repeated !== undefined) fail(`"classes" names ${show(repeated)} twice; class names must be distinct`);
  for (const key of ['clip', 'tensors']) {
    if (typeof s[key] !== 'string' || !HEAD_FILE_NAME.test(s[key] as string)) fail(`"${key}" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s[key])}`);
  }
  if (!isCount(s.prompts, HEAD_LIMITS.prompts)) fail(`"prompts" must be an integer from 0 to ${HEAD_LIMITS.prompts}, got ${show(s.prompts)}`);
  if (!isCount(s.deep, HEAD_LIMITS.deep)) fail(`"deep" must be an integer from 0 to ${HEAD_LIMITS.deep}, got ${show(s.deep)}`);
  if (!isCount(s.workSide, HEAD_LIMITS.workSide) || (s.workSide as number) < 16) fail(`"workSide" must be an integer from 16 to ${HEAD_LIMITS.workSide}, got ${show(s.workSide)}`);
  const focus = s.focus as Record<string, unknown> | undefined;
  if (!focus || typeof focus !== 'object') fail(`"focus" must be an object { mode, strength, overlayAlpha }, got ${show(focus)}`);
  if (!FOCUS_MODES.includes(focus.mode as FocusMode)) fail(`"focus.mode" must be one of ${FOCUS_MODES.join(', ')}, got ${show(focus.mode)}`);
  if (!(typeof focus.strength === 'number' && Number.isFinite(focus.strength) && focus.strength >= 0)) fail(`"focus.strength" must be a number >= 0, got ${show(focus.strength)}`);
  if (!(typeof focus.overlayAlpha === 'number' && focus.overlayAlpha >= 0 && focus.overlayAlpha <= 1)) fail(`"focus.overlayAlpha" must be a number in [0, 1], got ${JSON.stringify(focus.overlayAlpha)}`);
  return spec as HeadSpec;
}

/** head.json's text, parsed and validated: invalid JSON is an Error naming head.json, not a SyntaxError. */
export function parseHeadSpec(text: string): HeadSpec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  return checkHeadSpec(value);
}

/** Nearest-neighbour resample of a 0/1 mask (pixel centres), w×h → side². */
function resampleMask(mask: Uint8Array, w: number, h: number, side: number): Uint8Array {
  const out = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / side));
    for (let x = 0; x < side; x++) out[y * side + x] = mask[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / side))] ? 1 : 0;
  }
  return out;
}

export class MedFocusHead {
  private constructor(
    readonly gpu: Gpu,
    readonly spec: HeadSpec,
    readonly clip: ClipModel,
    private readonly classifier: ClipPromptClassifier,
  ) {}

  /** Loads head.json's CLIP checkpoint and head tensors; a bad spec or a tensor of the wrong shape is an Error naming it. */
  static async load(gpu: Gpu, rawSpec: unknown, open: OpenHeadFile): Promise<MedFocusHead> {
    const spec = checkHeadSpec(rawSpec);
    const clipFile = await open(spec.clip);
    let clip: ClipModel;
    try {
      clip = await ClipModel.fromSafetensors(gpu, clipFile);
    } finally {
      await clipFile.close();
    }
    const K = spec.classes.length;
    const v = clip.config.vision;
    let classifier: ClipPromptClassifier | undefined;
    const tensors = await open(spec.tensors);
    try {
      classifier = new ClipPromptClassifier(gpu, clip, new Float32Array(K * clip.config.embedDim), K, {
        prompts: spec.prompts,
        deep: spec.deep,
        attention: usesAttention(spec.focus.mode),
        seed: 0,
      });
      for (const [name, param] of classifier.params) {
        if (!tensors.tensors.has(name)) fail(`${tensors.name} lacks tensor "${name}" [${param.shape.join(', ')}]`);
        const shape = tensors.info(name).shape;
        if (shape.length !== param.shape.length || shape.some((d, i) => d !== param.shape[i])) {
          fail(`${tensors.name}: tensor "${name}" is [${shape.join(', ')}], expected [${param.shape.join(', ')}] (${K} classes, ${spec.prompts} prompts, deep ${spec.deep}, CLIP width ${v.width}, embed ${clip.config.embedDim})`);
        }
        param.write(await tensors.read(name));
      }
      return new MedFocusHead(gpu, spec, clip, classifier);
    } catch (e) {
      classifier?.dispose();
      clip.dispose();
      throw e;
    } finally {
      await tensors.close();
    }
  }

  get classes(): string[] {
    return this.spec.classes;
  }

  /** The tower's patch grid side. */
  get grid(): number {
    return this.clip.config.vision.grid;
  }

  /**
   * Classifies one image; `mask` (one byte per image pixel, non-zero inside)
   * is the focus. Heads trained without focus ignore the mask.
   */
  async classify(image: DecodedImage, mask?: Uint8Array): Promise<HeadClassification> {
    const { workSide: W, focus } = this.spec;
    if (mask && mask.length !== image.width * image.height) {
      throw new Error(`MedFocusHead.classify: mask has ${mask.length} bytes, expected one per pixel of the ${image.width}×${image.height} image`);
    }
    const work = resizeRgba(image, W, W);
    const plain = await this.run(work, undefined);
    if (!mask || focus.mode === 'none') return { probabilities: plain.probabilities, plain: plain.probabilities, grid: this.grid, attention: plain.attention, shown: work };
    const workMask = resampleMask(mask, image.width, image.height, W);
    const shown = usesOverlay(focus.mode) ? renderOverlay(work, [{ mask: workMask }], { alpha: focus.overlayAlpha }) : work;
    const coverageMap = Float32Array.from(workMask);
    const keyBias = usesAttention(focus.mode) ? patchKeyBias(coverageMap, W, W, this.grid, focus.strength) : undefined;
    const focused = await this.run(shown, keyBias);
    const coverage = patchCoverage(coverageMap, W, W, this.grid);
    return { probabilities: focused.probabilities, plain: plain.probabilities, grid: this.grid, coverage, attention: focused.attention, shown };
  }

  /** One forward of the classifier on a work image (key bias: none, or per patch). */
  private async run(work: DecodedImage, keyBias: Float32Array | undefined): Promise<{ probabilities: number[]; attention: Float32Array }> {
    const R = this.clip.config.vision.imageResolution;
    const inputs = clipPreprocess(this.gpu, [resizeRgba(work, R, R)], { size: R });
    const attention = usesAttention(this.spec.focus.mode);
    const out = this.classifier.predict({ size: 1, inputs, keyBias: attention ? (keyBias ?? new Float32Array(this.grid ** 2)) : undefined });
    inputs.dispose();
    const probs = (await out.probs.read()) as Float32Array;
    const weights = (await out.weights.read()) as Float32Array;
    out.probs.dispose();
    out.weights.dispose();
    return { probabilities: [...probs], attention: weights };
  }

  dispose(): void {
    this.classifier.dispose();
    this.clip.dispose();
  }
}
