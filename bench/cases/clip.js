// CLIP ViT-B/16 and ViT-B/32 on the engine at their true sizes (random
// weights): the image tower at 224², batch 1 and 8, and the text tower for 8
// prompts (77 tokens each, as CLIP always pads). Weights come from a
// shape-only OpenAI-layout safetensors whose data is synthesised on read, so
// nothing is downloaded and the ~600 MB checkpoint is never held whole.
// Context lines: the planned peak GPU memory of each compiled graph.
// --quick: ViT-B/32 batch 1 and the text tower for 2 prompts.
// --gpu-check: ViT-B/16 batch 8 alone (with --quick: ViT-B/32 batch 1 alone).
// Adapters with shader-f16 (not under --gpu-check): the first architecture's
// image tower at each batch with f16 weights (the blocks' linear weights and
// the patch conv) against the f32 model, same images, same run (ratio: f32
// time / f16 time).

import { ClipModel, Tensor, openSafetensors, syntheticSafetensors } from '../../dist/node.js';
import { memoryLine, mib } from '../memory.js';
import { benchF16Weights, values } from '../values.js';

const IMAGE = 224;
const prompts = (quick) => (quick ? 2 : 8);
const ARCHS = {
  'ViT-B/16': { width: 768, layers: 12, patch: 16 },
  'ViT-B/32': { width: 768, layers: 12, patch: 32 },
};
const TEXT = { width: 512, layers: 12, context: 77, vocab: 49408 };
const EMBED = 512;
const [START, END] = [49406, 49407]; // <|startoftext|>, <|endoftext|>

/** The tensors of openai/CLIP's state_dict for one architecture: [key, shape]. */
function openaiKeys({ width: V, layers: LV, patch }) {
  const block = (p, D) => [
    [`${p}attn.in_proj_weight`, [3 * D, D]], [`${p}attn.in_proj_bias`, [3 * D]], [`${p}attn.out_proj.weight`, [D, D]], [`${p}attn.out_proj.bias`, [D]],
    [`${p}ln_1.weight`, [D]], [`${p}ln_1.bias`, [D]], [`${p}mlp.c_fc.weight`, [4 * D, D]], [`${p}mlp.c_fc.bias`, [4 * D]],
    [`${p}mlp.c_proj.weight`, [D, 4 * D]], [`${p}mlp.c_proj.bias`, [D]], [`${p}ln_2.weight`, [D]], [`${p}ln_2.bias`, [D]],
  ];
  const grid = IMAGE / patch;
  const T = TEXT.width;
  return [
    ['positional_embedding', [TEXT.context, T]], ['text_projection', [T, EMBED]], ['logit_scale', []],
    ['visual.class_embedding', [V]], ['visual.positional_embedding', [grid * grid + 1, V]], ['visual.proj', [V, EMBED]],
    ['visual.conv1.weight', [V, 3, patch, patch]], ['visual.ln_pre.weight', [V]], ['visual.ln_pre.bias', [V]],
    ...Array.from({ length: LV }, (_, i) => block(`visual.transformer.resblocks.${i}.`, V)).flat(),
    ['visual.ln_post.weight', [V]], ['visual.ln_post.bias', [V]],
    ['token_embedding.weight', [TEXT.vocab, T]],
    ...Array.from({ length: TEXT.layers }, (_, i) => block(`transformer.resblocks.${i}.`, T)).flat(),
    ['ln_final.weight', [T]], ['ln_final.bias', [T]],
  ];
}

/** Multiply-adds ×2 of a pre-LN transformer over `tokens` tokens of `width` (attention over all of them). */
const transformerFlops = (layers, tokens, width) => layers * (24 * tokens * width * width + 4 * tokens * tokens * width);

function imageFlops({ width, layers, patch }, batch) {
  const grid = IMAGE / patch;
  return batch * (2 * grid * grid * width * 3 * patch * patch + transformerFlops(layers, grid * grid + 1, width) + 2 * width * EMBED);
}

/** Text FLOPs: the causal mask skips nothing in the kernels' count, so all 77² scores are counted. */
const textFlops = (batch) => batch * (transformerFlops(TEXT.layers, TEXT.context, TEXT.width) + 2 * TEXT.width * EMBED);

/** Token ids of `n` prompts shaped like "a photo of a {class}." (start, 6 words, end, zero padding). */
function promptTokens(n) {
  const ids = new Int32Array(n * TEXT.context);
  for (let p = 0; p < n; p++) {
    const row = p * TEXT.context;
    ids[row] = START;
    for (let i = 1; i <= 6; i++) ids[row + i] = 320 + ((p * 7 + i * 131) % 40000);
    ids[row + 7] = END;
  }
  return ids;
}

async function readAndDispose(t) {
  const data = await t.read();
  t.dispose();
  return data;
}

/**
 * The planned memory of the model's compiled graph for `prefix` (image|N|… or
 * text|N|…). ClipModel keeps its graphs in a private GraphCache (one per batch
 * shape), whose private map the bench reads to report Graph.stats().
 */
function graphStats(model, prefix) {
  const graphs = model.graphs?.graphs ?? model.graphs;
  if (!(graphs instanceof Map)) throw new Error('bench clip: ClipModel.graphs is no longer a GraphCache over a Map (internals changed?)');
  for (const [key, graph] of graphs) if (key.startsWith(prefix)) return graph.stats();
  throw new Error(`bench clip: no compiled graph ${prefix}… (ClipModel internals changed?)`);
}

