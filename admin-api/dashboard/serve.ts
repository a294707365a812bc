/**
 * Serves the dashboard from the admin API's own origin: `GET /dashboard/` is the page (no-cache), the hashed files of
 * the build are `GET /dashboard/assets/<name>-<hash>.<ext>` (cached for a year, immutable), and `GET /` redirects to
 * the page. Every answer carries a strict Content-Security-Policy: same-origin scripts, styles and connections only,
 * no inline script or style, images also from `data:` (QR codes), no framing.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Context, Next } from 'koa';
import type { Logger } from '../../infra/index.ts';
import { DASHBOARD_BUILD_DIR, type DashboardManifest } from './build.ts';

/** Where the page is served. */
export const DASHBOARD_PATH = '/dashboard/';

/** The policy of every dashboard answer. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

interface Build {
  manifest: DashboardManifest;
  index: Buffer;
}

/**
 * The Koa middleware. It reads the build in `dir` (default: `npm run build`'s); when there is none it builds one
 * with esbuild on first request (development and tests; production images ship the build). A failed build answers
 * 503 with the reason, logged once.
 */
export function dashboardMiddleware(log: Logger, dir = DASHBOARD_BUILD_DIR) {
  let loading: Promise<Build> | undefined;
  const load = async (): Promise<Build> => {
    const read = async (): Promise<Build> => ({
      manifest: JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as DashboardManifest,
      index: await readFile(path.join(dir, 'index.html')),
    });
    try {
      return await read();
    } catch {
      const { buildDashboard } = await import('./build.ts');
      await buildDashboard(dir);
      log.info({ dir }, 'dashboard built on demand (run `npm run build` to build it ahead)');
      return read();
    }
  };
  return async (ctx: Context, next: Next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/' || ctx.path === '/dashboard') {
      ctx.redirect(DASHBOARD_PATH);
      return;
    }
    if (!ctx.path.startsWith(DASHBOARD_PATH)) return next();
    loading ??= load().catch((err) => {
      loading = undefined;
      throw err;
    });
    let build: Build;
    try {
      build = await loading;
    } catch (err) {
      log.error({ err }, 'dashboard build unavailable');
      ctx.status = 503;
      ctx.type = 'text/plain';
      ctx.body = 'dashboard not built: run `npm run build`';
      return;
    }
    ctx.set(SECURITY_HEADERS);
    const rest = ctx.path.slice(DASHBOARD_PATH.length);
    if (rest === '' || rest === 'index.html') {
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = build.index;
      return;
    }
    const name = rest.startsWith('assets/') ? rest.slice('assets/'.length) : '';
    // Only names the build wrote: no path from the request ever reaches the file system.
    const type = Object.hasOwn(build.manifest.files, name) ? build.manifest.files[name] : undefined;
    if (!type) {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'not found';
      return;
    }
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
    ctx.type = type;
    ctx.body = await readFile(path.join(dir, 'assets', name));
  };
}
