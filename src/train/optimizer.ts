// Optimizers that update parameters on the GPU: AdamW and SGD (with momentum,
// dampening, nesterov) following PyTorch's update rules, gradient clipping by
// global L2 norm, and a warm-up + cosine learning-rate schedule.
//
// Each optimizer owns its per-parameter state tensors (AdamW: m, v; SGD: the
// momentum buffer) on the GPU and keeps the step counter on the host; a step
// is one dispatch per parameter, recorded into the device's open encoder with
// no readback. `state()` downloads the state and `load()` restores it.
//
// Non-finite gradients: `step` does not check them (a NaN or ±inf gradient
// propagates into its parameter and state). `clipGradNorm` returns the global
// norm as a tensor — NaN or inf when any gradient is — and then leaves the
// gradients unscaled, so a caller that reads the norm can skip the step.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, linearGrid, placeholder } from '../kernels/program.js';

const WORKGROUP_SIZE = 256;
// Elements per thread of the clip's first reduction level: a workgroup sums
// WORKGROUP_SIZE · CLIP_ITEMS_PER_THREAD elements into one partial.
const CLIP_ITEMS_PER_THREAD = 16;
const CLIP_TILE = WORKGROUP_SIZE * CLIP_ITEMS_PER_THREAD;

/** A named parameter an optimizer updates in place. */
export interface OptimizerParam {
  name: string;
  param: Tensor;
}

/** Gradients by parameter name. */
export type GradSet = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

export type OptimizerKind = 'AdamW' | 'SgdMomentum';

/** An optimizer's state on the host: the step count and, per parameter, its state buffers by name. */
export interface OptimizerState {
  optimizer: OptimizerKind;
  /** Steps taken so far. */
  step: number;
  /** slots[paramName][slotName]: AdamW has `m` and `v`; SgdMomentum has `momentum` (none when momentum = 0). */
  slots: Record<string, Record<string, Float32Array>>;
}

function checkNumber(op: string, name: string, value: number, ok: (v: number) => boolean, expected: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) throw new Error(`${op}: ${name} must be ${expected}, got ${value}`);
}

function gradEntries(grads: GradSet): [string, Tensor][] {
  return grads instanceof Map ? [...grads.entries()] : Object.entries(grads);
}

interface Slots {
  readonly [slot: string]: Tensor;
}

abstract class GpuOptimizer {
  readonly params: readonly OptimizerParam[];
  private lrValue = 0;
  private t = 0;
  /** State tensors per parameter name, created zeroed. */
  protected readonly slots = new Map<string, Slots>();

  protected constructor(
    protected readonly gpu: Gpu,
    readonly kind: OptimizerKind,
    params: readonly OptimizerParam[],
    lr: number,
    slotNames: readonly string[],
  ) {
    const op = kind;
    if (params.length === 0) throw new Error(`${op}: params is empty; pass at least one { name, param }`);
    const names = new Set<string>();
    const buffers = new Map<GPUBuffer, string>();
    for (const { name, param } of params) {
      if (typeof name !== 'string' || name === '') throw new Error(`${op}: every param needs a non-empty name, got ${JSON.stringify(name)}`);
      if (names.has(name)) throw new Error(`${op}: duplicate param name '${name}'`);
      names.add(name);
      if (!(param instanceof Tensor)) throw new Error(`${op}: param '${name}' must be a Tensor`);
      if (param.dtype !== 'f32') throw new Error(`${op}: param '${name}' must be f32, got ${param.dtype}`);
      const other = buffers.get(param.buffer);
      if (other !== undefined) throw new Error(`${op}: params '${other}' and '${name}' share one buffer; each must be its own tensor`);
      buffers.set(param.buffer, name);
    }
    this.params = params.map(({ name, param }) => ({ name, param }));
    this.lr = lr;
    for (const { name, param } of this.params) {
      const slots: Record<string, Tensor> = {};
      for (const slot of slotNames) {
        const t = Tensor.empty(gpu, param.shape, 'f32', `${op}.${name}.${slot}`);
        gpu.commandEncoder().clearBuffer(t.buffer);
        slots[slot] = t;
      }
      this.slots.set(name, slots);
    }
  }

  /** The learning rate `step` uses when not given one. */
  get lr(): number {
    return this.lrValue;
  }

