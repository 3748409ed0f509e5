// The one helper that checks a graph op (tinygrad's helper_test_op idea):
// build a small graph on the op, run it, compare the forward against a
// float64 reference and, for every input marked `grad`, the gradient
// autograd builds against central differences of that same reference. And
// the registry of op cases: `opCase` registers a test that declares which
// ops of src/graph/op-table.ts it checks; test/op-coverage.test.ts reads
// the declarations (test/ref/collect-op-cases.ts imports the test files
// without running them) and requires a forward case for every op and a
// gradient case for every backward rule. A case fails its own test unless
// checkOp saw each declared op do what the declaration says:
// - 'forward': a node of the op whose output reaches a compared output (the
//   forward, or a gradient: a gradient op's forward is checked that way);
// - 'gradient': a forward node of the op on a path from a finite-difference
//   checked input to the output, so its backward rule ran and was checked.
// checkOp also fails on a node op no table row lists, on a backward node
// that no forward op's row says its rule adds, and on a row marked
// forwardOnly through which backward() does not throw naming the op.

import * as assert from 'uvu/assert';
import type { Test } from 'uvu';
import { Graph, backward, numel, type Gpu, type Value } from '../../src/node.js';
import type { GraphNode } from '../../src/graph/graph.js';
import { OP_TABLE, isOpName, opOfNode, type OpName, type OpRow } from '../../src/graph/op-table.js';
import { assertClose, maxErrors, randn, type Tolerance } from '../util.js';
import { centralDifference, dot } from './backward.js';

export type Feed = { shape: number[]; data?: ArrayLike<number>; dtype?: 'i32'; grad?: boolean; scale?: number };

export interface OpCheck {
  inputs: Record<string, Feed>;
  build: (g: Graph, v: Record<string, Value>) => Value;
  /** The same function in float64. */
  ref: (x: Record<string, ArrayLike<number>>) => ArrayLike<number>;
  /** For the forward, and for the gradients unless gradTol is given. */
  tol: Tolerance;
  gradTol?: Tolerance;
  /** Checks the op names of the nodes backward() added. */
  backwardOps?: (ops: string[]) => void;
}

/** Max |ours − reference| of each comparison, and max |reference| for scale. */
export interface Measured {
  label: string;
  errors: Record<string, { maxAbsErr: number; maxAbsRef: number }>;
}

/** Ops autograd itself adds: gradient accumulation and zeros for unreachable values. */
const AUTOGRAD_OPS: readonly OpName[] = ['add', 'zeros'];

interface CheckRecord {
  forward: Set<OpName>;
  gradient: Set<OpName>;
}

/** What checkOp saw during the running op case (undefined outside one). */
let activeRecords: CheckRecord[] | undefined;

function rowOf(node: GraphNode): OpName {
  const name = opOfNode(node.op);
  if (!name) throw new Error(`checkOp: node op '${node.op}' is in no row of src/graph/op-table.ts; add the op to the table`);
  return name;
}

/** Indices of the nodes among `nodes` with an output from which a value in `targets` is computed (views included). */
function reaching(nodes: readonly GraphNode[], targets: Iterable<number>): Set<number> {
  const needed = new Set(targets);
  const out = new Set<number>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (nodes[i].outputs.some((o) => needed.has(o.id))) {
      out.add(i);
      for (const x of nodes[i].inputs) needed.add(x.id);
    }
  }
  return out;
}

/**
 * Builds c.build on fresh inputs, runs forward and backward(y, wrt, seed R)
 * — the gradient of Σ y∘R for a random R — in one graph, and compares y with
 * c.ref and each `grad` input's gradient with central differences of
 * x ↦ Σ c.ref(x)∘R in float64. Set OP_CHECK_ERRORS=1 to print the measured
 * errors (the tolerances in the tests quote them).
 */
