// Holds the code to src/graph/op-table.ts: the table lists every graph op
// (derived from what ops.ts exports and the node kinds rules add), each row's
// kernels, shaders and test files exist, and the op cases those test files
// register (test/ref/op-check.ts opCase, read by test/ref/collect-op-cases.ts
// without running them) give every op a forward case against a float64
// reference and every backward rule a finite-difference gradient case. Each
// op case checks at run time that it did what it declares, so removing a
// case, or its checkOp, fails either here or in its own file.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Graph } from '../src/graph/graph.js';
import * as graphOps from '../src/graph/ops.js';
import { OP_HELPERS, OP_TABLE, type OpRow } from '../src/graph/op-table.js';
import { shaderSources } from '../src/kernels/shaders.gen.js';
import type { RegisteredCase } from './ref/op-check.js';
import { repoRoot, suite } from './util.js';

const test = suite('op coverage');

const rows = Object.entries(OP_TABLE) as Array<[string, OpRow]>;
const helpers = OP_HELPERS as Record<string, { helper: string; uses: readonly string[] }>;

/** The builders ops.ts exports (every exported function adds ops to a graph). */
const exportedOps = Object.entries(graphOps)
  .filter(([, v]) => typeof v === 'function')
  .map(([name]) => name)
  .sort();

interface TableInput {
  table: ReadonlyArray<[string, OpRow]>;
  helpers: Record<string, { uses: readonly string[] }>;
  exported: readonly string[];
}

/** What is wrong between the code and the table (empty: every op has a consistent row). */
function tableProblems({ table, helpers, exported }: TableInput): string[] {
  const problems: string[] = [];
  const names = new Set(table.map(([n]) => n));
  for (const name of exported) {
    if (!names.has(name) && !(name in helpers)) problems.push(`ops.ts exports ${name}, which has no row in op-table.ts (OP_TABLE, or OP_HELPERS if it adds no node of its own)`);
  }
  const added = new Set(table.flatMap(([, row]) => ('rule' in row.backward ? row.backward.adds : [])));
  for (const [name, row] of table) {
    if (row.defined === 'ops' && !exported.includes(name)) problems.push(`${name}: defined 'ops', but ops.ts exports no ${name}`);
    if (row.defined === 'rule' && exported.includes(name)) problems.push(`${name}: defined 'rule', but ops.ts exports it (then it is 'ops')`);
    if (row.defined === 'rule' && !added.has(name)) problems.push(`${name}: defined 'rule', but no row's backward rule adds it`);
    if ('rule' in row.backward) for (const a of row.backward.adds) if (!names.has(a)) problems.push(`${name}: its rule adds ${a}, which is not a row`);
    if ('forwardOnly' in row.backward && row.backward.forwardOnly.trim() === '') problems.push(`${name}: forwardOnly needs its reason`);
    if (row.nodes.length === 0) problems.push(`${name}: lists no node op`);
    if (row.tests.length === 0) problems.push(`${name}: no test file`);
  }
  for (const [name, h] of Object.entries(helpers)) {
    if (!exported.includes(name)) problems.push(`helper ${name}: ops.ts exports no ${name}`);
    if (names.has(name)) problems.push(`${name}: both a row and a helper`);
    for (const u of h.uses) if (!names.has(u)) problems.push(`helper ${name} uses ${u}, which is not a row`);
  }
  return problems;
}

/** What is missing between the table and the registered op cases (empty: covered). */
function caseProblems(table: ReadonlyArray<[string, OpRow]>, cases: readonly RegisteredCase[]): string[] {
  const problems: string[] = [];
  const byName = new Map(table);
  const checkOf = (c: RegisteredCase, op: string) => (c.checks as Record<string, 'forward' | 'gradient' | undefined>)[op];
  for (const [name, row] of table) {
    const mine = cases.filter((c) => checkOf(c, name) !== undefined && row.tests.includes(c.file ?? ''));
    if (mine.length === 0) problems.push(`${name}: no op case checks its forward against a float64 reference (in ${row.tests.join(', ')})`);
    if ('rule' in row.backward && !mine.some((c) => checkOf(c, name) === 'gradient')) {
      problems.push(`${name}: has a backward rule but no op case checks its gradient by finite differences (in ${row.tests.join(', ')})`);
    }
    for (const file of row.tests) {
      if (!cases.some((c) => c.file === file && checkOf(c, name) !== undefined)) problems.push(`${name}: the table names ${file}, but it registers no op case for ${name}`);
    }
  }
  for (const c of cases) {
    for (const op of Object.keys(c.checks)) {
      const row = byName.get(op);
      if (!row) problems.push(`op case "${c.name}" (${c.file}) checks ${op}, which is not a row`);
      else if (!row.tests.includes(c.file ?? '')) problems.push(`op case "${c.name}" checks ${op} in ${c.file}, which ${op}'s row does not list in tests`);
    }
  }
  return problems;
}

