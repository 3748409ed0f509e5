// Float64 references of PyTorch's optimizer update rules (torch.optim.AdamW,
// torch.optim.SGD), clip_grad_norm_ and a warm-up + cosine schedule, written
// as the plain per-element loops of PyTorch's single-tensor implementations.

export interface RefAdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** torch.optim.AdamW (_single_tensor_adamw, amsgrad off): updates params, m, v in place. */
export class RefAdamW {
  readonly m: Float64Array[];
  readonly v: Float64Array[];
  step = 0;

  constructor(readonly params: Float64Array[], readonly opts: RefAdamWOptions) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }

  update(grads: ArrayLike<number>[], lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.step++;
    const biasCorrection1 = 1 - Math.pow(beta1, this.step);
    const biasCorrection2 = 1 - Math.pow(beta2, this.step);
    const stepSize = lr / biasCorrection1;
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
    this.params.forEach((p, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        p[i] *= 1 - lr * weightDecay;
        m[i] += (g[i] - m[i]) * (1 - beta1);
        v[i] = v[i] * beta2 + (1 - beta2) * g[i] * g[i];
        const denom = Math.sqrt(v[i]) / biasCorrection2Sqrt + eps;
        p[i] += (-stepSize * m[i]) / denom;
      }
    });
  }
}

export interface RefSgdOptions {
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

/** torch.optim.SGD (_single_tensor_sgd): the momentum buffer is None until the first step clones d_p into it. */
export class RefSgd {
  readonly buffers: (Float64Array | undefined)[];

  constructor(readonly params: Float64Array[], readonly opts: RefSgdOptions) {
    this.buffers = params.map(() => undefined);
  }

  update(grads: ArrayLike<number>[], lr: number): void {
    const { momentum, dampening, weightDecay, nesterov } = this.opts;
    this.params.forEach((p, k) => {
      const dp = Float64Array.from(grads[k]);
      for (let i = 0; i < p.length; i++) dp[i] += weightDecay * p[i];
      if (momentum !== 0) {
        let buf = this.buffers[k];
        if (buf === undefined) {
          buf = Float64Array.from(dp);
          this.buffers[k] = buf;
        } else {
          for (let i = 0; i < p.length; i++) buf[i] = buf[i] * momentum + (1 - dampening) * dp[i];
        }
        for (let i = 0; i < p.length; i++) dp[i] = nesterov ? dp[i] + momentum * buf[i] : buf[i];
      }
      for (let i = 0; i < p.length; i++) p[i] -= lr * dp[i];
    });
  }
}

/** clip_grad_norm_ (norm_type 2): the norm of the per-tensor norms, and the gradients after clipping. */
export function refClipGradNorm(grads: ArrayLike<number>[], maxNorm: number): { norm: number; clipped: Float64Array[] } {
  const tensorNorms = grads.map((g) => {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i] * g[i];
    return Math.sqrt(s);
  });
  let s = 0;
  for (const n of tensorNorms) s += n * n;
  const norm = Math.sqrt(s);
  const coefficient = Math.min(maxNorm / (norm + 1e-6), 1);
  return { norm, clipped: grads.map((g) => Float64Array.from(g, (x) => x * coefficient)) };
}

/** Warm-up then cosine, by cases, for the 1-based update number `step`. */
export function refCosineLr(step: number, baseLr: number, warmupSteps: number, totalSteps: number, minLr: number): number {
  if (step <= warmupSteps) return baseLr * (step / warmupSteps);
  if (step > totalSteps) return minLr;
  const fraction = (step - warmupSteps) / (totalSteps - warmupSteps);
  return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * fraction));
}
