// A ViT-B/16-shaped training step as MedFocus trains it: frozen backbone,
// 8 visual prompt tokens and a linear head; forward + backward + AdamW, timed
// against the forward alone (goal: step ≤ 3.5× forward). Random weights at
// true size; --quick keeps the widths but runs 2 blocks at batch 2.
import { AdamW, Graph, Tensor, backward, graphOps as G, preNormBlock, preNormBlockShapes } from '../../dist/node.js';
import { values } from '../values.js';

const FULL = { batch: 8, layers: 12 };
const QUICK = { batch: 2, layers: 2 };
const [WIDTH, HEADS, PATCH, IMAGE, PROMPTS, CLASSES] = [768, 12, 16, 224, 8, 4];

/** Builds the forward (and, with `train`, the backward) of the prompt-tuned ViT on shared weights. */
function buildGraph(gpu, weights, { batch, layers }, train) {
  const g = new Graph(gpu, train ? 'vit-train' : 'vit-forward');
  const w = (name) => g.weight(name, weights[name]);
  const image = g.input('image', [batch, 3, IMAGE, IMAGE]);
  const grid = IMAGE / PATCH;
  const patches = G.permute(g, g.reshape(G.conv2d(g, image, w('conv1'), { stride: PATCH }), [batch, WIDTH, grid * grid]), [0, 2, 1]);
  const cls = G.broadcastTo(g, w('cls'), [batch, 1, WIDTH]);
  const tokens = G.layerNorm(g, G.add(g, G.concat(g, [cls, patches], 1), w('pos')), w('lnPreG'), w('lnPreB'));
  const prompt = w('prompt');
  let x = G.concat(g, [tokens, G.broadcastTo(g, prompt, [batch, PROMPTS, WIDTH])], 1);
  for (let i = 0; i < layers; i++) {
    const bw = {};
    for (const name of Object.keys(preNormBlockShapes(WIDTH))) bw[name] = w(`${i}.${name}`);
    x = preNormBlock(g, x, bw, HEADS);
  }
  const feats = g.reshape(G.slice(g, x, [0, 0, 0], [batch, 1, WIDTH]), [batch, WIDTH]);
  const headW = w('headW');
  const headB = w('headB');
  const logits = G.matmul(g, G.layerNorm(g, feats, w('lnPostG'), w('lnPostB')), headW, { bias: headB });
  if (!train) {
    g.output('logits', logits);
    return g;
  }
  const labels = g.input('labels', [batch], 'i32');
  const loss = G.crossEntropy(g, logits, labels);
  const grads = backward(g, loss, [prompt, headW, headB]);
  g.output('loss', loss);
  g.output('prompt', grads.get(prompt));
  g.output('headW', grads.get(headW));
  g.output('headB', grads.get(headB));
  return g;
}

export default async function (ctx) {
  const { gpu } = ctx;
  const size = ctx.quick ? QUICK : FULL;
  const tag = `vit-b16 L${size.layers} B${size.batch} +${PROMPTS} prompts`;
  const [fwdName, stepName] = [`${tag} forward`, `${tag} train step`];
  if (!ctx.wants(fwdName) && !ctx.wants(stepName)) return;

  let seed = 1;
  const weights = {};
  const add = (name, shape, scale = 0.02) => {
    const n = shape.reduce((a, b) => a * b, 1);
    weights[name] = Tensor.fromArray(gpu, values(n, seed++).map((v) => v * scale), shape);
  };
  add('conv1', [WIDTH, 3, PATCH, PATCH]);
  add('cls', [1, 1, WIDTH]);
  add('pos', [(IMAGE / PATCH) ** 2 + 1, WIDTH]);
  for (const n of ['lnPreG', 'lnPostG']) weights[n] = Tensor.fromArray(gpu, new Float32Array(WIDTH).fill(1), [WIDTH]);
  for (const n of ['lnPreB', 'lnPostB']) add(n, [WIDTH]);
  add('prompt', [1, PROMPTS, WIDTH]);
  add('headW', [WIDTH, CLASSES]);
  add('headB', [CLASSES]);
  for (let i = 0; i < size.layers; i++) {
    for (const [name, shape] of Object.entries(preNormBlockShapes(WIDTH))) {
      if (name.startsWith('ln') && name.endsWith('g')) weights[`${i}.${name}`] = Tensor.fromArray(gpu, new Float32Array(shape[0]).fill(1), shape);
      else add(`${i}.${name}`, shape, shape.length === 2 ? 1 / Math.sqrt(shape[0]) : 0.02);
    }
  }

  const forward = buildGraph(gpu, weights, size, false);
  const step = buildGraph(gpu, weights, size, true);
  const fStats = forward.compile();
  const sStats = step.compile();
  ctx.note(`${tag}: planned peak ${(fStats.plannedPeakBytes / 2 ** 20).toFixed(0)} MiB forward (unplanned ${(fStats.unplannedBytes / 2 ** 20).toFixed(0)}), ${(sStats.plannedPeakBytes / 2 ** 20).toFixed(0)} MiB train step (unplanned ${(sStats.unplannedBytes / 2 ** 20).toFixed(0)}), weights ${(fStats.weightBytes / 2 ** 20).toFixed(0)} MiB`);
  const image = Tensor.fromArray(gpu, values(size.batch * 3 * IMAGE * IMAGE, 99), [size.batch, 3, IMAGE, IMAGE]);
  const labels = Tensor.fromArray(gpu, Array.from({ length: size.batch }, (_, i) => i % CLASSES), [size.batch], 'i32');
  const opt = new AdamW(gpu, ['prompt', 'headW', 'headB'].map((name) => ({ name, param: weights[name] })), { lr: 1e-3 });
  const shape = `image [${size.batch},3,${IMAGE},${IMAGE}], width ${WIDTH}, ${HEADS} heads`;
  // Matmul and attention FLOPs of the forward; the step also propagates the
  // input gradient back through every block (about as much again), with no
  // weight gradients for the frozen backbone.
  const L = (IMAGE / PATCH) ** 2 + 1 + PROMPTS;
  const forwardFlops = size.batch * (2 * (IMAGE / PATCH) ** 2 * WIDTH * 3 * PATCH * PATCH + size.layers * (24 * L * WIDTH * WIDTH + 4 * L * L * WIDTH));
  const runs = 2;

  const fwd = await ctx.bench({
    name: fwdName,
    shape,
    flops: forwardFlops,
    runs,
    warmup: 1,
    ours: () => {
      const out = forward.run({ image });
      return () => out.logits.dispose();
    },
  });
  const train = await ctx.bench({
    name: stepName,
    shape,
    flops: 2 * forwardFlops,
    runs,
    warmup: 1,
    ours: () => {
      const out = step.run({ image, labels });
      opt.step({ prompt: out.prompt, headW: out.headW, headB: out.headB });
      return () => Object.values(out).forEach((t) => t.dispose());
    },
  });
  if (fwd && train) ctx.note(`${tag}: train step = ${(train.median_ms / fwd.median_ms).toFixed(2)}× the forward (goal ≤ 3.5×)`);
  forward.dispose();
  step.dispose();
  opt.dispose();
  for (const t of [image, labels, ...Object.values(weights)]) t.dispose();
}