let collected: RegisteredCase[] | undefined;

/** The op cases the table's test files register, read by a child process (see test/ref/collect-op-cases.ts). */
function registeredCases(): RegisteredCase[] {
  if (collected) return collected;
  const files = [...new Set(rows.flatMap(([, row]) => row.tests))].sort();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/ref/collect-op-cases.ts'), ...files], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`collect-op-cases exited with ${r.status ?? r.signal}: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  collected = JSON.parse(line) as RegisteredCase[];
  return collected;
}

test('every function ops.ts exports, and Graph.reshape, has a row or is a helper; rule-only rows are added by a rule', () => {
  assert.equal(tableProblems({ table: rows, helpers, exported: exportedOps }), []);
  for (const [name, row] of rows) if (row.defined === 'graph') assert.type((Graph.prototype as unknown as Record<string, unknown>)[name], 'function', `Graph.${name}`);
});

test("each row's kernels are exported by their modules, its shaders exist and those modules dispatch them, its test files exist", async () => {
  for (const [name, row] of rows) {
    const sources = new Map<string, string>();
    for (const { module, fn } of row.kernels) {
      const path = join(repoRoot, module);
      assert.ok(existsSync(path), `${name}: kernel module ${module} is missing`);
      const mod = (await import(path)) as Record<string, unknown>;
      assert.type(mod[fn], 'function', `${name}: ${module} exports no function ${fn}`);
      sources.set(module, readFileSync(path, 'utf8'));
    }
    for (const shader of row.shaders) {
      assert.ok(existsSync(join(repoRoot, 'shaders', `${shader}.wgsl`)), `${name}: shaders/${shader}.wgsl is missing`);
      assert.type(shaderSources[shader], 'string', `${name}: ${shader} is not in src/kernels/shaders.gen.ts (npm run gen)`);
      const dispatched = [...sources.values()].some((src) => src.includes(`shader: '${shader}'`));
      assert.ok(dispatched, `${name}: none of its kernel modules (${[...sources.keys()].join(', ')}) dispatches shader '${shader}'`);
    }
    if (row.kernels.length > 0) assert.ok(row.shaders.length > 0, `${name}: kernels but no shader`);
    for (const file of [...row.tests, ...(row.kernelTests ?? [])]) assert.ok(existsSync(join(repoRoot, file)), `${name}: ${file} is missing`);
  }
});

test('the registered op cases give every op a forward case and every backward rule a gradient case', () => {
  const cases = registeredCases();
  for (const c of cases) assert.ok(c.file, `op case "${c.name}" has no file`);
  assert.equal(caseProblems(rows, cases), []);
});

test('the checks fail when a case is removed or downgraded, a row is missing, or a listed file has no case', () => {
  const cases = registeredCases();
  // convTranspose2d's gradient case gone.
  const withoutConvT = cases.filter((c) => c.checks.convTranspose2d !== 'gradient');
  assert.ok(withoutConvT.length < cases.length);
  assert.ok(caseProblems(rows, withoutConvT).some((p) => p.startsWith('convTranspose2d: has a backward rule but no op case')));
  // maxPool2d's only case gone.
  assert.ok(caseProblems(rows, cases.filter((c) => !c.checks.maxPool2d)).some((p) => p.startsWith('maxPool2d: no op case')));
  // resize's gradient case downgraded to a forward case.
  const forwardResize = cases.map((c) => (c.checks.resize ? { ...c, checks: { ...c.checks, resize: 'forward' as const } } : c));
  assert.ok(caseProblems(rows, forwardResize).some((p) => p.startsWith('resize: has a backward rule but no op case')));
  // A new export without a row.
  assert.ok(tableProblems({ table: rows, helpers, exported: [...exportedOps, 'newOp'] }).some((p) => p.includes('exports newOp')));
  // A row dropped from the table: its export and the cases that check it are reported.
  const noDiv = rows.filter(([n]) => n !== 'div');
  assert.ok(tableProblems({ table: noDiv, helpers, exported: exportedOps }).some((p) => p.includes('exports div')));
  assert.ok(caseProblems(noDiv, cases).some((p) => p.includes('checks div, which is not a row')));
  // A test file listed for an op that registers no case for it.
  const extraFile = rows.map(([n, row]): [string, OpRow] => (n === 'softmax' ? [n, { ...row, tests: [...row.tests, 'test/binary.test.ts'] }] : [n, row]));
  assert.ok(caseProblems(extraFile, cases).includes('softmax: the table names test/binary.test.ts, but it registers no op case for softmax'));
});

test.run();
