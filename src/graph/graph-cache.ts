// Compiled graphs kept by the shape they were built for. A graph's memory plan
// fixes every shape, so a model builds and compiles one graph per key (batch
// size, input side, options) on first use and reruns it for every later call
// with the same key; compiling is the costly part, running is cheap.

import type { Graph } from './graph.js';

export class GraphCache {
  private readonly graphs = new Map<string, Graph>();

  /** The graph compiled for `key`: built by `build` and compiled on the first call, the same graph after. */
  get(key: string, build: () => Graph): Graph {
    let g = this.graphs.get(key);
    if (!g) {
      g = build();
      g.compile();
      this.graphs.set(key, g);
    }
    return g;
  }

  /** The compiled graphs by key (bench/cases/sam-decoder.js reads a graph's memory plan). */
  [Symbol.iterator](): IterableIterator<[string, Graph]> {
    return this.graphs.entries();
  }

  /** Frees every graph held; the cache stays usable (a later get builds afresh). */
  dispose(): void {
    for (const g of this.graphs.values()) g.dispose();
    this.graphs.clear();
  }
}
