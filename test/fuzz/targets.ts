// What the fuzzer feeds: every reader of user files, each with a few valid
// seed inputs built here (no ../shared needed) and a check of what it
// accepts. A reader passes an input when it either accepts it and the result
// keeps its invariants (sizes within the documented limits, lengths that
// match), or refuses it with a plain Error naming the file (see
// fuzzVerdict). ONNX seeds come from bench/onnx-writer.js.

import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';
import { singleOpModel } from '../../bench/onnx-writer.js';
import { MAX_PIXELS, decodeImage, encodePng } from '../../src/io/image.js';
import { parseOnnx, tensorToFloat32 } from '../../src/io/onnx.js';
import { bytesSource, openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { parseCheckpoint, parseRunConfig } from '../../src/medfocus/checkpoint.js';
import { parseWebHeadSpec } from '../../src/medfocus/head-spec.js';
import { loadImageFolder, loadImages } from '../../src/medfocus/dataset.js';
import { ClipTokenizer, MAX_VOCAB_SIZE } from '../../src/models/clip/tokenizer.js';
import { BASE_MERGES, BASE_TOKENS, vocabJson } from '../ref/clip-small-vocab.js';
import { seededRandom } from '../../src/util/random.js';
import { SAMPLE_RUN_CONFIG } from '../ref/sample-run-config.js';

export interface FuzzTarget {
  /** The name errors must carry (a file label the reader is given). */
  label: string;
  /** JSON text: mutations also edit values inside the tree. */
  json?: boolean;
  /** Inputs in npm test's bounded run, where one input is slow (default 3,000). */
  testInputs?: number;
  /** Every input is valid (any text tokenizes): nothing should be refused. */
  acceptsAll?: boolean;
  seeds(): Uint8Array[];
  /** Applied to every mutated input (e.g. PNG CRCs recomputed, so mutations reach past the checksum). */
  repair?(bytes: Uint8Array): Uint8Array;
  /** Reads one input; throws to refuse it; an accepted input must pass the checks inside. */
  read(bytes: Uint8Array): unknown;
}

function accept(ok: boolean, what: string): void {
  if (!ok) throw new InvalidAccepted(what);
}

/** The reader accepted an input whose result breaks its own invariants. */
export class InvalidAccepted {
  constructor(readonly what: string) {}
}

function image(w: number, h: number, seed: number, alpha = false): Uint8Array {
  const r = seededRandom(seed);
  return Uint8Array.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 && !alpha ? 255 : Math.floor(r() * 256)));
}

function checkImage(bytes: Uint8Array, label: string): void {
  const img = decodeImage(bytes, label);
  accept(img.width >= 1 && img.height >= 1 && img.width * img.height <= MAX_PIXELS && img.data.length === img.width * img.height * 4, `${img.width}×${img.height} with ${img.data.length} bytes`);
}

const encoder = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);


/** A sam-encoder head.json of version 3 (still read; version 4, which train writes, is the same). */
const SAM_HEAD = {
  format: 'medfocus-head',
  version: 3,
  backbone: 'sam-encoder',
  classes: ['benign', 'malignant', 'normal'],
  tensors: 'head.safetensors',
  workSide: 256,
  featureGrid: 16,
  queries: 4,
  mobileSam: { encoder: 'encoder.onnx', decoder: 'sam.onnx', encoderSha256: 'a'.repeat(64), decoderSha256: 'b'.repeat(64) },
  focus: {
    mode: 'attention',
    strength: 4,
    overlayAlpha: 0.5,
    samSize: 512,
    pointsPerSide: 8,
    maskFilters: { predIouThresh: 0.7, stabilityScoreThresh: 0.8, stabilityScoreOffset: 0.5, boxNmsThresh: 0.7, minMaskRegionArea: 0 },
    salient: { maxAreaFraction: 0.6, minAreaFraction: 0.002, maxMasks: 3, dropBorder: true },
  },
};

/** A CLIP head.json (version 4, learned focus: MobileSAM and the feature grid too), as medfocus train writes it. */
const CLIP_HEAD = {
  format: 'medfocus-head',
  version: 4,
  backbone: 'clip',
  classes: ['a', 'b'],
  clip: 'clip.safetensors',
  tensors: 'head.safetensors',
  prompts: 4,
  deep: 0,
  workSide: 256,
  featureGrid: 16,
  mobileSam: SAM_HEAD.mobileSam,
  focus: { ...SAM_HEAD.focus, mode: 'learned' },
};

