import { type Logger, pino } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line (secrets, tokens, credentials). */
const REDACT = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-postback-token"]',
  'refresh_token',
  'access_token',
  '*.access_token',
  '*.refresh_token',
];

/**
 * The root logger (pino, JSON lines on stdout). Modules take a child:
 * `logger.child({ module: 'pipeline' })`.
 */
export function createLogger(opts: { level: string; name?: string }): Logger {
  return pino({
    level: opts.level,
    name: opts.name,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { pid: process.pid },
  });
}
