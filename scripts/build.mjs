/**
 * `npm run build`: the agent as one file. esbuild bundles src/cli.ts and the npm packages it uses
 * into dist/cli.js (plus one file per worker thread), because every node pays for every module it
 * loads: a bundle keeps one script instead of hundreds (docs/footprint.md has the figures).
 *
 * - Modules the CLI imports with `await import()` stay lazy inside the bundle (esbuild wraps them
 *   in an init function run on first use), so a configuration pays only for what it uses.
 * - Whitespace and syntax are minified, identifiers are not: function names stay readable in
 *   stack traces, and line/column map back through dist/cli.js.map (run with
 *   `node --enable-source-maps dist/cli.js …` to see src/ positions). The map has no sources
 *   content (they are in src/). Third-party licence comments go to dist/cli.js.LEGAL.txt.
 * - ASCII output: one non-ASCII character would make V8 hold the whole source as a two-byte string.
 * - A `new URL('./x.js', import.meta.url)` in the bundle must name a file that is built beside it
 *   (worker threads): the build fails otherwise.
 *
 * Usage: node scripts/build.mjs [--outdir dist] [--analyze]
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { outdir: { type: 'string', default: 'dist' }, analyze: { type: 'boolean' } } });
const target = resolve(ROOT, values.outdir);
// Built beside the target and moved in file by file (each rename atomic), so a test or agent
// starting from dist/ while someone rebuilds never finds it empty or half written.
const outdir = `${target}.building-${process.pid}`;

/** Entry points: the CLI, and each worker thread at the path the bundled CLI resolves it from. */
const ENTRIES = [
  { in: 'src/cli.ts', out: 'cli' },
  // src/doctor/component.ts: new URL('./worker.js', import.meta.url), import.meta.url being dist/cli.js.
  { in: 'src/doctor/worker.ts', out: 'worker' },
].filter((e) => existsSync(join(ROOT, e.in)));

// Optional native or X11 helpers of dbus-next, required only on paths connwatch never takes.
const EXTERNAL = ['x11', 'usocket', 'kerberos'];

rmSync(outdir, { recursive: true, force: true });
process.on('exit', () => rmSync(outdir, { recursive: true, force: true }));
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: ENTRIES,
  outdir,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  external: EXTERNAL,
  // CommonJS packages inside an ESM bundle call require() for Node's built-ins.
  banner: { js: "import { createRequire as __cwCreateRequire } from 'node:module'; const require = __cwCreateRequire(import.meta.url);" },
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  legalComments: 'external',
  sourcemap: 'linked',
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
});

// Every `new URL('./x', import.meta.url)` left in an output names a file that exists beside it.
const missing = [];
for (const file of Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'))) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  // (The building directory holds exactly what the target will.)
  for (const m of text.matchAll(/new URL\(\s*["'`](\.{1,2}\/[^"'`]+\.js)["'`]\s*,\s*import\.meta\.url\s*\)/g)) {
    if (!existsSync(resolve(dirname(join(ROOT, file)), m[1]))) missing.push(`${relative(outdir, join(ROOT, file))} → ${m[1]}`);
  }
}
if (missing.length > 0) {
  console.error(`build: the bundle loads files that were not built (add them to ENTRIES in scripts/build.mjs):\n  ${missing.join('\n  ')}`);
  process.exit(1);
}

mkdirSync(target, { recursive: true });
const built = readdirSync(outdir);
for (const name of built) renameSync(join(outdir, name), join(target, name));
// What an older build left (the per-module tsc layout) goes.
for (const name of readdirSync(target)) if (!built.includes(name)) rmSync(join(target, name), { recursive: true, force: true });

if (values.analyze) {
  writeFileSync(join(target, 'meta.json'), JSON.stringify(result.metafile));
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    if (!file.endsWith('.js')) continue;
    const byPackage = new Map();
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? 'connwatch (src)';
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + bytesInOutput);
    }
    console.log(`${relative(outdir, join(ROOT, file))}: ${Math.round(output.bytes / 1024)} KiB`);
    for (const [pkg, bytes] of [...byPackage].sort((a, b) => b[1] - a[1])) console.log(`  ${String(Math.round(bytes / 1024)).padStart(6)} KiB  ${pkg}`);
  }
}
