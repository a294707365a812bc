/**
 * Builds the dashboard (`npm run build`, or on demand by ./serve.ts): bundles `app/main.tsx` (Preact, uPlot, the QR
 * encoder) and its CSS with esbuild into content-hashed files under {@link DASHBOARD_BUILD_DIR}`/assets`, then writes
 * `index.html` (which names them) and `manifest.json` (`{ "files": { "<name>": "<content type>" }, "js", "css" }`).
 * Nothing is fetched at run time: every file the page loads is one of these, served by the admin API.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const moduleDir = path.dirname(fileURLToPath(import.meta.url));
// Compiled to dist/admin-api/dashboard/, the build still lives beside the sources (as migrations do: infra/migrate.ts).
const here = import.meta.url.endsWith('.ts')
  ? moduleDir
  : path.resolve(moduleDir, '..', '..', '..', 'admin-api', 'dashboard');

/** The TSX sources. */
export const DASHBOARD_APP_DIR = path.join(here, 'app');
/** Where the build goes (git-ignored): `index.html`, `manifest.json`, `assets/<name>-<hash>.{js,css}`. */
export const DASHBOARD_BUILD_DIR = path.join(here, 'build');

/** What a build wrote. */
export interface DashboardManifest {
  /** File name under `assets/` → content type. */
  files: Record<string, string>;
  /** The entry script's and style sheet's file names under `assets/`. */
  js: string;
  css: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.woff2': 'font/woff2',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

function indexHtml(m: DashboardManifest): string {
  // No inline script or style: the CSP (./serve.ts) allows only these same-origin files.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Affiliate tracker</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${m.css}">
<script type="module" src="assets/${m.js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The dashboard needs JavaScript.</noscript>
</body>
</html>
`;
}

/**
 * Bundles the app into `outDir` (default {@link DASHBOARD_BUILD_DIR}), replacing what was there. Built in a sibling
 * directory and renamed into place, so a server reading the old build never sees half of the new one.
 * @throws Error when esbuild is not installed (it is a dev dependency: production images build before pruning) or the
 *   sources do not compile.
 */
export async function buildDashboard(outDir = DASHBOARD_BUILD_DIR): Promise<DashboardManifest> {
  const esbuild = await import('esbuild');
  const tmp = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const result = await esbuild.build({
      entryPoints: { app: path.join(DASHBOARD_APP_DIR, 'main.tsx') },
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: ['es2022'],
      jsx: 'automatic',
      jsxImportSource: 'preact',
      entryNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      outdir: path.join(tmp, 'assets'),
      metafile: true,
      legalComments: 'eof',
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'silent',
    });
    const files: Record<string, string> = {};
    let js = '';
    let css = '';
    for (const out of Object.keys(result.metafile.outputs)) {
      const name = path.basename(out);
      files[name] = TYPES[path.extname(name)] ?? 'application/octet-stream';
      if (name.endsWith('.js')) js = name;
      if (name.endsWith('.css')) css = name;
    }
    const manifest: DashboardManifest = { files, js, css };
    writeFileSync(path.join(tmp, 'index.html'), indexHtml(manifest));
    writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(outDir, { recursive: true, force: true });
    try {
      renameSync(tmp, outDir);
    } catch (err) {
      // Another process built the same sources into place between the two calls: its build serves as well.
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      rmSync(tmp, { recursive: true, force: true });
      return JSON.parse(readFileSync(path.join(outDir, 'manifest.json'), 'utf8')) as DashboardManifest;
    }
    return manifest;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const m = await buildDashboard();
  process.stdout.write(`dashboard built in ${Date.now() - started} ms: ${Object.keys(m.files).join(', ')}\n`);
}
