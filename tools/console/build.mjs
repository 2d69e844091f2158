// Builds the console into dist/: the HTML and CSS as they are, the TypeScript bundled by
// esbuild for browsers. brookd serves dist/ at / of its HTTP side (http.console_dir).
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';

const out = new URL('./dist/', import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL('./src/console.ts', import.meta.url).pathname],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  sourcemap: true,
  outfile: new URL('console.js', out).pathname,
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) await copyFile(new URL(file, import.meta.url), new URL(file, out));
console.log(`console built in ${out.pathname}`);
