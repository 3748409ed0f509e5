// SAM2 (SAM 2.1) hiera-tiny image encoder (Hiera trunk + FPN neck + conv_s0/
// conv_s1) at its true size with random weights: a shape-only checkpoint with
// the official key names (the library's syntheticSafetensors), its architecture
// inferred from the shapes as for a real file. Full runs: 256² and 1024² (~30 s
// a run on lavapipe, 290 GFLOP); --quick: 256² only. No peer (there is no SAM2
// ONNX export here).
// Context lines: the planned peak GPU memory of each compiled graph.
import { Sam2ImageEncoder, Tensor, hieraBlocks, openSafetensors, sam2ImageTensors, syntheticSafetensors } from '../../dist/node.js';
import { memoryLine } from '../memory.js';
import { values } from '../values.js';

/** sam2.1_hiera_t.yaml: trunk and neck (what the library infers from the shapes for E = 96, stages [1, 2, 7, 2]). */
const TRUNK = { embedDim: 96, numHeads: 1, stages: [1, 2, 7, 2], globalAttBlocks: [5, 7, 9], windowSpec: [8, 4, 14, 7], bkgSize: [7, 7], qPool: 3 };
const NECK = { dModel: 256, backboneChannelList: [768, 384, 192, 96], fpnTopDownLevels: [2, 3], scalp: 1 };
const PATCH_KERNEL = 7;
const benchName = (size) => `sam2 hiera-tiny encoder ${size}²`;

/**
 * Floating-point operations of one forward at side S (2 per multiply-add):
 * patch embed, per block the shortcut projection, q/k/v over the zero-padded
 * windows (computed, so counted), scores and weighted values, output
 * projection and MLP, then the neck's 1×1 convs and conv_s0/conv_s1.
 */
function encoderFlops(S) {
  let side = S / 4;
  let macs = side * side * TRUNK.embedDim * 3 * PATCH_KERNEL ** 2;
  const stageSides = [];
  for (const b of hieraBlocks(TRUNK)) {
    if (b.dimIn !== b.dimOut) stageSides.push(side);
    const window = b.window || side;
    const padded = (Math.ceil(side / window) * window) ** 2;
    const queries = b.qPool ? padded / 4 : padded;
    const outSide = b.qPool ? side / 2 : side;
    if (b.dimIn !== b.dimOut) macs += side * side * b.dimIn * b.dimOut;
    macs += 3 * padded * b.dimIn * b.dimOut + 2 * queries * window * window * b.dimOut + queries * b.dimOut ** 2;
    macs += 2 * outSide * outSide * b.dimOut * 4 * b.dimOut;
    side = outSide;
  }
  stageSides.push(side);
  const channels = [...NECK.backboneChannelList].reverse(); // stride 4 first
  stageSides.forEach((s, i) => (macs += s * s * channels[i] * NECK.dModel));
  macs += (S / 4) ** 2 * NECK.dModel * (NECK.dModel / 8) + (S / 8) ** 2 * NECK.dModel * (NECK.dModel / 4);
  return 2 * macs;
}

/** The compiled graph's memory plan (Sam2ImageEncoder keeps its graphs in a private map keyed by batch|trace). */
function graphStats(encoder) {
  const graph = encoder.graphs.get('1|false');
  if (!graph) throw new Error('bench sam2: no compiled encoder graph 1|false (Sam2ImageEncoder internals changed?)');
  return graph.stats();
}

export default async function (ctx) {
  const { gpu } = ctx;
  const sizes = (ctx.quick ? [256] : [256, 1024]).filter((size) => ctx.wants(benchName(size)));
  for (const size of sizes) {
    const entries = sam2ImageTensors({ variant: 'tiny', imageSize: size, trunk: TRUNK, neck: NECK, from: 'variant table' }).map(({ key, shape }) => [key, shape]);
    const t0 = performance.now();
    const file = await openSafetensors(syntheticSafetensors(entries, 'sam2.1 hiera-tiny image path (synthetic)'));
    const encoder = await Sam2ImageEncoder.fromSafetensors(gpu, file, { imageSize: size });
    await file.close();
    const loadMs = performance.now() - t0;
    if (encoder.config.variant !== 'tiny') throw new Error(`bench sam2: the synthetic checkpoint was inferred as ${encoder.config.variant}, not tiny`);

    const input = Tensor.fromArray(gpu, values(3 * size * size, 31).map((v) => v * 4), [1, 3, size, size]);
    const name = benchName(size);
    const r = await ctx.bench({
      name,
      shape: `image [1,3,${size},${size}] → embed [1,256,${size / 16},${size / 16}] + high-res [1,32,${size / 4},${size / 4}], [1,64,${size / 8},${size / 8}]; Hiera E96 stages 1-2-7-2`,
      flops: encoderFlops(size),
      // The warm-up builds the graph and compiles its pipelines.
      warmup: 1,
      runs: ctx.quick || size > 256 ? 2 : 3,
      ours: () => {
        const f = encoder.encode(input);
        return async () => {
          const embed = await f.imageEmbed.read();
          [f.imageEmbed, ...f.highResFeats].forEach((t) => t.dispose());
          if (!embed.every(Number.isFinite)) throw new Error(`bench sam2: non-finite image embedding at ${size}²`);
        };
      },
    });
    if (r) {
      const stats = graphStats(encoder);
      const params = entries.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
      ctx.note(`${name}: ${memoryLine(stats)}; synthetic checkpoint (${(params / 1e6).toFixed(1)}M parameters) loaded in ${(loadMs / 1000).toFixed(1)} s`);
    }
    input.dispose();
    encoder.dispose();
  }
}
