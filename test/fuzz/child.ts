// One fuzz run of one target, in its own process (test/fuzz/driver.ts starts
// it and kills it when it stalls): prints "<index> <a|r>" after each input
// (accepted or refused), "BAD <index> <kind> <message>" for an input a reader
// mishandled, and "DONE <peak rss MiB>" at the end.
// Usage: node --import tsx test/fuzz/child.ts TARGET SEED START COUNT RSS_LIMIT_MIB

import { mutate } from './mutate.js';
import { TARGETS, fuzzVerdict } from './targets.js';

const [name, seedArg, startArg, countArg, rssArg] = process.argv.slice(2);
const target = TARGETS[name];
if (!target) {
  console.error(`unknown fuzz target '${name}'; known: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
const seed = Number(seedArg);
const start = Number(startArg);
const count = Number(countArg);
const rssLimit = Number(rssArg) * 1024 * 1024;
const seeds = target.seeds();
let peak = 0;
for (let i = start; i < start + count; i++) {
  const input = mutate(seeds, seed, i, target.json);
  const verdict = await fuzzVerdict(target, target.repair ? target.repair(input) : input);
  if (verdict.kind === 'accepted' || verdict.kind === 'refused') process.stdout.write(`${i} ${verdict.kind[0]}\n`);
  else process.stdout.write(`BAD ${i} ${verdict.kind} ${verdict.message.replace(/\n/g, ' ')}\n${i} b\n`);
  const rss = process.memoryUsage.rss();
  peak = Math.max(peak, rss);
  if (rss > rssLimit) process.stdout.write(`BAD ${i} over-limit rss ${(rss / 2 ** 20).toFixed(0)} MiB after this input (limit ${rssArg} MiB)\n`);
}
process.stdout.write(`DONE ${(peak / 2 ** 20).toFixed(0)}\n`);