export async function checkOp(gpu: Gpu, label: string, c: OpCheck): Promise<Measured> {
  const data: Record<string, ArrayLike<number>> = {};
  let seed = 1;
  for (const [name, f] of Object.entries(c.inputs)) data[name] = f.data ?? randn(numel(f.shape), 1000 + seed++, f.scale ?? 1);
  const g = new Graph(gpu, label);
  const vals: Record<string, Value> = {};
  for (const [name, f] of Object.entries(c.inputs)) vals[name] = g.input(name, f.shape, f.dtype ?? 'f32');
  const y = c.build(g, vals);
  const r = randn(numel(y.shape), 77);
  const wrt = Object.keys(c.inputs).filter((n) => c.inputs[n].grad);
  const forwardEnd = g.nodeList.length;
  const grads = wrt.length > 0 ? backward(g, y, wrt.map((n) => vals[n]), { seed: g.constant('R', r, y.shape) }) : new Map<Value, Value>();
  const nodes = [...g.nodeList];
  c.backwardOps?.(nodes.slice(forwardEnd).map((node) => node.op));
  const rows = nodes.map(rowOf);

  // Every backward node is one a forward op's rule says it adds (or autograd's own).
  const allowed = new Set<OpName>(AUTOGRAD_OPS);
  for (const name of rows.slice(0, forwardEnd)) {
    const b = (OP_TABLE[name] as OpRow).backward;
    if ('rule' in b) for (const a of b.adds) allowed.add(a as OpName);
  }
  for (let i = forwardEnd; i < nodes.length; i++) {
    assert.ok(allowed.has(rows[i]), `${label}: backward added a ${nodes[i].op} node (${rows[i]}), which no forward op's row in op-table.ts lists in its rule's adds`);
  }

  g.output('y', y);
  for (const n of wrt) g.output(`d${n}`, grads.get(vals[n])!);
  const out = g.run(data);
  const measured: Measured = { label, errors: {} };
  const forward = await out.y.read();
  const expected = c.ref(data);
  measured.errors.forward = maxErrors(forward, expected);
  assertClose(forward, expected, c.tol, `${label}: forward`);
  for (const n of wrt) {
    const loss = (x: Float64Array) => dot(c.ref({ ...data, [n]: x }), r);
    const got = await out[`d${n}`].read();
    const fd = centralDifference(loss, data[n]);
    measured.errors[`d${n}`] = maxErrors(got, fd);
    assertClose(got, fd, c.gradTol ?? c.tol, `${label}: d${n}`);
  }
  for (const t of Object.values(out)) t.dispose();
  if (process.env.OP_CHECK_ERRORS) {
    const parts = Object.entries(measured.errors).map(([k, e]) => `${k} ${e.maxAbsErr.toExponential(2)} (max |ref| ${e.maxAbsRef.toPrecision(3)})`);
    process.stdout.write(`\n#op-check ${label}: ${parts.join(', ')}\n`);
  }

  // What was checked, for the op case's declaration.
  const compared = [y, ...wrt.map((n) => grads.get(vals[n])!)].map((v) => v.id);
  const record: CheckRecord = { forward: new Set(), gradient: new Set() };
  for (const i of reaching(nodes, compared)) record.forward.add(rows[i]);
  const dependsOnWrt = new Set(wrt.map((n) => vals[n].id));
  const onPath = reaching(nodes.slice(0, forwardEnd), [y.id]);
  for (let i = 0; i < forwardEnd; i++) {
    const node = nodes[i];
    if (!node.inputs.some((x) => dependsOnWrt.has(x.id))) continue;
    for (const o of node.outputs) dependsOnWrt.add(o.id);
    if (onPath.has(i)) record.gradient.add(rows[i]);
  }

  // A row marked forwardOnly really has no backward: backward() through one of its nodes throws, naming it.
  const probed = new Set<OpName>();
  for (const i of reaching(nodes, compared)) {
    const node = nodes[i];
    const name = rows[i];
    if (probed.has(name) || !('forwardOnly' in OP_TABLE[name].backward) || node.inputs.length === 0 || node.inputs[0].dtype !== 'f32') continue;
    probed.add(name);
    let error: unknown;
    try {
      backward(g, node.outputs[0], [node.inputs[0]]);
    } catch (e) {
      error = e;
    }
    assert.ok(
      error instanceof Error && error.message.includes(node.op),
      `${label}: op-table.ts marks ${name} forwardOnly, but backward() through its ${node.op} node ${error instanceof Error ? `threw "${error.message}", not naming it` : 'succeeded'}; give it a gradient case and its rule in the table`,
    );
  }
  g.dispose();
  activeRecords?.push(record);
  return measured;
}

/** What an op case declares it checks, per table op: 'gradient' includes 'forward'. */
export type CaseChecks = Partial<Record<OpName, 'forward' | 'gradient'>>;

export interface RegisteredCase {
  /** The test file (under test/) that registered it, when collect-op-cases.ts imported it. */
  file?: string;
  name: string;
  checks: CaseChecks;
}

/** Every op case registered in this process, in order. */
export const registeredCases: RegisteredCase[] = [];
let collectingFile: string | undefined;

/** collect-op-cases.ts: the file whose import follows (its cases are attributed to it). */
export function collectingFrom(file: string | undefined): void {
  collectingFile = file;
}

/**
 * Registers `name` on `test` as an op case: `fn` must check (through
 * checkOp) every op in `checks` as declared, or the test fails.
 */
export function opCase<S>(test: Test<S>, name: string, checks: CaseChecks, fn: (ctx: S) => Promise<void>): void {
  for (const [op, check] of Object.entries(checks)) {
    if (!isOpName(op)) throw new Error(`opCase "${name}": '${op}' is not an op of src/graph/op-table.ts`);
    if (check === 'gradient' && 'forwardOnly' in OP_TABLE[op].backward) throw new Error(`opCase "${name}": ${op} is forwardOnly in op-table.ts, it has no gradient to check`);
  }
  registeredCases.push({ file: collectingFile, name, checks });
  test(name, async (ctx) => {
    const records: CheckRecord[] = [];
    activeRecords = records;
    try {
      await fn(ctx as S);
    } finally {
      activeRecords = undefined;
    }
    for (const [op, check] of Object.entries(checks) as Array<[OpName, 'forward' | 'gradient']>) {
      const seen = records.some((r) => (check === 'gradient' ? r.gradient : r.forward).has(op));
      assert.ok(seen, `op case "${name}" declares a ${check} check of ${op}, but no checkOp in it compared ${check === 'gradient' ? `a finite-difference gradient through a ${op} node` : `an output computed by a ${op} node`}`);
    }
  });
}
