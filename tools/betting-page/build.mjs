// Builds the page into dist/: the HTML and CSS as they are, the script bundled with the
// Brook client by esbuild for browsers. brookd serves dist/ with ws.static_dir.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';

const out = new URL('./dist/', import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL('./src/page.ts', import.meta.url).pathname],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  // Node's WebSocket package is for Node only: a browser has its own.
  external: ['ws'],
  sourcemap: true,
  outfile: new URL('page.js', out).pathname,
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) await copyFile(new URL(file, import.meta.url), new URL(file, out));
console.log(`betting page built in ${out.pathname}`);
