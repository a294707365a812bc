/**
 * A real browser for tests: Debian's `chromium` (installed by `.ci/run`) driven by playwright-core, whose own browser
 * downloads cannot be fetched on these machines.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** Where Debian's package puts the browser; `CHROMIUM_PATH` overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Starts headless Chromium. Close it with `browser.close()` (in an `after` hook).
 * @throws Error naming {@link CHROMIUM_PATH} when the browser is not installed.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no browser at ${CHROMIUM_PATH}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  // Chromium's sandbox refuses to run as root, which CI is; the pages it loads are our own test pages.
  // Loaded here, not at the top: every test file imports this folder and only browser tests need playwright.
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'], headless: true });
}
