import http from 'node:http';
import https from 'node:https';
import { checkUrl, DestinationRefusedError, destinationOf, guardedLookup, type HostAllowlist } from './ssrf.ts';

/** One outbound request of a delivery attempt. */
export interface OutboundRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** What came back; `status` 0 with `error` set when no response arrived (network, timeout, refusal). */
export interface OutboundResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Up to `maxBodyBytes` of the response body, decoded as UTF-8. */
  body: string;
  latency_ms: number;
  error?: string;
  /** True when the destination was refused by the SSRF rules (not worth retrying). */
  refused?: boolean;
}

/**
 * Sends one request: no redirects followed (a 3xx is just a non-2xx answer), the whole exchange
 * bounded by `timeoutMs`, destinations checked against the SSRF rules at connect time.
 * Never throws: failures come back as `{ status: 0, error }`.
 */
export function sendRequest(
  req: OutboundRequest,
  opts: { timeoutMs: number; allow: HostAllowlist; maxBodyBytes?: number },
): Promise<OutboundResult> {
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise<OutboundResult>((resolve) => {
    let done = false;
    const finish = (r: Omit<OutboundResult, 'latency_ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, latency_ms: elapsed() });
    };
    const fail = (err: unknown) => {
      const refused = err instanceof DestinationRefusedError;
      const msg = err instanceof Error ? err.message : String(err);
      finish({ status: 0, headers: {}, body: '', error: msg, refused });
    };
    let url: URL;
    try {
      url = new URL(req.url);
      checkUrl(url, opts.allow);
    } catch (err) {
      // Refused before any socket exists (and before the timer below is set).
      done = true;
      const refused = err instanceof DestinationRefusedError;
      resolve({
        status: 0,
        headers: {},
        body: '',
        error: err instanceof Error ? err.message : String(err),
        refused,
        latency_ms: 0,
      });
      return;
    }
    const dest = destinationOf(url);
    const allowed = opts.allow.allows(dest.host, dest.port);
    const body = req.body === undefined ? undefined : Buffer.from(req.body, 'utf8');
    const headers: Record<string, string> = {
      'user-agent': 'affiliate-tracker-deliveries/1',
      ...req.headers,
      ...(body ? { 'content-length': String(body.length) } : {}),
    };
    const mod = url.protocol === 'https:' ? https : http;
    const r = mod.request(
      url,
      { method: req.method, headers, lookup: guardedLookup(allowed) as never, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < maxBody) chunks.push(c.subarray(0, maxBody - size));
          size += c.length;
          // A huge body is not worth waiting for: the status is known.
          if (size >= maxBody) {
            finish({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            });
            res.destroy();
          }
        });
        res.on('end', () =>
          finish({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', fail);
      },
    );
    const timer = setTimeout(() => {
      fail(new Error(`timeout after ${opts.timeoutMs} ms`));
      r.destroy();
    }, opts.timeoutMs);
    r.on('error', fail);
    r.end(body);
  });
}