  set lr(value: number) {
    checkNumber(this.kind, 'lr', value, (v) => v >= 0, 'a finite number >= 0');
    this.lrValue = value;
  }

  /** Steps taken so far (the next step is number stepCount + 1, the `t` of bias correction). */
  get stepCount(): number {
    return this.t;
  }

  /**
   * Updates every parameter from its gradient (same shape, f32, one per
   * parameter, no others). Everything is validated before any work is
   * recorded. `lr` overrides the optimizer's learning rate for this step.
   */
  step(grads: GradSet, lr: number = this.lrValue): void {
    const op = `${this.kind}.step`;
    checkNumber(op, 'lr', lr, (v) => v >= 0, 'a finite number >= 0');
    const byName = new Map<string, Tensor>();
    for (const [name, grad] of gradEntries(grads)) {
      if (!this.slots.has(name)) throw new Error(`${op}: gradient '${name}' names no parameter (params: ${this.params.map((p) => p.name).join(', ')})`);
      byName.set(name, grad);
    }
    const paramBuffers = new Set(this.params.map((p) => p.param.buffer));
    for (const { name, param } of this.params) {
      const grad = byName.get(name);
      if (grad === undefined) throw new Error(`${op}: no gradient for param '${name}'`);
      if (!(grad instanceof Tensor)) throw new Error(`${op}: gradient '${name}' must be a Tensor`);
      if (grad.dtype !== 'f32') throw new Error(`${op}: gradient '${name}' must be f32, got ${grad.dtype}`);
      if (grad.shape.length !== param.shape.length || grad.shape.some((d, i) => d !== param.shape[i])) {
        throw new Error(`${op}: gradient '${name}' has shape ${shapeString(grad.shape)}, param has ${shapeString(param.shape)}`);
      }
      if (paramBuffers.has(grad.buffer)) throw new Error(`${op}: gradient '${name}' shares its buffer with a parameter`);
    }
    this.t++;
    for (const { name, param } of this.params) {
      if (param.size === 0) continue;
      this.update(name, param, byName.get(name)!, this.slots.get(name)!, lr, this.t);
    }
  }

  /** Records the update of one parameter at step `t` (1-based). */
  protected abstract update(name: string, param: Tensor, grad: Tensor, slots: Slots, lr: number, t: number): void;

  /** Downloads the step count and every state buffer (after all recorded steps). */
  async state(): Promise<OptimizerState> {
    const slots: OptimizerState['slots'] = {};
    for (const [name, tensors] of this.slots) {
      const entry: Record<string, Float32Array> = {};
      for (const [slot, t] of Object.entries(tensors)) entry[slot] = (await t.read()) as Float32Array;
      slots[name] = entry;
    }
    return { optimizer: this.kind, step: this.t, slots };
  }

  /** Restores a state from `state()` of an optimizer of the same kind over the same parameter names and sizes. */
  load(state: OptimizerState): void {
    const op = `${this.kind}.load`;
    if (state?.optimizer !== this.kind) throw new Error(`${op}: state is for optimizer ${state?.optimizer}, expected ${this.kind}`);
    checkNumber(op, 'step', state.step, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
    const saved = state.slots ?? {};
    for (const name of Object.keys(saved)) {
      if (!this.slots.has(name)) throw new Error(`${op}: state has param '${name}', which this optimizer does not (params: ${this.params.map((p) => p.name).join(', ')})`);
    }
    for (const [name, tensors] of this.slots) {
      const slots = saved[name];
      if (slots === undefined) throw new Error(`${op}: state lacks param '${name}'`);
      const expected = Object.keys(tensors);
      for (const slot of Object.keys(slots)) {
        if (!expected.includes(slot)) throw new Error(`${op}: param '${name}' has state '${slot}', expected only ${expected.join(', ') || 'none'}`);
      }
      for (const [slot, t] of Object.entries(tensors)) {
        const data = slots[slot];
        if (data === undefined) throw new Error(`${op}: param '${name}' lacks state '${slot}'`);
        if (data.length !== t.size) throw new Error(`${op}: param '${name}' state '${slot}' has ${data.length} elements, param has ${t.size}`);
      }
    }
    for (const [name, tensors] of this.slots) {
      for (const [slot, t] of Object.entries(tensors)) t.write(saved[name][slot]);
    }
    this.t = state.step;
  }

  /** Releases the state tensors (the parameters stay the caller's). */
  dispose(): void {
    for (const tensors of this.slots.values()) for (const t of Object.values(tensors)) t.dispose();
  }
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled: p ← p·(1 − lr·weightDecay) before the Adam update. */
  weightDecay?: number;
}

/** torch.optim.AdamW (amsgrad off, maximize off). */
export class AdamW extends GpuOptimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(gpu: Gpu, params: readonly OptimizerParam[], opts: AdamWOptions) {
    const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = opts;
    const inUnit = (v: number) => v >= 0 && v < 1;
    checkNumber('AdamW', 'beta1', beta1, inUnit, 'in [0, 1)');
    checkNumber('AdamW', 'beta2', beta2, inUnit, 'in [0, 1)');
    checkNumber('AdamW', 'eps', eps, (v) => v >= 0, 'a finite number >= 0');
    checkNumber('AdamW', 'weightDecay', weightDecay, (v) => v >= 0, 'a finite number >= 0');
    super(gpu, 'AdamW', params, lr, ['m', 'v']);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
  }

