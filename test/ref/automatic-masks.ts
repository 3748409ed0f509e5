// Plain float64 reference of SAM's automatic mask generator (one crop), in
// straightforward loops, independent of src/models/sam/automatic.ts and the
// GPU kernels: point grid, two-stage bilinear upsampling of low-res logits
// (postprocess_masks), stability score, box from mask, torchvision box IoU,
// greedy NMS, 8-connected components by flood fill, remove_small_regions.

export type Box = [number, number, number, number];

export interface RefGeometry {
  frameSize: number;
  resizedSize: [number, number];
  imageSize: [number, number];
}

export function pointGrid(n: number, width: number, height: number): [number, number][] {
  const out: [number, number][] = [];
  for (let row = 0; row < n; row++) {
    const y = (height * (2 * row + 1)) / (2 * n);
    for (let col = 0; col < n; col++) out.push([(width * (2 * col + 1)) / (2 * n), y]);
  }
  return out;
}

/** F.interpolate(bilinear, align_corners=False) of one [inH, inW] plane to [outH, outW], in float64. */
export function bilinear(src: ArrayLike<number>, inH: number, inW: number, outH: number, outW: number): Float64Array {
  const out = new Float64Array(outH * outW);
  const coord = (d: number, inLen: number, outLen: number) => {
    const s = Math.max((inLen / outLen) * (d + 0.5) - 0.5, 0);
    const a = Math.min(Math.floor(s), inLen - 1);
    const b = a < inLen - 1 ? a + 1 : a;
    const l = Math.min(Math.max(s - a, 0), 1);
    return { a, b, l };
  };
  for (let oy = 0; oy < outH; oy++) {
    const cy = coord(oy, inH, outH);
    for (let ox = 0; ox < outW; ox++) {
      const cx = coord(ox, inW, outW);
      const v00 = src[cy.a * inW + cx.a];
      const v01 = src[cy.a * inW + cx.b];
      const v10 = src[cy.b * inW + cx.a];
      const v11 = src[cy.b * inW + cx.b];
      out[oy * outW + ox] = (1 - cy.l) * ((1 - cx.l) * v00 + cx.l * v01) + cy.l * ((1 - cx.l) * v10 + cx.l * v11);
    }
  }
  return out;
}

/** SAM's postprocess_masks: low-res [lowH, lowW] → frame² → crop resizedSize → imageSize. */
export function upsampleLogits(plane: ArrayLike<number>, lowH: number, lowW: number, g: RefGeometry): Float64Array {
  const frame = bilinear(plane, lowH, lowW, g.frameSize, g.frameSize);
  const [rh, rw] = g.resizedSize;
  const crop = new Float64Array(rh * rw);
  for (let y = 0; y < rh; y++) for (let x = 0; x < rw; x++) crop[y * rw + x] = frame[y * g.frameSize + x];
  return bilinear(crop, rh, rw, g.imageSize[0], g.imageSize[1]);
}

export function stabilityScore(logits: ArrayLike<number>, offset: number): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > offset) inter++;
    if (logits[i] > -offset) union++;
  }
  return inter / union;
}

export function boxFromMask(mask: ArrayLike<number>, width: number, height: number): Box {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x]) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
    }
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1];
}

/** torchvision.ops.box_iou as SAM calls it (inclusive bounds used as corners); an empty union gives 0 (NaN in torch, which never exceeds a threshold). */
export function boxIou(a: Box, b: Box): number {
  const areaA = (a[2] - a[0]) * (a[3] - a[1]);
  const areaB = (b[2] - b[0]) * (b[3] - b[1]);
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = w > 0 && h > 0 ? w * h : 0;
  const union = areaA + areaB - inter;
  return union === 0 ? 0 : inter / union;
}

/** Greedy NMS: indices by score descending (ties: lower index first), dropping boxes with IoU > thresh to a kept one. */
export function nms(boxes: Box[], scores: number[], thresh: number): number[] {
  const order = boxes.map((_, i) => i);
  order.sort((i, j) => (scores[j] !== scores[i] ? scores[j] - scores[i] : i - j));
  const keep: number[] = [];
  for (const i of order) {
    let suppressed = false;
    for (const j of keep) if (boxIou(boxes[i], boxes[j]) > thresh) suppressed = true;
    if (!suppressed) keep.push(i);
  }
  return keep;
}

