/**
 * What the dashboard's browser tests share (dashboard.test.ts, dashboard-features.test.ts): a browser context whose
 * script and console errors are collected, the in-page accessibility audit (with the optional README screenshot),
 * and the password sign-in.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * A new context and page at 1280×860 with clipboard access on `base`; every page error and console error (but the
 * 401 network logs) is pushed to `errors`, prefixed with `tag`.
 */
export async function openPage(
  browser: Browser,
  base: string,
  tag: string,
  errors: string[],
): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await ctx.newPage();

  page.on('pageerror', (e) => errors.push(`${tag} pageerror: ${e.message}`));
  page.on('console', (m) => {
    // The page's first call asks whether a refresh cookie opens a session; without one the answer is 401, which
    // Chromium logs as a failed resource (no script error), as it does for a call in flight when a session is revoked.
    if (m.type() === 'error' && !/status of 401/.test(m.text()))
      errors.push(`${tag} console: ${m.text()} (${m.location().url})`);
  });
  return { ctx, page };
}

/**
 * Accessible basics of what the page shows, in the browser: every form control has a label, every button and link a
 * name, every image an alt text, and every piece of text a WCAG AA contrast against its background (4.5:1, 3:1 for
 * large text). Returns the problems found.
 */
export const AUDIT = `(() => {
  const problems = [];
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.getAttribute('title') || '').trim();
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (!visible(el) || el.type === 'hidden') continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('button, a[href]')) if (visible(el) && !name(el)) problems.push('nameless ' + el.outerHTML.slice(0, 80));
  for (const el of document.querySelectorAll('img')) if (!el.getAttribute('alt')) problems.push('no alt ' + el.outerHTML.slice(0, 80));
  const rgb = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    const opacity = el.closest('button:disabled') ? 'disabled' : '';
    if (opacity) continue;
    const fg = rgb(st.color), bg = bgOf(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + el.textContent.trim().slice(0, 40));
  }
  return problems;
})()`;

/**
 * Audits the page (see {@link AUDIT}; fails the test on any problem) and, when `shotsDir` is set
 * (DASHBOARD_SCREENSHOTS=1), saves a screenshot of it there as `<name>.png`.
 */
export async function auditPage(page: Page, name: string, shotsDir?: string): Promise<void> {
  assert.deepEqual(await page.evaluate<string[]>(AUDIT), [], `accessibility of ${name}`);
  if (!shotsDir) return;
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: false });
}

/** Opens the dashboard at `base` and submits the password sign-in (a 2FA step, if any, is the caller's). */
export async function signInPage(page: Page, base: string, email: string, password: string): Promise<void> {
  await page.goto(`${base}/dashboard/`);
  await page
    .getByLabel('Email')
    .fill(email, { timeout: 5000 })
    .catch(async (e) => {
      throw new Error(`${e}\n${await page.content()}`);
    });
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
