// The activation codes shared by unary, matmul and conv2d (shaders/lib/activation.wgsl).

export const ACTIVATIONS = { none: 0, relu: 1, gelu: 2, geluTanh: 3, quickGelu: 4, sigmoid: 5 } as const;
export type Activation = keyof typeof ACTIVATIONS;

/** The shader code of `name`, or an Error naming the op and the known activations. */
export function activationCode(op: string, name: string, allowed: readonly Activation[] = Object.keys(ACTIVATIONS) as Activation[]): number {
  if (!(allowed as readonly string[]).includes(name)) {
    throw new Error(`${op}: unknown activation '${name}' (known: ${allowed.join(', ')})`);
  }
  return ACTIVATIONS[name as Activation];
}
