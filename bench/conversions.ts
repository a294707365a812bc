/**
 * Request generator for the conversion scenario: every request posts a distinct conversion
 * (fresh event_id, a click_id from the recent past) so idempotency short-cuts do not flatter the figure.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Writes an autocannon `setupRequest` module (CommonJS, usable from worker threads) that sets a unique
 * JSON body per request.
 * @returns the module's absolute path.
 */
export function writeConversionSetupModule(dir: string, name = 'conversion-setup.cjs'): string {
  const modulePath = path.join(dir, name);
  writeFileSync(
    modulePath,
    [
      "'use strict';",
      "const { randomUUID } = require('node:crypto');",
      'const run = randomUUID().slice(0, 8);',
      'let n = 0;',
      'module.exports = function setupRequest(req) {',
      '  n++;',
      '  req.body = JSON.stringify({',
      '    click_id: randomUUID(),',
      "    event_id: 'bench-' + run + '-' + n,",
      "    goal: 'purchase',",
      '    amount: 19.99,',
      "    currency: 'USD',",
      "    status: 'approved',",
      '  });',
      '  return req;',
      '};',
      '',
    ].join('\n'),
  );
  return modulePath;
}
