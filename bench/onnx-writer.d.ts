// Types of bench/onnx-writer.js (plain JS so the bench runs without a build), for the TypeScript tests that use it.
export function singleOpModel(model: {
  op: string;
  inputs: Array<[string, number[]]>;
  initializers?: Array<[string, number[], Float32Array]>;
  outputs: Array<[string, number[]]>;
  attributes?: Record<string, number | number[]>;
}): Uint8Array;
