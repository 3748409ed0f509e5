// A small graph runtime. A model is written as plain code against symbolic
// values; each op's output shape is inferred when it is added (a shape error
// names the op and the shapes then, not at run time). `compile()` plans
// memory from value lifetimes: intermediates share a few GPU buffers
// ("slots") whenever their lifetimes do not overlap, so the peak is known
// before anything runs. `run()` records the whole forward into the device's
// one open command encoder and submits once; weights stay resident; nothing
// is read back mid-graph.
//
// Ops may have several outputs (a layer norm that also saves its row
// statistics) and may carry a backward rule: autograd.ts differentiates a
// graph by calling those rules, which add more ops to the same graph, so a
// backward pass is planned and recorded exactly like the forward.

import type { Gpu } from '../device.js';
import { BYTES_PER_ELEMENT, Tensor, numel, shapeString, type DType, type Shape } from '../tensor.js';

export type ValueKind = 'input' | 'weight' | 'intermediate';

/** A symbolic tensor: known shape and dtype, no data until the graph runs. */
export interface Value {
  readonly id: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly kind: ValueKind;
  readonly name: string;
}

/** Records the op's dispatches; writes into `output` (never one of `inputs`). */
export type OpKernel = (gpu: Gpu, inputs: Tensor[], output: Tensor) => void;

/** Records an op with several outputs; writes every one of `outputs`. */
export type MultiOpKernel = (gpu: Gpu, inputs: Tensor[], outputs: Tensor[]) => void;

/** What a backward rule sees of its node. */
export interface GradContext {
  inputs: readonly Value[];
  outputs: readonly Value[];
  /** Gradient of the loss w.r.t. each output; undefined where the output does not lead to the loss. */
  dOutputs: ReadonlyArray<Value | undefined>;
  /** needs[i]: input i leads to a value a gradient was asked for; other entries may be left undefined. */
  needs: readonly boolean[];
}

/**
 * Adds ops to `g` that compute the gradients of the node's inputs from the
 * gradients of its outputs; returns one entry per input (undefined: none).
 */
export type BackwardRule = (g: Graph, ctx: GradContext) => Array<Value | undefined>;

/** A node as autograd reads it. */
export interface GraphNode {
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly backward?: BackwardRule;
}

interface OpNode extends GraphNode {
  /** undefined for views (reshape): no dispatch, the output aliases its input's memory. */
  kernel?: MultiOpKernel;
  dispatches: number;
}

export interface GraphStats {
  ops: number;
  dispatches: number;
  /** Bytes of the planned intermediate slots (weights, inputs and outputs excluded). */
  plannedPeakBytes: number;
  /** Bytes the intermediates would take if each had its own buffer. */
  unplannedBytes: number;
  weightBytes: number;
  /** Bytes of the inputs (a buffer of the graph's own for each one fed from host arrays). */
  inputBytes: number;
  /** Bytes of the outputs: the graph keeps a buffer per output, and each run() hands back copies of this size. */
  outputBytes: number;
  slots: number;
}

interface Plan {
  slotOf: Map<number, number>;
  slotBytes: number[];
  /** Values some op reads (views included) or that are graph outputs. */
  read: Set<number>;
}

function bytesOf(v: Value): number {
  return Math.max(4, Math.ceil((numel(v.shape) * BYTES_PER_ELEMENT[v.dtype]) / 4) * 4);
}

export class Graph {
  private readonly values: Value[] = [];
  private readonly nodes: OpNode[] = [];
  private readonly producer = new Map<number, OpNode>();
  private readonly weights = new Map<number, Tensor>();
  private readonly inputs = new Map<string, Value>();
  private readonly outputs = new Map<string, Value>();
  /** Tensors the graph uploaded itself (constant()); freed by dispose(). */
  private readonly ownedConstants: Tensor[] = [];
  private plan: Plan | undefined;
  private slots: Tensor[] = [];
  private readonly inputBuffers = new Map<string, Tensor>();
  private readonly unplannedBuffers = new Map<number, Tensor>();

  constructor(readonly gpu: Gpu, readonly name = 'graph') {}

