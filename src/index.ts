// Browser-safe entry (no Node built-ins): the public API of the engine.

export { getDevice, setGpuProvider, Gpu } from './device.js';
export type { AdapterSummary, GetDeviceOptions } from './device.js';
export { Tensor, numel, shapeString, resolveReshape, BYTES_PER_ELEMENT } from './tensor.js';
export type { DType, Shape, TensorData } from './tensor.js';
export { BufferPool, sizeClass } from './pool.js';
export type { PoolStats } from './pool.js';
export * from './kernels/index.js';
export * from './io/safetensors.js';
export * from './models/clip/tokenizer.js';
export * from './io/onnx.js';
export * from './io/image.js';
export { Graph } from './graph/graph.js';
export type { Value, GraphStats, OpKernel, ValueKind } from './graph/graph.js';
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
