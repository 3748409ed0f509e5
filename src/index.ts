// Browser-safe entry (no Node built-ins): the public API of the engine
// (`import … from 'medfocus'`). The MedFocus application on top of it is the
// sub-entry `medfocus/app` (app.ts).

export { getDevice, setGpuProvider, setGpuWaitStrategy, Gpu } from './device.js';
export type { AdapterSummary, GetDeviceOptions } from './device.js';
export { Tensor, numel, shapeString, resolveReshape, BYTES_PER_ELEMENT } from './tensor.js';
export type { DType, Shape, TensorData } from './tensor.js';
export { BufferPool, sizeClass } from './pool.js';
export type { PoolStats } from './pool.js';
export * from './kernels/index.js';
export * from './io/safetensors.js';
export { cleanText, fixText, htmlUnescape } from './models/clip/text-cleanup.js';
export * from './models/clip/tokenizer.js';
export * from './io/onnx.js';
export * from './io/image.js';
export { Graph } from './graph/graph.js';
export type { Value, GraphStats, OpKernel, ValueKind, GraphProfile, NodeProfile, OpKindProfile } from './graph/graph.js';
export * as graphOps from './graph/ops.js';
export * from './train/optimizer.js';
export { backward } from './graph/autograd.js';
export type { BackwardRule, GradContext, GraphNode, MultiOpKernel } from './graph/graph.js';
export { ClipModel } from './models/clip/model.js';
export type { ClipImageOptions, ClipImageTrace, ClipTextTrace, ClipLogits } from './models/clip/model.js';
export { loadClipWeights } from './models/clip/weights.js';
export type { ClipWeights, LoadClipWeightsOptions } from './models/clip/weights.js';
export { inferClipConfig } from './models/clip/config.js';
export type { ClipConfig, ClipTowerConfig, ClipKeyLayout } from './models/clip/config.js';
export * from './models/vit.js';
export * from './models/sam/segmenter.js';
export { MobileSamEncoder, extractMobileSamEncoderWeights, SAM_PIXEL_MEAN, SAM_PIXEL_STD, SAM_IMAGE_SIZE } from './models/sam/mobilesam-encoder.js';
export type { MobileSamEncoderWeights, SamPreprocessed } from './models/sam/mobilesam-encoder.js';
export * from './models/sam/prompt-encoder.js';
export * from './models/sam/mask-decoder-weights.js';
export * from './models/sam/mask-decoder.js';
export * from './models/sam/mask-selection.js';
export * from './models/sam/mobilesam-decoder-weights.js';
export * from './models/sam/predictor.js';
export * from './models/sam/automatic.js';
export * from './render/overlay.js';
export * from './render/charts.js';
export * from './util/stats.js';
export * from './util/progress.js';
export * from './io/sources.js';
export * from './models/sam2/config.js';
export { Sam2ImageEncoder, SAM2_MEAN, SAM2_STD, sinePositionEncoding } from './models/sam2/image-encoder.js';
export type { Sam2ImageFeatures, Sam2EncodeOptions } from './models/sam2/image-encoder.js';
export { Sam2Predictor } from './models/sam2/predictor.js';