  private newValue(shape: Shape, dtype: DType, kind: ValueKind, name: string): Value {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`${this.name}: ${name} has invalid shape ${shapeString(shape)}`);
    }
    const v: Value = Object.freeze({ id: this.values.length, shape: Object.freeze([...shape]), dtype, kind, name });
    this.values.push(v);
    this.plan = undefined;
    return v;
  }

  /** A value fed at every run. */
  input(name: string, shape: Shape, dtype: DType = 'f32'): Value {
    if (this.inputs.has(name)) throw new Error(`${this.name}: input '${name}' declared twice`);
    const v = this.newValue(shape, dtype, 'input', name);
    this.inputs.set(name, v);
    return v;
  }

  /** A resident tensor (weights, constants). The graph does not own it. */
  weight(name: string, tensor: Tensor): Value {
    const v = this.newValue(tensor.shape, tensor.dtype, 'weight', name);
    this.weights.set(v.id, tensor);
    return v;
  }

  /** A constant uploaded once and owned by the graph (autograd's seeds and signs). */
  constant(name: string, data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Value {
    const t = Tensor.fromArray(this.gpu, data, shape, dtype);
    this.ownedConstants.push(t);
    return this.weight(name, t);
  }

  /** Adds an op whose output shape the caller inferred (op builders in ops.ts do this). */
  apply(op: string, inputs: readonly Value[], shape: Shape, dtype: DType, kernel: OpKernel, dispatches = 1, backward?: BackwardRule): Value {
    return this.applyMulti(op, inputs, [{ shape, dtype }], (gpu, ins, [out]) => kernel(gpu, ins, out), dispatches, backward)[0];
  }

  /** Adds an op with several outputs (shapes inferred by the caller). */
  applyMulti(
    op: string,
    inputs: readonly Value[],
    outputs: ReadonlyArray<{ shape: Shape; dtype: DType }>,
    kernel: MultiOpKernel,
    dispatches = 1,
    backward?: BackwardRule,
  ): Value[] {
    for (const x of inputs) this.checkOwn(op, x);
    const outs = outputs.map((o, k) => this.newValue(o.shape, o.dtype, 'intermediate', `${op}#${this.nodes.length}${outputs.length > 1 ? `.${k}` : ''}`));
    const node: OpNode = { op, inputs: [...inputs], outputs: outs, kernel, dispatches, backward };
    this.nodes.push(node);
    for (const o of outs) this.producer.set(o.id, node);
    return outs;
  }

  /** The nodes in build (= run) order. */
  get nodeList(): readonly GraphNode[] {
    return this.nodes;
  }

  /** The node that computes `v`; undefined for inputs and weights. */
  producerOf(v: Value): GraphNode | undefined {
    this.checkOwn('producerOf', v);
    return this.producer.get(v.id);
  }

  /** Same data, new shape (one -1 allowed): no dispatch, no copy. */
  reshape(x: Value, shape: Shape): Value {
    this.checkOwn('reshape', x);
    const n = numel(x.shape);
    const out = [...shape];
    const unknown = out.indexOf(-1);
    if (unknown >= 0) {
      const rest = numel(out.filter((_, i) => i !== unknown));
      if (rest === 0 || n % rest !== 0) throw new Error(`reshape: cannot infer -1 in ${shapeString(shape)} from ${shapeString(x.shape)}`);
      out[unknown] = n / rest;
    }
    if (numel(out) !== n) throw new Error(`reshape: ${shapeString(x.shape)} (${n} elements) cannot become ${shapeString(shape)}`);
    const output = this.newValue(out, x.dtype, 'intermediate', `reshape#${this.nodes.length}`);
    const backward: BackwardRule = (g, { inputs, dOutputs }) => [g.reshape(dOutputs[0]!, inputs[0].shape)];
    const node: OpNode = { op: 'reshape', inputs: [x], outputs: [output], dispatches: 0, backward };
    this.nodes.push(node);
    this.producer.set(output.id, node);
    return output;
  }

  /** Marks a value as a graph output; run() returns it as a fresh tensor the caller owns. */
  output(name: string, v: Value): void {
    this.checkOwn('output', v);
    if (this.outputs.has(name)) throw new Error(`${this.name}: output '${name}' declared twice`);
    this.outputs.set(name, v);
    this.plan = undefined;
  }

  private checkOwn(op: string, v: Value): void {
    if (this.values[v.id] !== v) throw new Error(`${op}: value ${v.name} ${shapeString(v.shape)} belongs to another graph`);
  }

  /** The value a view ultimately reads: views share their source's memory. */
  private storageOf(v: Value): Value {
    let cur = v;
    for (let node = this.producer.get(cur.id); node && !node.kernel; node = this.producer.get(cur.id)) cur = node.inputs[0];
    return cur;
  }

  /**
   * Plans memory. Each intermediate lives from the op that writes it to the
   * last op that reads it (through views too). Ops run in build order; a slot
   * becomes free after its last reader ran, and an op's output never shares a
   * slot with its own inputs (WebGPU cannot read and write one buffer in one
   * dispatch). Best fit among free slots, growing the largest free slot when
   * none is big enough.
   */
  compile(): GraphStats {
    const outputsStorage = new Set([...this.outputs.values()].map((v) => this.storageOf(v).id));
    const lastUse = new Map<number, number>();
    this.nodes.forEach((node, i) => {
      for (const x of node.inputs) lastUse.set(this.storageOf(x).id, i);
    });
    const slotOf = new Map<number, number>();
    const slotBytes: number[] = [];
    const free: number[] = [];
    const liveUntil: Array<{ slot: number; until: number }> = [];
    this.nodes.forEach((node, i) => {
      // Free the slots whose last reader ran before this op.
      for (let k = liveUntil.length - 1; k >= 0; k--) {
        if (liveUntil[k].until < i) {
          free.push(liveUntil[k].slot);
          liveUntil.splice(k, 1);
        }
      }
      if (!node.kernel) return;
      for (const output of node.outputs) {
        if (outputsStorage.has(output.id)) continue;
        const need = bytesOf(output);
        let best = -1;
        for (const s of free) if (slotBytes[s] >= need && (best < 0 || slotBytes[s] < slotBytes[best])) best = s;
        if (best < 0 && free.length > 0) best = free.reduce((a, b) => (slotBytes[b] > slotBytes[a] ? b : a));
        if (best < 0) {
          best = slotBytes.length;
          slotBytes.push(0);
        } else free.splice(free.indexOf(best), 1);
        slotBytes[best] = Math.max(slotBytes[best], need);
        slotOf.set(output.id, best);
        liveUntil.push({ slot: best, until: lastUse.get(output.id) ?? i });
      }
    });
    const read = new Set([...this.outputs.values()].map((v) => v.id));
    for (const node of this.nodes) for (const x of node.inputs) read.add(x.id);
    this.plan = { slotOf, slotBytes, read };
    // A new plan may place values differently: drop the old slots and output buffers.
    for (const t of [...this.slots, ...this.unplannedBuffers.values()]) t.dispose();
    this.slots = [];
    this.unplannedBuffers.clear();
    return this.stats();
  }

  /**
   * Whether any op reads `v` or it is a graph output. Kernels of ops with
   * side outputs (attention's lse) ask this at run time to skip writing an
   * output that only a backward pass would read when no backward was built.
   */
  isRead(v: Value): boolean {
    this.checkOwn('isRead', v);
    return (this.plan ?? (this.compile(), this.plan!)).read.has(v.id);
  }

  stats(): GraphStats {
    const plan = this.plan ?? (this.compile(), this.plan!);
    let unplanned = 0;
    for (const id of plan.slotOf.keys()) unplanned += bytesOf(this.values[id]);
    let weightBytes = 0;
    for (const t of this.weights.values()) weightBytes += t.byteLength;
    let inputBytes = 0;
    for (const v of this.inputs.values()) inputBytes += bytesOf(v);
    let outputBytes = 0;
    for (const v of this.outputs.values()) outputBytes += bytesOf(v);
    return {
      ops: this.nodes.filter((n) => n.kernel).length,
      dispatches: this.nodes.reduce((s, n) => s + n.dispatches, 0),
      plannedPeakBytes: plan.slotBytes.reduce((a, b) => a + b, 0),
      unplannedBytes: unplanned,
      weightBytes,
      inputBytes,
      outputBytes,
      slots: plan.slotBytes.length,
    };
  }

  /**
   * Runs the graph on the given inputs (tensors, or host arrays uploaded
   * here). Returns the outputs as new tensors owned by the caller. All work
   * is recorded into one command encoder and submitted once.
   */
  run(feeds: Record<string, Tensor | ArrayLike<number>>): Record<string, Tensor> {
    const steps = this.record(feeds);
    let step = steps.next();
    while (!step.done) step = steps.next();
    return step.value;
  }

  /**
   * Runs the graph node by node, waiting for the queue after each, and
   * returns the wall time of each op (recording, submit and execution)
   * grouped by op kind. The first profile of a graph also pays its pipeline
   * compiles: run it once before. The outputs are computed and dropped.
   */
  async profile(feeds: Record<string, Tensor | ArrayLike<number>>): Promise<GraphProfile> {
    const gpu = this.gpu;
    await gpu.sync();
    const nodes: NodeProfile[] = [];
    const steps = this.record(feeds);
    let t0 = performance.now();
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) {
        for (const t of Object.values(step.value)) t.dispose();
        break;
      }
      await gpu.sync();
      const t1 = performance.now();
      const node = step.value;
      nodes.push({
        index: this.nodes.indexOf(node),
        op: node.op,
        inputs: node.inputs.map((v) => shapeString(v.shape)),
        output: shapeString(node.outputs[0].shape),
        ms: t1 - t0,
      });
      t0 = t1;
    }
    return new GraphProfile(nodes);
  }

  /**
   * Records the forward: yields after each dispatching node (views yield
   * nothing), returns the outputs. run() drains it; profile() syncs between steps.
   */
  private *record(feeds: Record<string, Tensor | ArrayLike<number>>): Generator<OpNode, Record<string, Tensor>> {
    const gpu = this.gpu;
    if (!this.plan) this.compile();
    const plan = this.plan!;
    if (this.slots.length === 0) {
      this.slots = plan.slotBytes.map((b, i) => Tensor.empty(gpu, [b / 4], 'f32', `${this.name}.slot${i}`));
    }
    for (const name of Object.keys(feeds)) {
      if (!this.inputs.has(name)) throw new Error(`${this.name}.run: unknown input '${name}' (inputs: ${[...this.inputs.keys()].join(', ')})`);
    }
    const live = new Map<number, Tensor>();
    for (const [name, v] of this.inputs) {
      const feed = feeds[name];
      if (feed === undefined) throw new Error(`${this.name}.run: input '${name}' ${shapeString(v.shape)} was not given`);
      let t: Tensor;
      if (feed instanceof Tensor) {
        if (feed.dtype !== v.dtype || feed.size !== numel(v.shape)) {
          throw new Error(`${this.name}.run: input '${name}' expects ${v.dtype} ${shapeString(v.shape)}, got ${feed.dtype} ${shapeString(feed.shape)}`);
        }
        t = feed.shape.length === v.shape.length && feed.shape.every((d, i) => d === v.shape[i]) ? feed : feed.reshape(v.shape);
      } else {
        if (feed.length !== numel(v.shape)) throw new Error(`${this.name}.run: input '${name}' expects ${numel(v.shape)} values ${shapeString(v.shape)}, got ${feed.length}`);
        for (let i = 0; i < feed.length; i++) {
          if (!Number.isFinite(feed[i])) throw new Error(`${this.name}.run: input '${name}' holds a non-finite value (${feed[i]}) at index ${i}`);
        }
        // A graph-owned buffer per input, rewritten each run, so bind groups are reused.
        let staged = this.inputBuffers.get(name);
        if (!staged) this.inputBuffers.set(name, (staged = Tensor.empty(gpu, v.shape, v.dtype, `${this.name}.${name}`)));
        staged.write(feed);
        t = staged;
      }
      live.set(v.id, t);
    }
    for (const [id, t] of this.weights) live.set(id, t);
    const results: Record<string, Tensor> = {};
    for (const node of this.nodes) {
      const ins = node.inputs.map((x) => live.get(x.id)!);
      if (!node.kernel) {
        live.set(node.outputs[0].id, ins[0].reshape(node.outputs[0].shape));
        continue;
      }
      const outs = node.outputs.map((v) => {
        const slot = plan.slotOf.get(v.id);
        let out: Tensor;
        if (slot !== undefined) out = this.slots[slot].viewAs(v.shape, v.dtype);
        else {
          // Unplanned values (outputs) keep one graph-owned buffer across runs;
          // the caller gets copies.
          let kept = this.unplannedBuffers.get(v.id);
          if (!kept) this.unplannedBuffers.set(v.id, (kept = Tensor.empty(gpu, v.shape, v.dtype)));
          out = kept;
        }
        live.set(v.id, out);
        return out;
      });
      node.kernel(gpu, ins, outs);
      yield node;
    }
    for (const [name, v] of this.outputs) results[name] = copyOf(gpu, live.get(v.id)!);
    gpu.flush();
    return results;
  }

  /** Frees the planned slots, input and output buffers, and the graph's own constants (weights belong to the caller). */
  dispose(): void {
    for (const s of this.slots) s.dispose();
    this.slots = [];
    for (const t of [...this.inputBuffers.values(), ...this.unplannedBuffers.values()]) t.dispose();
    this.inputBuffers.clear();
    this.unplannedBuffers.clear();
    for (const t of this.ownedConstants) t.dispose();
    this.ownedConstants.length = 0;
  }
}

