// Reads the op cases test files register (test/ref/op-check.ts opCase)
// without running any test: uvu is put in its CLI's deferred mode, so each
// file's test.run() only queues its suite, and the queue is never executed
// (no device is created: gpuSuite opens one in a `before` hook). Prints the
// cases as one JSON line: [{ file, name, checks }]. test/op-coverage.test.ts
// runs it in a child process (importing test files into a running uvu
// process would add their tests to the run).
//
// Usage: node --import tsx test/ref/collect-op-cases.ts test/a.test.ts [test/b.test.ts ...]

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('collect-op-cases: name the test files to read');
  process.exit(2);
}
// What uvu's CLI (uvu/run) sets before importing test files: defer every suite into one queue group.
const uvuGlobals = globalThis as { UVU_DEFER?: number; UVU_INDEX?: number; UVU_QUEUE?: unknown[][] };
uvuGlobals.UVU_DEFER = 1;
uvuGlobals.UVU_INDEX = 0;
uvuGlobals.UVU_QUEUE = [[]];

const { collectingFrom, registeredCases } = await import('./op-check.js');
for (const file of files) {
  collectingFrom(file);
  await import(pathToFileURL(resolve(file)).href);
}
collectingFrom(undefined);
process.stdout.write(`${JSON.stringify(registeredCases)}\n`);
// Imported modules (the GPU binding) may hold the event loop open.
process.exit(0);
