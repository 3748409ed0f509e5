// What a trained head exports for the web, browser-safe: head.json's spec
// and head.safetensors' bytes from a run's settings and trained parameters.
// `medfocus train` (checkpoint.ts exportHead, which adds the files and the
// hashes of MobileSAM's files on disk) and the demo page (web-trainer.ts,
// which hashes the bytes it loaded) both build them here, so a head trained
// in the page is the same format the CLI writes and reads back.

import { writeSafetensors, type SafetensorsEntry } from '../io/safetensors.js';
import type { RunConfig } from './checkpoint.js';
import { SALIENT_DEFAULTS, WORK_SIDE } from './focus.js';
import { HEAD_FORMAT, HEAD_VERSION, type ClipHeadSpec, type HeadFocus, type MobileSamFileIds, type SamHeadSpec } from './head-spec.js';
import { pipelineMaskFilters } from './pipeline.js';

/** The file names a run's web head has (head.json names the others relative to itself). */
export const HEAD_JSON = 'head.json';
export const HEAD_TENSORS = 'head.safetensors';
/** A CLIP head's link to (or copy of) the CLIP weights it trained on, beside head.json. */
export const HEAD_CLIP = 'clip.safetensors';

/**
 * Why a run's head cannot be exported for the web, or undefined when it can:
 * a web head makes its focus with MobileSAM's automatic masks, so a run
 * whose masks came from SAM2 (--sam2) has none unless its focus is none.
 */
export function webHeadProblem(config: Pick<RunConfig, 'backbone' | 'weights' | 'focus' | 'sam2' | 'dtype'>): string | undefined {
  if (config.backbone === 'clip' && !config.weights) return 'the clip run names no weights';
  if (config.dtype) return `it ran with ${config.dtype} weights, and a web head loads its models with f32 weights; train with --dtype f32 for a web head`;
  if (config.sam2 && config.focus !== 'none') {
    return `its focus masks came from SAM2 (${config.sam2}), and a web head makes them with MobileSAM; train with focus none or without --sam2 for a web head`;
  }
  return undefined;
}

/** Whether a head of `backbone` with focus `focus` runs MobileSAM (sam-encoder: always, its features; CLIP: for the automatic masks of a focus). */
export function headNeedsMobileSam(backbone: RunConfig['backbone'], focus: RunConfig['focus']): boolean {
  return backbone === 'sam-encoder' || focus !== 'none';
}

/** The focus settings a head.json records: the run's, with every mask filter the pipeline used. */
export type HeadFocusSettings = Pick<RunConfig, 'focus' | 'strength' | 'overlayAlpha' | 'samSize' | 'pointsPerSide'>;

function headFocus(config: HeadFocusSettings): HeadFocus {
  return {
    mode: config.focus,
    strength: config.strength,
    overlayAlpha: config.overlayAlpha,
    samSize: config.samSize,
    pointsPerSide: config.pointsPerSide,
    maskFilters: pipelineMaskFilters(config.samSize),
    salient: { ...SALIENT_DEFAULTS },
  };
}

/** The settings a sam-encoder head.json records. */
export type SamHeadSettings = HeadFocusSettings & Pick<RunConfig, 'classes' | 'featureGrid' | 'prompts'>;

/**
 * A sam-encoder run's head.json: its classes, the trained `queries` count
 * (the shape of the parameter 'queries'; undefined with mean pooling, which
 * has none), MobileSAM's files, the focus settings and every mask filter the
 * pipeline used (webHeadProblem must have passed).
 */
export function samHeadSpec(config: SamHeadSettings, queries: number | undefined, mobileSam: MobileSamFileIds): SamHeadSpec {
  return {
    format: HEAD_FORMAT,
    version: HEAD_VERSION,
    backbone: 'sam-encoder',
    classes: config.classes,
    tensors: HEAD_TENSORS,
    workSide: WORK_SIDE,
    // runs.ts pipelineFor's default grid (every sam-encoder run since featureGrid existed records it).
    featureGrid: config.featureGrid ?? 16,
    // The attention pooling's learned queries, as trained (mean pooling has none; the field is then unused).
    queries: queries ?? Math.max(1, config.prompts),
    mobileSam: { ...mobileSam },
    focus: headFocus(config),
  };
}

/** The settings a CLIP head.json records. */
export type ClipHeadSettings = HeadFocusSettings & Pick<RunConfig, 'classes' | 'featureGrid' | 'prompts' | 'deep'>;

/**
 * A CLIP run's head.json: its classes, prompts, the CLIP weights as
 * HEAD_CLIP beside it, the focus settings and every mask filter the
 * pipeline used; MobileSAM's files when the focus makes masks (undefined for
 * focus none: headNeedsMobileSam), the learned focus' feature grid.
 */
export function clipHeadSpec(config: ClipHeadSettings, mobileSam: MobileSamFileIds | undefined): ClipHeadSpec {
  if (headNeedsMobileSam('clip', config.focus) !== (mobileSam !== undefined)) {
    throw new Error(`clipHeadSpec: a CLIP head with focus ${config.focus} ${mobileSam ? 'makes no masks: give no' : 'makes its masks with MobileSAM: give the ids of'} MobileSAM's files`);
  }
  return {
    format: HEAD_FORMAT,
    version: HEAD_VERSION,
    backbone: 'clip',
    classes: config.classes,
    clip: HEAD_CLIP,
    tensors: HEAD_TENSORS,
    prompts: config.prompts,
    deep: config.deep ?? 0,
    workSide: WORK_SIDE,
    ...(config.focus === 'learned' && { featureGrid: config.featureGrid! }),
    ...(mobileSam && { mobileSam: { ...mobileSam } }),
    focus: headFocus(config),
  };
}

/** head.safetensors: the trained parameters by name (no optimizer state). */
export function headTensorsBytes(params: Iterable<[string, { shape: readonly number[]; data: Float32Array }]>): Uint8Array {
  const entries: SafetensorsEntry[] = [...params].map(([name, p]) => ({ name, dtype: 'F32', shape: [...p.shape], data: p.data }));
  return writeSafetensors(entries);
}

/** head.json's text as train writes it (two-space indent, a final newline). */
export function headJsonText(spec: object): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}