export const TARGETS: Record<string, FuzzTarget> = {
  png: {
    label: 'fuzz.png',
    seeds: () => [encodePng(image(5, 4, 1), 5, 4), encodePng(image(9, 3, 2, true), 9, 3), encodePng(image(1, 1, 3), 1, 1)],
    // Half the inputs get their chunk CRCs recomputed, so the mutations reach IHDR, IDAT and the decoder.
    repair: (bytes) => (bytes.length % 2 === 0 ? fixPngCrcs(bytes) : bytes),
    read: (bytes) => checkImage(bytes, 'fuzz.png'),
  },
  jpeg: {
    label: 'fuzz.jpg',
    seeds: () => [encodeJpeg({ data: image(16, 16, 4), width: 16, height: 16 }, 90).data, encodeJpeg({ data: image(13, 7, 5), width: 13, height: 7 }, 50).data].map((b) => new Uint8Array(b)),
    read: (bytes) => checkImage(bytes, 'fuzz.jpg'),
  },
  safetensors: {
    label: 'fuzz.safetensors',
    seeds: () => [
      writeSafetensors([{ name: 'w', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }], { format: 'pt' }),
      writeSafetensors([
        { name: 'a', dtype: 'F16', shape: [4], data: new Uint16Array(4) },
        { name: 'b', dtype: 'I32', shape: [1, 2], data: Int32Array.from([7, -7]) },
      ]),
    ],
    async read(bytes) {
      const file = await openSafetensors(bytesSource(bytes, 'fuzz.safetensors'), 'fuzz.safetensors');
      for (const name of file.tensors.keys()) {
        const info = file.info(name);
        const data = await file.read(name);
        accept(data.length === info.shape.reduce((a, b) => a * b, 1), `tensor ${name}: ${data.length} values for shape [${info.shape}]`);
      }
    },
  },
  onnx: {
    label: 'fuzz.onnx',
    seeds: () => [
      singleOpModel({ op: 'MatMul', inputs: [['x', [2, 3]]], initializers: [['w', [3, 2], Float32Array.from([1, 2, 3, 4, 5, 6])]], outputs: [['y', [2, 2]]] }),
      singleOpModel({ op: 'Conv', inputs: [['x', [1, 1, 4, 4]]], initializers: [['k', [1, 1, 2, 2], Float32Array.from([1, 0, 0, 1])]], outputs: [['y', [1, 1, 3, 3]]], attributes: { strides: [1, 1], group: 1 } }),
    ],
    read(bytes) {
      const model = parseOnnx(bytes, 'fuzz.onnx');
      for (const t of model.graph.initializers.values()) {
        const values = tensorToFloat32(t);
        accept(values.length === t.dims.reduce((a, b) => a * Number(b), 1), `initializer ${t.name}: ${values.length} values for dims [${t.dims}]`);
      }
    },
  },
  'head-json': {
    label: 'head.json',
    json: true,
    seeds: () => [
      encoder.encode(JSON.stringify(CLIP_HEAD)),
      encoder.encode(JSON.stringify(SAM_HEAD)),
    ],
    read(bytes) {
      const spec = parseWebHeadSpec(text(bytes)) as unknown as Record<string, unknown>;
      const files = [spec.tensors, spec.clip, (spec.mobileSam as Record<string, unknown> | undefined)?.encoder, (spec.mobileSam as Record<string, unknown> | undefined)?.decoder];
      accept(
        (spec.classes as string[]).length >= 2 && files.every((f) => f === undefined || (typeof f === 'string' && !f.includes('/') && !f.includes('..'))) && spec.workSide === 256,
        JSON.stringify(spec).slice(0, 200),
      );
    },
  },
  'run-config': {
    label: 'fuzz/config.json',
    json: true,
    seeds: () => [encoder.encode(JSON.stringify(SAMPLE_RUN_CONFIG)), encoder.encode(JSON.stringify({ ...SAMPLE_RUN_CONFIG, backbone: 'clip', weights: '/w.safetensors', tokenizer: '/v.txt.gz', deep: 2 }))],
    read(bytes) {
      const c = parseRunConfig(text(bytes), 'fuzz/config.json');
      accept(c.classes.length >= 2 && c.fraction > 0 && c.fraction <= 1 && Number.isSafeInteger(c.seed), JSON.stringify(c).slice(0, 200));
    },
  },
  'clip-vocab': {
    label: 'ClipTokenizer',
    json: true,
    seeds: () => [encoder.encode(vocabJson(BASE_TOKENS))],
    read: (bytes) => checkTokenizer(ClipTokenizer.fromVocabAndMerges(text(bytes), BASE_MERGES)),
  },
  'clip-merges': {
    label: 'ClipTokenizer',
    seeds: () => [encoder.encode(BASE_MERGES), encoder.encode('#version: 0.2\na b\n')],
    read: (bytes) => checkTokenizer(ClipTokenizer.fromVocabAndMerges(vocabJson(BASE_TOKENS), text(bytes))),
  },
  'clip-text': {
    label: 'ClipTokenizer',
    acceptsAll: true,
    seeds: () => ['a photo of a benign lesion', 'abc ab &amp; 12.5% <tag> é 🙂', 'x'.repeat(300)].map((t) => encoder.encode(t)),
    read(bytes) {
      const t = smallTokenizer();
      const row = t.tokenize(text(bytes), { truncate: true });
      accept(row.length === 77 && row.every((id) => id >= 0 && id < t.vocabSize), `a row of ${row.length} ids`);
    },
  },
  'dataset-tree': {
    label: 'fuzz-tree-',
    testInputs: 200, // ~0.05 s each: a folder tree is built and removed per input
    seeds: () => [0, 1, 2].map((k) => Uint8Array.from({ length: 3 * 40 }, (_, i) => Math.floor(seededRandom(100 + k)() * 256 + i * 37) & 255)),
    read: readTree,
  },
  checkpoint: {
    label: 'fuzz/checkpoint.safetensors',
    seeds: () => [checkpointBytes()],
    async read(bytes) {
      const ckpt = await parseCheckpoint(bytes, 'fuzz/checkpoint.safetensors');
      for (const [name, p] of ckpt.params) accept(p.data.every(Number.isFinite) && p.data.length === p.shape.reduce((a, b) => a * b, 1), `parameter ${name}`);
      accept(ckpt.progress.losses.length === ckpt.progress.epoch, 'progress');
    },
  },
};