/** 8-connected components of the set pixels by breadth-first flood fill; labels numbered in raster order of first pixel. */
export function components(set: ArrayLike<number>, width: number, height: number): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(width * height);
  const sizes = [0];
  for (let start = 0; start < width * height; start++) {
    if (!set[start] || labels[start]) continue;
    const label = sizes.length;
    sizes.push(0);
    const queue = [start];
    labels[start] = label;
    while (queue.length > 0) {
      const p = queue.pop() as number;
      sizes[label]++;
      const px = p % width;
      const py = Math.floor(p / width);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = px + dx;
          const ny = py + dy;
          if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
          const q = ny * width + nx;
          if (set[q] && !labels[q]) {
            labels[q] = label;
            queue.push(q);
          }
        }
      }
    }
  }
  return { labels, sizes };
}

/** segment-anything's remove_small_regions. */
export function removeSmallRegions(mask: Uint8Array, width: number, height: number, areaThresh: number, mode: 'holes' | 'islands'): { mask: Uint8Array; changed: boolean } {
  const correctHoles = mode === 'holes';
  const working = mask.map((v) => (correctHoles ? (v ? 0 : 1) : v ? 1 : 0));
  const { labels, sizes } = components(working, width, height);
  const small: number[] = [];
  for (let l = 1; l < sizes.length; l++) if (sizes[l] < areaThresh) small.push(l);
  if (small.length === 0) return { mask, changed: false };
  let fill = [0, ...small];
  if (!correctHoles) {
    fill = [];
    for (let l = 0; l < sizes.length; l++) if (l !== 0 && !small.includes(l)) fill.push(l);
    if (fill.length === 0) {
      let best = 1;
      for (let l = 1; l < sizes.length; l++) if (sizes[l] > sizes[best]) best = l;
      fill = [best];
    }
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = fill.includes(labels[i]) ? 1 : 0;
  return { mask: out, changed: true };
}

export interface RefDecoded {
  /** M low-res planes per point. */
  planes: Float32Array[];
  ious: number[];
}

export interface RefOptions {
  pointsPerSide: number;
  predIouThresh: number;
  stabilityScoreThresh: number;
  stabilityScoreOffset: number;
  boxNmsThresh: number;
  minMaskRegionArea: number;
}

export interface RefMask {
  mask: Uint8Array;
  /** The upsampled logits the mask came from (before any clean-up). */
  logits: Float64Array;
  area: number;
  box: Box;
  predictedIou: number;
  stabilityScore: number;
  point: [number, number];
}

/** The whole generator, with decode(point) giving each point's low-res planes [lowH, lowW] and IoUs. */
export function automaticMasks(decode: (p: [number, number]) => RefDecoded, lowH: number, lowW: number, g: RefGeometry, o: RefOptions): RefMask[] {
  const [height, width] = g.imageSize;
  let data: RefMask[] = [];
  for (const point of pointGrid(o.pointsPerSide, width, height)) {
    const { planes, ious } = decode(point);
    for (let m = 0; m < planes.length; m++) {
      if (!(ious[m] >= o.predIouThresh)) continue;
      const logits = upsampleLogits(planes[m], lowH, lowW, g);
      const stability = stabilityScore(logits, o.stabilityScoreOffset);
      if (!(stability >= o.stabilityScoreThresh)) continue;
      const mask = new Uint8Array(width * height);
      let area = 0;
      for (let i = 0; i < mask.length; i++) {
        mask[i] = logits[i] > 0 ? 1 : 0;
        area += mask[i];
      }
      data.push({ mask, logits, area, box: boxFromMask(mask, width, height), predictedIou: ious[m], stabilityScore: stability, point });
    }
  }
  data = nms(
    data.map((d) => d.box),
    data.map((d) => d.predictedIou),
    o.boxNmsThresh,
  ).map((i) => data[i]);
  if (o.minMaskRegionArea > 0) {
    const scores: number[] = [];
    const cleaned = data.map((d) => {
      const holes = removeSmallRegions(d.mask, width, height, o.minMaskRegionArea, 'holes');
      const islands = removeSmallRegions(holes.mask, width, height, o.minMaskRegionArea, 'islands');
      scores.push(holes.changed || islands.changed ? 0 : 1);
      let area = 0;
      for (const v of islands.mask) area += v;
      return { ...d, mask: islands.mask, area, box: boxFromMask(islands.mask, width, height) };
    });
    data = nms(
      cleaned.map((d) => d.box),
      scores,
      o.boxNmsThresh,
    ).map((i) => cleaned[i]);
  }
  // Stable sort by predicted IoU, descending (the NMS order breaks ties).
  return data.map((d, i) => ({ d, i })).sort((a, b) => b.d.predictedIou - a.d.predictedIou || a.i - b.i).map(({ d }) => d);
}