function copyOf(gpu: Gpu, t: Tensor): Tensor {
  const c = Tensor.empty(gpu, t.shape, t.dtype);
  const bytes = Math.ceil(t.byteLength / 4) * 4;
  if (bytes > 0) gpu.commandEncoder().copyBufferToBuffer(t.buffer, 0, c.buffer, 0, bytes);
  return c;
}

export interface NodeProfile {
  /** Position in nodeList. */
  index: number;
  op: string;
  inputs: string[];
  output: string;
  /** Wall milliseconds from the previous node's completion to this one's. */
  ms: number;
}

export interface OpKindProfile {
  op: string;
  count: number;
  ms: number;
}

/** What Graph.profile measured: every dispatching node, and totals per op kind. */
export class GraphProfile {
  readonly totalMs: number;
  /** Op kinds, slowest total first. */
  readonly byOp: OpKindProfile[];

  constructor(readonly nodes: readonly NodeProfile[]) {
    this.totalMs = nodes.reduce((s, n) => s + n.ms, 0);
    const kinds = new Map<string, OpKindProfile>();
    for (const n of nodes) {
      const k = kinds.get(n.op) ?? { op: n.op, count: 0, ms: 0 };
      k.count++;
      k.ms += n.ms;
      kinds.set(n.op, k);
    }
    this.byOp = [...kinds.values()].sort((a, b) => b.ms - a.ms);
  }

