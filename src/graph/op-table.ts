// One table of every graph op: the op's name (its builder in ops.ts, the
// Graph method, or the node a backward rule adds) → the `op` of the nodes it
// puts in a graph → the kernel(s) that run it → their WGSL shader(s) → its
// backward rule (which ops that rule adds) or why it has none → the test
// files whose registered op cases check it against float64 references.
//
// test/op-coverage.test.ts holds the code to this table: every function
// ops.ts exports must be a row (or a helper below), every row's kernel,
// shader and test file must exist, and the op cases those test files
// register (test/ref/op-check.ts opCase) must include a forward case for
// every op and a finite-difference gradient case for every backward rule.
// An op case fails its own test unless it really checked what it declares.

import { UNARY_OPS } from '../kernels/unary.js';

/** A kernel: the module under src/kernels/ and the function it exports. */
export interface KernelRef {
  module: string;
  fn: string;
}

export type OpBackward =
  | {
      /** Where the rule lives and what it computes. */
      rule: string;
      /** The ops (table keys) whose nodes the rule adds. autograd itself may add `add` (accumulation) and `zeros` (unreachable values). */
      adds: readonly string[];
    }
  | {
      /** Why there is no backward rule; backward() through the op throws, naming it. */
      forwardOnly: string;
    };

export interface OpRow {
  /** ops: a builder exported by ops.ts; graph: a Graph method; rule: a node only a backward rule adds (not exported). */
  defined: 'ops' | 'graph' | 'rule';
  /** GraphNode.op of the nodes this op adds (the builder's name unless the node is named per variant). */
  nodes: readonly string[];
  /** The kernels its nodes call; none for views (reshape) and zeros (a clearBuffer). */
  kernels: readonly KernelRef[];
  /** Shader names (shaders/<name>.wgsl) those kernels dispatch. */
  shaders: readonly string[];
  backward: OpBackward;
  /** Test files (test/…) that register op cases for this op. */
  tests: readonly string[];
  /** Test files that check its kernels directly (not through the graph op). */
  kernelTests?: readonly string[];
}

/** Exported by ops.ts but adding no node of its own: built from the ops in `uses`. */
export interface OpHelper {
  helper: string;
  uses: readonly string[];
}

const k = (module: string, fn: string): KernelRef => ({ module: `src/kernels/${module}.ts`, fn });
const FIRST_ORDER = 'a gradient op that backward rules add; autograd is first-order, so nothing differentiates through it';
const AUTOGRAD = 'test/autograd.test.ts';