  protected update(name: string, param: Tensor, grad: Tensor, slots: Slots, lr: number, t: number): void {
    dispatchKernel(
      this.gpu,
      `AdamW.step(${name})`,
      { shader: 'optimizer_adamw', constants: { WORKGROUP_SIZE } },
      {
        param,
        grad,
        m: slots.m,
        v: slots.v,
        params: {
          n: param.size,
          decay: 1 - lr * this.weightDecay,
          beta1: this.beta1,
          one_minus_beta1: 1 - this.beta1,
          beta2: this.beta2,
          one_minus_beta2: 1 - this.beta2,
          step_size: lr / (1 - this.beta1 ** t),
          bias_correction2_sqrt: Math.sqrt(1 - this.beta2 ** t),
          eps: this.eps,
        },
      },
      linearGrid(this.gpu, param.size, WORKGROUP_SIZE),
    );
  }
}

export interface SgdMomentumOptions {
  lr: number;
  /** 0 keeps no momentum buffer (plain SGD). */
  momentum?: number;
  dampening?: number;
  /** Coupled L2: d ← g + weightDecay·p. */
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD (maximize off): the momentum buffer starts as the first step's gradient. */
export class SgdMomentum extends GpuOptimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(gpu: Gpu, params: readonly OptimizerParam[], opts: SgdMomentumOptions) {
    const { lr, momentum = 0.9, dampening = 0, weightDecay = 0, nesterov = false } = opts;
    checkNumber('SgdMomentum', 'momentum', momentum, (v) => v >= 0, 'a finite number >= 0');
    checkNumber('SgdMomentum', 'dampening', dampening, () => true, 'a finite number');
    checkNumber('SgdMomentum', 'weightDecay', weightDecay, (v) => v >= 0, 'a finite number >= 0');
    if (nesterov && (momentum <= 0 || dampening !== 0)) {
      throw new Error(`SgdMomentum: nesterov needs momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`);
    }
    super(gpu, 'SgdMomentum', params, lr, momentum > 0 ? ['momentum'] : []);
    this.momentum = momentum;
    this.dampening = dampening;
    this.weightDecay = weightDecay;
    this.nesterov = nesterov;
  }

  protected update(name: string, param: Tensor, grad: Tensor, slots: Slots, lr: number, t: number): void {
    const useMomentum = this.momentum > 0;
    dispatchKernel(
      this.gpu,
      `SgdMomentum.step(${name})`,
      { shader: 'optimizer_sgd', constants: { WORKGROUP_SIZE, USE_MOMENTUM: useMomentum, NESTEROV: this.nesterov } },
      {
        param,
        grad,
        momentum_buffer: useMomentum ? slots.momentum : placeholder(this.gpu),
        params: { n: param.size, lr, momentum: this.momentum, one_minus_dampening: 1 - this.dampening, weight_decay: this.weightDecay, first_step: t === 1 ? 1 : 0 },
      },
      linearGrid(this.gpu, param.size, WORKGROUP_SIZE),
    );
  }
}

/**
 * Scales the gradients in place so their global L2 norm is at most maxNorm
 * (PyTorch clip_grad_norm_: coefficient min(1, maxNorm / (norm + 1e-6))) and
 * returns the norm before clipping as a [1] tensor the caller owns — all on
 * the GPU, no readback. A non-finite norm leaves the gradients unchanged;
 * read it to skip such a step. Deterministic: a fixed-order two-level sum.
 */