  /** A text table: the op kinds, then the `top` slowest nodes. */
  table(top = 15): string {
    const pct = (ms: number) => `${((100 * ms) / this.totalMs).toFixed(1).padStart(5)}%`;
    const lines = [`total ${this.totalMs.toFixed(1)} ms over ${this.nodes.length} ops`, 'op kind                    count        ms   share'];
    for (const k of this.byOp) lines.push(`${k.op.padEnd(26)} ${String(k.count).padStart(5)} ${k.ms.toFixed(1).padStart(9)}  ${pct(k.ms)}`);
    lines.push(`slowest ${Math.min(top, this.nodes.length)} ops`);
    for (const n of [...this.nodes].sort((a, b) => b.ms - a.ms).slice(0, top)) {
      lines.push(`#${String(n.index).padEnd(4)} ${n.op.padEnd(22)} ${n.ms.toFixed(1).padStart(9)}  ${pct(n.ms)}  ${n.inputs.join(' ')} → ${n.output}`);
    }
    return lines.join('\n');
  }
}

/** Named tensors bound into one graph as weights (weightBinder). */
export interface BoundWeights {
  /** The weight value of the tensor named `name`, bound under that name on first use, once. */
  p: (name: string) => Value;
  /** What p bound so far, by name. */
  bound: ReadonlyMap<string, Value>;
}

/** Binds `params` into `g` on first use (BoundWeights); a name without a tensor is an Error naming `owner`. */
export function weightBinder(g: Graph, params: ReadonlyMap<string, Tensor>, owner: string): BoundWeights {
  const bound = new Map<string, Value>();
  const p = (name: string): Value => {
    let v = bound.get(name);
    if (!v) {
      const t = params.get(name);
      if (!t) throw new Error(`${owner}: no parameter "${name}"`);
      bound.set(name, (v = g.weight(name, t)));
    }
    return v;
  };
  return { p, bound };
}
