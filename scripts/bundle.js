// Browser build: one ESM bundle of both browser-safe entries, the engine
// (src/index.ts, `medfocus`) and the MedFocus application (src/app.ts,
// `medfocus/app`), so that a page or a bundler importing both gets one copy
// of every module; no Node built-ins (esbuild fails the build if anything on
// that path imports one).
import { build } from 'esbuild';

await build({
  stdin: { contents: "export * from './src/index.ts';\nexport * from './src/app.ts';\n", resolveDir: '.', sourcefile: 'medfocus.browser.ts', loader: 'ts' },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  outfile: 'dist/medfocus.browser.js',
  logLevel: 'warning',
});