export function clipGradNorm(gpu: Gpu, grads: Iterable<Tensor> | GradSet, maxNorm: number): Tensor {
  const op = 'clipGradNorm';
  checkNumber(op, 'maxNorm', maxNorm, (v) => v > 0, 'a finite number > 0');
  const list: Tensor[] =
    grads instanceof Map ? [...grads.values()] : Symbol.iterator in grads ? [...(grads as Iterable<Tensor>)] : Object.values(grads as Record<string, Tensor>);
  const seen = new Set<GPUBuffer>();
  list.forEach((g, i) => {
    if (!(g instanceof Tensor)) throw new Error(`${op}: gradient ${i} must be a Tensor`);
    if (g.dtype !== 'f32') throw new Error(`${op}: gradient ${i} ${shapeString(g.shape)} must be f32, got ${g.dtype}`);
    if (seen.has(g.buffer)) throw new Error(`${op}: gradient ${i} ${shapeString(g.shape)} shares its buffer with an earlier gradient; it would be counted and scaled twice`);
    seen.add(g.buffer);
  });
  const tiles = list.map((g) => Math.ceil(g.size / CLIP_TILE));
  const count = tiles.reduce((a, b) => a + b, 0);
  const partials = Tensor.empty(gpu, [Math.max(1, count)], 'f32', `${op}.partials`);
  const norm = Tensor.empty(gpu, [1], 'f32', `${op}.norm`);
  const shader = (entry: string) => ({ shader: 'optimizer_clip', entry, constants: { WORKGROUP_SIZE, ITEMS_PER_THREAD: CLIP_ITEMS_PER_THREAD } });
  let offset = 0;
  list.forEach((grad, i) => {
    if (tiles[i] > 0) {
      dispatchKernel(gpu, `${op}.sum_squares`, shader('sum_squares'), { grad, partials, norm, params: { n: grad.size, offset, count, max_norm: maxNorm } }, linearGrid(gpu, tiles[i], 1));
    }
    offset += tiles[i];
  });
  // `finish` reads no gradient; the binding still needs a buffer.
  dispatchKernel(gpu, `${op}.finish`, shader('finish'), { grad: placeholder(gpu), partials, norm, params: { n: 0, offset: 0, count, max_norm: maxNorm } }, [1]);
  for (const grad of list) {
    if (grad.size === 0) continue;
    dispatchKernel(gpu, `${op}.scale`, shader('scale'), { grad, partials, norm, params: { n: grad.size, offset: 0, count, max_norm: maxNorm } }, linearGrid(gpu, grad.size, WORKGROUP_SIZE));
  }
  partials.dispose();
  return norm;
}

export interface CosineScheduleOptions {
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  minLr?: number;
}

/**
 * Learning rate for update number `step` (1-based, as `stepCount + 1`):
 *   step ≤ warmupSteps:  baseLr · step / warmupSteps   (linear; the first update gets baseLr / warmupSteps, never 0)
 *   warmupSteps < step ≤ totalSteps:  minLr + (baseLr − minLr) · ½(1 + cos(π · (step − warmupSteps) / (totalSteps − warmupSteps)))
 *   step > totalSteps:  minLr
 * So the peak baseLr is reached at step = warmupSteps and minLr at step = totalSteps.
 */
export function cosineSchedule(opts: CosineScheduleOptions): (step: number) => number {
  const op = 'cosineSchedule';
  const { baseLr, warmupSteps, totalSteps, minLr = 0 } = opts;
  checkNumber(op, 'baseLr', baseLr, (v) => v >= 0, 'a finite number >= 0');
  checkNumber(op, 'warmupSteps', warmupSteps, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  checkNumber(op, 'totalSteps', totalSteps, (v) => Number.isInteger(v) && v > warmupSteps, `an integer > warmupSteps (${warmupSteps})`);
  checkNumber(op, 'minLr', minLr, (v) => v >= 0 && v <= baseLr, `in [0, baseLr = ${baseLr}]`);
  return (step: number) => {
    checkNumber(op, 'step', step, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1 (the 1-based update number)');
    if (step <= warmupSteps) return (baseLr * step) / warmupSteps;
    if (step >= totalSteps) return minLr;
    const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