export const OP_TABLE = {
  zeros: {
    defined: 'ops',
    nodes: ['zeros'],
    kernels: [],
    shaders: [],
    backward: { forwardOnly: 'it has no inputs' },
    tests: [AUTOGRAD],
  },
  reshape: {
    defined: 'graph',
    nodes: ['reshape'],
    kernels: [],
    shaders: [],
    backward: { rule: 'graph.ts Graph.reshape: dy reshaped back', adds: ['reshape'] },
    tests: [AUTOGRAD],
  },
  matmul: {
    defined: 'ops',
    nodes: ['matmul'],
    kernels: [k('matmul', 'matmul')],
    shaders: ['matmul'],
    backward: {
      rule: 'ops.ts matmulBackward: dA, dB by transposed matmuls, dbias and dresidual summed to shape; a fused activation recomputes the pre-activation',
      adds: ['matmul', 'activationGrad', 'reduceSum', 'reshape'],
    },
    tests: [AUTOGRAD],
    kernelTests: ['test/matmul.test.ts', 'test/matmul-f16.test.ts'],
  },
  add: {
    defined: 'ops',
    nodes: ['add'],
    kernels: [k('binary', 'add')],
    shaders: ['binary'],
    backward: { rule: 'ops.ts binaryBackward.add: dy summed to each shape', adds: ['reduceSum', 'reshape'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/binary.test.ts'],
  },
  sub: {
    defined: 'ops',
    nodes: ['sub'],
    kernels: [k('binary', 'sub')],
    shaders: ['binary'],
    backward: { rule: 'ops.ts binaryBackward.sub: dy and −dy summed to each shape', adds: ['mul', 'reduceSum', 'reshape'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/binary.test.ts'],
  },
  mul: {
    defined: 'ops',
    nodes: ['mul'],
    kernels: [k('binary', 'mul')],
    shaders: ['binary'],
    backward: { rule: 'ops.ts binaryBackward.mul: dy·b and dy·a summed to each shape', adds: ['mul', 'reduceSum', 'reshape'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/binary.test.ts'],
  },
  div: {
    defined: 'ops',
    nodes: ['div'],
    kernels: [k('binary', 'div')],
    shaders: ['binary'],
    backward: { rule: 'ops.ts div: da = dy / b, db = −(dy / b)·y, summed to each shape', adds: ['div', 'mul', 'reduceSum', 'reshape'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/binary.test.ts'],
  },
  activation: {
    defined: 'ops',
    nodes: UNARY_OPS,
    kernels: [k('unary', 'unary')],
    shaders: ['unary'],
    backward: { rule: "ops.ts activation: dy·f'(x) by activationGrad", adds: ['activationGrad'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/unary.test.ts'],
  },
  activationGrad: {
    defined: 'ops',
    nodes: UNARY_OPS.map((op) => `activationBackward.${op}`),
    kernels: [k('activation-backward', 'activationBackward')],
    shaders: ['activation_backward'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: [AUTOGRAD],
    kernelTests: ['test/activation-backward.test.ts'],
  },
  l2Normalize: {
    defined: 'ops',
    nodes: ['l2Normalize'],
    kernels: [k('l2norm', 'l2Normalize')],
    shaders: ['l2norm'],
    backward: { rule: 'ops.ts l2Normalize: one l2NormalizeBackward node', adds: ['l2NormalizeBackward'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/l2norm.test.ts'],
  },
  l2NormalizeBackward: {
    defined: 'rule',
    nodes: ['l2NormalizeBackward'],
    kernels: [k('l2norm', 'l2NormalizeBackward')],
    shaders: ['l2norm'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: [AUTOGRAD],
    kernelTests: ['test/l2norm.test.ts'],
  },
  reduceSum: {
    defined: 'ops',
    nodes: ['reduceSum'],
    kernels: [k('reduce', 'reduceSum')],
    shaders: ['reduce'],
    backward: { rule: 'ops.ts reduction: dy broadcast back over the reduced axes', adds: ['reshape', 'zeros', 'add'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/reduce.test.ts'],
  },
  reduceMean: {
    defined: 'ops',
    nodes: ['reduceMean'],
    kernels: [k('reduce', 'reduceMean')],
    shaders: ['reduce'],
    backward: { rule: 'ops.ts reduction: dy broadcast back over the reduced axes, times 1/count', adds: ['reshape', 'zeros', 'add', 'mul'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/reduce.test.ts'],
  },
  layerNorm: {
    defined: 'ops',
    nodes: ['layerNorm'],
    kernels: [k('layernorm', 'layerNorm')],
    shaders: ['layernorm'],
    backward: {
      rule: "ops.ts layerNormBackwardRule: one layerNormBackward node from the forward's saved row statistics (dβ without γ: dy summed)",
      adds: ['layerNormBackward', 'reduceSum', 'reshape'],
    },
    tests: [AUTOGRAD],
    kernelTests: ['test/layernorm.test.ts'],
  },
  layerNormBackward: {
    defined: 'rule',
    nodes: ['layerNormBackward'],
    kernels: [k('layernorm-backward', 'layerNormBackward')],
    shaders: ['layernorm_backward'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: [AUTOGRAD, 'test/layernorm-backward.test.ts'],
    kernelTests: ['test/layernorm-backward.test.ts'],
  },
  layerNorm2d: {
    defined: 'ops',
    nodes: ['layerNorm2d'],
    kernels: [k('layernorm', 'layerNorm2d')],
    shaders: ['layernorm'],
    backward: {
      rule: "ops.ts layerNorm2d: layerNorm's rule on the channels-last permutation, the row statistics recomputed by one layerNorm pass",
      adds: ['permute', 'layerNorm', 'layerNormBackward', 'reduceSum', 'reshape'],
    },
    tests: ['test/layernorm-backward.test.ts'],
    kernelTests: ['test/layernorm.test.ts'],
  },
  softmax: {
    defined: 'ops',
    nodes: ['softmax'],
    kernels: [k('softmax', 'softmax')],
    shaders: ['softmax'],
    backward: { rule: 'ops.ts softmaxGrad: y∘(dy − Σ dy∘y)', adds: ['mul', 'reduceSum', 'sub'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/softmax.test.ts'],
  },
  attention: {
    defined: 'ops',
    nodes: ['attention'],
    kernels: [k('attention', 'attention')],
    shaders: ['attention'],
    backward: { rule: "ops.ts attentionBackwardRule: one fused attentionBackward node from the forward's row log-sum-exp", adds: ['attentionBackward'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/attention.test.ts'],
  },
  attentionBackward: {
    defined: 'rule',
    nodes: ['attentionBackward'],
    kernels: [k('attention-backward', 'attentionBackward')],
    shaders: ['attention_backward'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: [AUTOGRAD],
    kernelTests: ['test/attention-backward.test.ts'],
  },
  permute: {
    defined: 'ops',
    nodes: ['permute'],
    kernels: [k('transform', 'permute')],
    shaders: ['transform', 'transpose_tiled'],
    backward: { rule: 'ops.ts permute: dy permuted by the inverse', adds: ['permute'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/transform.test.ts'],
  },
  slice: {
    defined: 'ops',
    nodes: ['slice'],
    kernels: [k('transform', 'slice')],
    shaders: ['transform'],
    backward: { rule: 'ops.ts slice: dy zero-padded back (steps of 1 only; other steps throw)', adds: ['pad'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/transform.test.ts'],
  },
  pad: {
    defined: 'ops',
    nodes: ['pad'],
    kernels: [k('transform', 'pad')],
    shaders: ['transform'],
    backward: { rule: 'ops.ts pad: dy sliced back', adds: ['slice'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/transform.test.ts'],
  },
  concat: {
    defined: 'ops',
    nodes: ['concat'],
    kernels: [k('transform', 'concat')],
    shaders: ['transform'],
    backward: { rule: "ops.ts concat: each input's slice of dy", adds: ['slice'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/transform.test.ts'],
  },
  gather: {
    defined: 'ops',
    nodes: ['gather'],
    kernels: [k('gather', 'gather')],
    shaders: ['gather'],
    backward: { rule: "ops.ts gather: the table's gradient by one gatherBackward scatter-add (indices get none)", adds: ['gatherBackward'] },
    tests: ['test/gather-backward.test.ts'],
    kernelTests: ['test/gather.test.ts'],
  },
  gatherBackward: {
    defined: 'rule',
    nodes: ['gatherBackward'],
    kernels: [k('gather-backward', 'gatherBackward')],
    shaders: ['gather_backward'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: ['test/gather-backward.test.ts'],
    kernelTests: ['test/gather-backward.test.ts'],
  },
  conv2d: {
    defined: 'ops',
    nodes: ['conv2d'],
    kernels: [k('conv', 'conv2d')],
    shaders: ['conv2d'],
    backward: {
      rule: 'ops.ts conv2d: dx = convTranspose2d(dy, w), dW = conv2dWeightGrad, dbias = Σ dy; a fused activation throws (its pre-activation is not kept)',
      adds: ['convTranspose2d', 'conv2dWeightGrad', 'reduceSum'],
    },
    tests: ['test/conv-backward.test.ts'],
    kernelTests: ['test/conv.test.ts', 'test/conv-f16.test.ts'],
  },
  conv2dWeightGrad: {
    defined: 'rule',
    nodes: ['conv2dWeightGrad'],
    kernels: [k('conv-backward', 'conv2dWeightGrad')],
    shaders: ['conv2d_backward'],
    backward: { forwardOnly: FIRST_ORDER },
    tests: ['test/conv-backward.test.ts'],
    kernelTests: ['test/conv-backward.test.ts'],
  },
  convTranspose2d: {
    defined: 'ops',
    nodes: ['convTranspose2d'],
    kernels: [k('conv', 'convTranspose2d')],
    shaders: ['conv_transpose2d'],
    backward: {
      rule: "ops.ts convTranspose2d: conv2d's adjoint, so dx = conv2d(dy, w), dW = conv2dWeightGrad(dy, x), dbias = Σ dy (crop/pad when outputPadding ≥ stride)",
      adds: ['conv2d', 'conv2dWeightGrad', 'reduceSum', 'slice', 'pad'],
    },
    tests: ['test/conv-backward.test.ts'],
    kernelTests: ['test/conv.test.ts', 'test/conv-f16.test.ts'],
  },
  maxPool2d: {
    defined: 'ops',
    nodes: ['maxPool2d'],
    kernels: [k('conv', 'maxPool2d')],
    shaders: ['maxpool2d'],
    backward: {
      forwardOnly:
        "nothing trains through it: its one user is SAM2's Hiera q-pooling (models/sam2/hiera.ts), an inference-only encoder; a backward needs the argmax positions, which the forward kernel does not keep (a new kernel and shader)",
    },
    tests: ['test/conv.test.ts'],
    kernelTests: ['test/conv.test.ts'],
  },
  resize: {
    defined: 'ops',
    nodes: ['resize.nearest', 'resize.bilinear'],
    kernels: [k('resize', 'resize'), k('resize', 'resizeAxisMatrix')],
    shaders: ['resize'],
    backward: { rule: 'ops.ts resize: dx = Rhᵀ·dy·Rw, two matmuls with the axis matrices (resizeAxisMatrix) as graph constants', adds: ['matmul'] },
    tests: ['test/resize.test.ts'],
    kernelTests: ['test/resize.test.ts'],
  },
  crossEntropy: {
    defined: 'ops',
    nodes: ['crossEntropy'],
    kernels: [k('cross-entropy', 'softmaxCrossEntropy')],
    shaders: ['cross_entropy'],
    backward: { rule: 'ops.ts crossEntropy: the dlogits the forward saved, times d loss (labels get none)', adds: ['mul'] },
    tests: [AUTOGRAD],
    kernelTests: ['test/cross-entropy.test.ts'],
  },
  depthwiseConv2dNhwc: {
    defined: 'ops',
    nodes: ['depthwiseConv2dNhwc'],
    kernels: [k('conv', 'depthwiseConv2dNhwc')],
    shaders: ['depthwise_nhwc'],
    backward: { forwardOnly: "nothing trains through it: MobileSAM's TinyViT encoder (models/sam/tinyvit.ts) runs it, inference only; its rule throws, naming the op" },
    tests: ['test/conv.test.ts'],
    kernelTests: ['test/mobilesam-encoder.test.ts', 'test/conv-f16.test.ts'],
  },
} as const satisfies Record<string, OpRow>;

export type OpName = keyof typeof OP_TABLE;

/** ops.ts exports that add no node of their own. */
export const OP_HELPERS = {
  broadcastTo: { helper: 'x broadcast to a shape: add(zeros(shape), x)', uses: ['add', 'zeros'] },
  sumToShape: { helper: "a broadcast value's gradient: dy summed over the broadcast axes", uses: ['reduceSum', 'reshape'] },
  scalar: { helper: 'a graph-owned f32 [1] constant (Graph.constant, a weight): no node', uses: [] },
} as const satisfies Record<string, OpHelper>;

const byNode = new Map<string, OpName>();
for (const [name, row] of Object.entries(OP_TABLE) as Array<[OpName, OpRow]>) {
  for (const node of row.nodes) {
    if (byNode.has(node)) throw new Error(`op-table: node op '${node}' is listed by both ${byNode.get(node)} and ${name}`);
    byNode.set(node, name);
  }
}

/** The table's op for a GraphNode.op; undefined when no row lists it. */
export function opOfNode(nodeOp: string): OpName | undefined {
  return byNode.get(nodeOp);
}

export function isOpName(name: string): name is OpName {
  return Object.hasOwn(OP_TABLE, name);
}
