// Browser build: one ESM bundle of src/index.ts with no Node built-ins
// (esbuild fails the build if anything on that path imports one).
import { build } from 'esbuild';

await build({
  entryPoints: ['src/index.ts'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  outfile: 'dist/medfocus.browser.js',
  logLevel: 'warning',
});