/**
 * An ImageFolder tree built from the input, read as a program of 3-byte
 * steps (op, where, what): folders, valid and broken images, text files,
 * links to anything (., .., the root, /dev/zero, nowhere, other entries),
 * named pipes called *.png. Any bytes are a program, so every mutation is one.
 */
async function readTree(bytes: Uint8Array): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'fuzz-tree-'));
  try {
    const png = encodePng(image(2, 2, 9), 2, 2);
    const dirs = ['train/c0', 'train/c1', 'test/c0', 'test/c1'].map((d) => join(root, d));
    const entries = [...dirs];
    for (const d of dirs) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'base.png'), png);
    }
    let pipes = 0;
    for (let i = 0; i + 2 < Math.min(bytes.length, 3 * 64); i += 3) {
      const [op, where, what] = [bytes[i], bytes[i + 1], bytes[i + 2]];
      const dir = entries.filter((e) => dirs.includes(e))[where % dirs.length];
      const path = join(dir, `e${what % 16}${op % 2 ? '.png' : ''}`);
      try {
        switch (op % 6) {
          case 0:
            mkdirSync(path);
            dirs.push(path);
            break;
          case 1:
            writeFileSync(path.endsWith('.png') ? path : `${path}.png`, png, { flag: 'wx' }); // wx: never through a link (a pipe would block the builder)
            break;
          case 2:
            writeFileSync(`${path}.png`, bytes.subarray(i, i + (what % 40)), { flag: 'wx' });
            break;
          case 3: {
            const targets = ['.', '..', '../..', root, '/dev/zero', join(root, 'nowhere'), ...entries];
            symlinkSync(targets[what % targets.length], path);
            break;
          }
          case 4:
            if (pipes++ < 2) execFileSync('mkfifo', [`${path}.png`]);
            break;
          default:
            writeFileSync(`${path}.txt`, 'notes', { flag: 'wx' });
        }
        entries.push(path);
      } catch {
        // The step collided with an existing name: the tree is what it is.
      }
    }
    const folder = await loadImageFolder(root, 'train');
    const real = folder.items.map((it) => realpathSync(it.path));
    accept(new Set(real).size === real.length, `an image listed twice: ${real.join(', ')}`);
    for (const p of real) accept(lstatSync(p).isFile(), `${p} is not a regular file`);
    accept(folder.items.length <= 2 + 64, `${folder.items.length} images from at most 66 files`);
    const loaded = await loadImages(folder.items, { onError: () => {} });
    accept(loaded.images.length + loaded.failures.length === folder.items.length, 'every listed image decoded or reported');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

