// Every kernel entry; one module per op family (validate, program, dispatch).
export { dispatchKernel, compileKernel, linearGrid, placeholder } from './program.js';
export type { KernelSource, KernelResource, UniformValues } from './program.js';
export * from './unary.js';
export * from './tune.js';
export * from './binary.js';
export * from './transform.js';
export * from './gather.js';
export * from './resize.js';
export * from './layernorm.js';
export * from './softmax.js';
export * from './reduce.js';
export * from './topk.js';
export * from './conv.js';
export * from './preprocess.js';
export * from './activation.js';
export * from './matmul.js';
export * from './attention.js';