/**
 * The image tower with f16 weights (a second model from the same synthetic
 * checkpoint) vs `model` (f32), one line per batch in `lines` ([name, batch]):
 * batch 1, and batch 8 where issue 19's goal is stated.
 */
async function f16Lines(ctx, lines, arch, model) {
  const { gpu } = ctx;
  const file = await openSafetensors(syntheticSafetensors(openaiKeys(arch), 'f16 line (synthetic)'));
  const half = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f16' });
  await file.close();
  for (const [name, batch] of lines) {
    const images = Tensor.fromArray(gpu, values(batch * 3 * IMAGE * IMAGE, 12), [batch, 3, IMAGE, IMAGE]);
    await benchF16Weights(ctx, {
      name,
      shape: `images [${batch},3,${IMAGE},${IMAGE}] → [${batch},${EMBED}], blocks' linear weights and patch conv f16`,
      flops: imageFlops(arch, batch),
      half: () => half.encodeImage(images),
      full: () => model.encodeImage(images),
      mismatch: 'bench clip: the f16-weight features differ from the f32 ones',
    });
    images.dispose();
  }
  half.dispose();
}

export default async function (ctx) {
  const { gpu } = ctx;
  const archs = ctx.quick ? ['ViT-B/32'] : ctx.gpuCheck ? ['ViT-B/16'] : ['ViT-B/16', 'ViT-B/32'];
  const batches = ctx.quick ? [1] : ctx.gpuCheck ? [8] : [1, 8];
  const promptCount = prompts(ctx.quick);
  const textName = `clip text tower ${promptCount} prompts`;
  const imageName = (arch, batch) => `clip ${arch} image ${IMAGE}² batch ${batch}`;
  // Both checkpoints share the text tower: time it once (not at all under --gpu-check).
  const textArch = ctx.gpuCheck ? undefined : archs[archs.length - 1];

  for (const arch of archs) {
    const wanted = batches.filter((b) => ctx.wants(imageName(arch, b)));
    const withText = arch === textArch && ctx.wants(textName);
    const f16Wanted = arch === archs[0] && !ctx.gpuCheck && gpu.hasF16 ? batches.map((b) => [`${imageName(arch, b)} f16 weights`, b]).filter(([name]) => ctx.wants(name)) : [];
    if (wanted.length === 0 && !withText && f16Wanted.length === 0) continue;
    const a = ARCHS[arch];
    const t0 = performance.now();
    const file = await openSafetensors(syntheticSafetensors(openaiKeys(a), `${arch} (synthetic)`));
    const model = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f32' });
    await file.close();
    const loadMs = performance.now() - t0;
    let weightBytes;
    if (f16Wanted.length > 0) await f16Lines(ctx, f16Wanted, a, model);

    for (const batch of wanted) {
      const images = Tensor.fromArray(gpu, values(batch * 3 * IMAGE * IMAGE, 11 + batch), [batch, 3, IMAGE, IMAGE]);
      const first = await readAndDispose(model.encodeImage(images));
      if (!first.every(Number.isFinite)) throw new Error(`bench clip: ${arch} batch ${batch} gave non-finite features`);
      const stats = graphStats(model, `image|${batch}|`);
      weightBytes = stats.weightBytes;
      ctx.note(`${imageName(arch, batch)}: ${memoryLine(stats)}`);
      const name = imageName(arch, batch);
      const r = await ctx.bench({
        name,
        shape: `images [${batch},3,${IMAGE},${IMAGE}] → [${batch},${EMBED}], ${(IMAGE / a.patch) ** 2 + 1} tokens × ${a.width}, ${a.layers} layers`,
        flops: imageFlops(a, batch),
        // The finiteness check above compiled the graph and its pipelines: it is
        // the warm-up under --quick. A B/16 batch of 8 is ~280 GFLOP: a minute per run on lavapipe.
        warmup: ctx.quick ? 0 : 1,
        runs: ctx.quick ? 3 : batch > 1 ? 2 : 3,
        ours: () => {
          const y = model.encodeImage(images);
          return () => y.dispose();
        },
      });
      if (r) ctx.note(`${name}: ${(r.median_ms / batch).toFixed(0)} ms per image`);
      images.dispose();
    }

    if (withText) {
      const tokens = Tensor.fromArray(gpu, promptTokens(promptCount), [promptCount, TEXT.context], 'i32');
      const first = await readAndDispose(model.encodeText(tokens));
      if (!first.every(Number.isFinite)) throw new Error('bench clip: the text tower gave non-finite features');
      const stats = graphStats(model, `text|${promptCount}|`);
      ctx.note(`${textName}: ${memoryLine(stats)}`);
      const r = await ctx.bench({
        name: textName,
        shape: `tokens [${promptCount},${TEXT.context}] → [${promptCount},${EMBED}], width ${TEXT.width}, ${TEXT.layers} causal layers`,
        flops: textFlops(promptCount),
        // ~6 GFLOP per prompt (12 layers over 77 tokens): 8 prompts are ~7 s a run on lavapipe.
        // --quick: the finiteness check above was the warm-up.
        warmup: ctx.quick ? 0 : 1,
        runs: ctx.quick ? 2 : 3,
        ours: () => {
          const y = model.encodeText(tokens);
          return () => y.dispose();
        },
      });
      if (r) ctx.note(`${textName}: ${(r.median_ms / promptCount).toFixed(0)} ms per prompt`);
      tokens.dispose();
    }
    ctx.note(`${arch}: synthetic checkpoint loaded in ${(loadMs / 1000).toFixed(1)} s${weightBytes ? ` (image tower weights ${mib(weightBytes)})` : ''}`);
    model.dispose();
  }
}
