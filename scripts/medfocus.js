#!/usr/bin/env node
// The MedFocus command line: `node scripts/medfocus.js [command] [options]`
// (the package's bin). The command line is src/medfocus/cli.ts (the commands:
// runs.ts, protocol.ts, demo.ts beside it), built to dist by `npm run build`.
import { main } from '../dist/medfocus/cli.js';

// exit explicitly: the WebGPU instance would keep the event loop alive.
process.exit(await main(process.argv.slice(2)));
