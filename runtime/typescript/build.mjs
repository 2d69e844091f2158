// Bundles the client (dist/brook.js: one ESM file for browsers and Node, `ws` left out and
// loaded only by a Node without a WebSocket of its own) and the tests (dist/test/), which
// reach the public API through that same bundle, so that what ships is what is tested.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const common = { bundle: true, format: 'esm', target: 'es2020', logLevel: 'warning', sourcemap: true };

await build({
  ...common,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/brook.js',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  external: ['ws'],
});

const publicEntry = path.resolve('src/index.ts');
const useTheBundle = {
  name: 'public-api-from-the-bundle',
  setup(b) {
    b.onResolve({ filter: /\/src\/index(\.ts|\.js)?$/ }, (args) => {
      const resolved = path.resolve(args.resolveDir, args.path);
      if (resolved.replace(/\.(ts|js)$/, '') !== publicEntry.replace(/\.ts$/, '')) return undefined;
      return { path: '../brook.js', external: true };
    });
  },
};

const tests = readdirSync('test').filter((f) => f.endsWith('.test.ts'));
await build({
  ...common,
  entryPoints: tests.map((f) => `test/${f}`),
  outdir: 'dist/test',
  platform: 'node',
  external: ['ws'],
  plugins: [useTheBundle],
});