let small: ClipTokenizer | undefined;
/** The small valid tokenizer (test/ref/clip-small-vocab.ts), built once. */
const smallTokenizer = () => (small ??= ClipTokenizer.fromVocabAndMerges(vocabJson(BASE_TOKENS), BASE_MERGES));

/** An accepted vocabulary must encode text into ids inside its table, with the specials at its ends. */
function checkTokenizer(t: ClipTokenizer): void {
  accept(t.vocabSize >= 2 && t.vocabSize <= MAX_VOCAB_SIZE && t.sotToken < t.vocabSize && t.eotToken === t.vocabSize - 1, `vocabulary of ${t.vocabSize}, sot ${t.sotToken}, eot ${t.eotToken}`);
  const ids = t.encode('abc ab a photo');
  accept(ids.every((id) => Number.isInteger(id) && id >= 0 && id < t.vocabSize), `ids ${ids.join(',')}`);
}

/** Recomputes the CRC of every chunk that lies within the file (lengths as mutated). */
function fixPngCrcs(input: Uint8Array): Uint8Array {
  const bytes = input.slice();
  const view = new DataView(bytes.buffer);
  for (let at = 8; at + 12 <= bytes.length; ) {
    const length = view.getUint32(at);
    if (at + 12 + length > bytes.length) break;
    view.setUint32(at + 8 + length, crc32(bytes.subarray(at + 4, at + 8 + length)));
    at += 12 + length;
  }
  return bytes;
}

/** A small head's checkpoint in writeCheckpoint's layout: params as param.*, AdamW slots as opt.*.m|v, progress in the metadata. */
function checkpointBytes(): Uint8Array {
  const progress = { epoch: 2, step: 4, losses: [0.9, 0.7] };
  return writeSafetensors(
    [
      { name: 'param.head.w', dtype: 'F32', shape: [2, 3], data: Float32Array.from([0.1, -0.2, 0.3, 0.4, 0.5, -0.6]) },
      { name: 'opt.head.w.m', dtype: 'F32', shape: [6], data: new Float32Array(6) },
      { name: 'opt.head.w.v', dtype: 'F32', shape: [6], data: new Float32Array(6) },
    ],
    { progress: JSON.stringify(progress), optimizer: 'AdamW', optimizerStep: '4' },
  );
}

/** Messages that are a dependency's or the runtime's, never a reader's. */
const INTERNAL = /Cannot read prop|is not a function|is not iterable|undefined is not|of undefined|of null|Maximum call stack|Invalid array length|Invalid typed array length|Array buffer allocation failed|out of memory|Unexpected token|in JSON at position/;

export type Verdict = { kind: 'accepted' } | { kind: 'refused' } | { kind: 'unnamed' | 'invalid-accepted'; message: string };

/** Runs one input through the target and says what happened. */
export async function fuzzVerdict(target: FuzzTarget, bytes: Uint8Array): Promise<Verdict> {
  try {
    await target.read(bytes);
    return { kind: 'accepted' };
  } catch (e) {
    if (e instanceof InvalidAccepted) return { kind: 'invalid-accepted', message: e.what };
    const message = e instanceof Error ? e.message : String(e);
    const plain = e instanceof Error && e.constructor === Error;
    // A JSON message is the reader's own when it names the file ("…config.json is not valid JSON (…)").
    const internal = INTERNAL.test(message) && !message.startsWith(target.label) && !message.includes(`${target.label} is not valid JSON`) && !/^head\.json: not valid JSON/.test(message);
    if (!plain || !message.includes(target.label) || internal) return { kind: 'unnamed', message: `${e instanceof Error ? e.constructor.name : typeof e}: ${message.slice(0, 300)}` };
    return { kind: 'refused' };
  }
}
