// The progress bar written to a log (not a terminal): a line per tenth plus a
// heartbeat every PLAIN_HEARTBEAT_MS of a slow phase, never a line per item.

import * as assert from 'uvu/assert';
import { PLAIN_HEARTBEAT_MS, ProgressBar } from '../src/util/progress.js';
import { suite } from './util.js';

const test = suite('progress');

function run(items: number, msPerItem: number): string[] {
  const lines: string[] = [];
  let t = 0;
  const bar = new ProgressBar('work', items, { stream: { write: (s) => lines.push(s), isTTY: false }, now: () => t });
  for (let i = 0; i < items; i++) {
    t += msPerItem;
    bar.tick();
  }
  bar.done();
  return lines;
}

test('fast items: one line on the first item and one per tenth (11 for 1,000 items), however many items', () => {
  const lines = run(1000, 5);
  assert.is(lines.length, 11, lines.join(''));
  assert.match(lines.at(-1)!, /^work \[#{20}\] 1000\/1000/);
});

test('slow items: a heartbeat line at most every PLAIN_HEARTBEAT_MS, beside the tenths', () => {
  const items = 200;
  const msPerItem = 2000; // 400 s in all: the tenths come every 40 s
  const lines = run(items, msPerItem);
  const heartbeats = Math.floor((items * msPerItem) / PLAIN_HEARTBEAT_MS);
  assert.ok(lines.length <= 11 + heartbeats, `${lines.length} lines for ${items} items`);
  assert.ok(lines.length > 11, 'heartbeats between the tenths');
  assert.ok(lines.length < items / 5, 'never a line per item');
});

test.run();
