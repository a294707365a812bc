/**
 * Zipf-distributed link popularity for the load generators: a few links take most clicks, a long tail
 * takes the rest, as in real affiliate traffic. The sampling is precomputed into a table of request paths
 * so picking a path costs one array read per request (the load generator must stay cheap).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { mulberry32 } from '../infra/index.ts';

export { mulberry32 };

/**
 * Draws `size` ranks in [0, n) with P(rank k) ∝ 1 / (k + 1)^s.
 * @param s the Zipf exponent (1.0 is the classic web-popularity shape).
 */
export function zipfRanks(n: number, size: number, s = 1.0, seed = 42): Uint32Array {
  if (n < 1) throw new RangeError('zipf needs at least one item');
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / (k + 1) ** s;
    cdf[k] = sum;
  }
  const rand = mulberry32(seed);
  const out = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const u = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

/**
 * The table of click paths: `/c/<code>?sub1=…&sub2=…`, codes in Zipf order of popularity.
 * @param size power of two, so the sampler can mask instead of dividing.
 */
export function clickPaths(codes: readonly string[], size = 1 << 16, seed = 42): string[] {
  const ranks = zipfRanks(codes.length, size, 1.0, seed);
  const rand = mulberry32(seed + 1);
  const paths = new Array<string>(size);
  for (let i = 0; i < size; i++) {
    const code = codes[ranks[i]!]!;
    const sub = Math.floor(rand() * 1000);
    paths[i] = `/c/${code}?sub1=pub${sub % 50}&sub2=ad${sub}&utm_source=bench`;
  }
  return paths;
}

/**
 * Client addresses for `X-Forwarded-For` (the tracker sits behind a load balancer on loopback, a trusted
 * proxy): `distinct` addresses from documentation-free public-looking ranges, in a table of `size`.
 */
export function clientIps(size = 1 << 16, distinct = 20_000, seed = 7): string[] {
  const rand = mulberry32(seed);
  const out = new Array<string>(size);
  for (let i = 0; i < size; i++) {
    const n = Math.floor(rand() * distinct);
    out[i] = `${11 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}.${1 + (n % 250)}`;
  }
  return out;
}

/**
 * Writes an autocannon `setupRequest` module (CommonJS, loadable by autocannon's worker threads, which
 * accept only file paths) that walks the path table (and the client address table) from a random start.
 * @returns the module's absolute path.
 */
export function writeSetupRequestModule(
  dir: string,
  paths: readonly string[],
  ips: readonly string[] = clientIps(paths.length),
  name = 'zipf-setup.cjs',
): string {
  if (paths.length & (paths.length - 1) || ips.length !== paths.length) {
    throw new RangeError('path and address tables must have the same power-of-two length');
  }
  const tablePath = path.join(dir, `${name}.json`);
  writeFileSync(tablePath, JSON.stringify({ paths, ips }));
  const modulePath = path.join(dir, name);
  writeFileSync(
    modulePath,
    [
      "'use strict';",
      `const { paths, ips } = require(${JSON.stringify(tablePath)});`,
      'const mask = paths.length - 1;',
      'let i = Math.floor(Math.random() * paths.length);',
      'module.exports = function setupRequest(req) {',
      '  i = (i + 1) & mask;',
      '  req.path = paths[i];',
      "  req.headers = { ...req.headers, 'x-forwarded-for': ips[i] };",
      '  return req;',
      '};',
      '',
    ].join('\n'),
  );
  return modulePath;
}

/**
 * Writes a wrk Lua script that sends the same Zipf path table (and client addresses) as the autocannon
 * module, so both load generators offer the same traffic. The table is read from a TSV file at start-up
 * (a Lua table literal of 65,536 strings would hit constant limits).
 * @returns the script's absolute path.
 */
export function writeWrkScript(
  dir: string,
  paths: readonly string[],
  ips: readonly string[] = clientIps(paths.length),
  name = 'zipf.lua',
): string {
  const tsv = path.join(dir, `${name}.tsv`);
  writeFileSync(tsv, paths.map((p, i) => `${p}\t${ips[i]}\n`).join(''));
  const script = path.join(dir, name);
  writeFileSync(
    script,
    [
      'local paths, ips = {}, {}',
      `for line in io.lines(${JSON.stringify(tsv)}) do`,
      '  local p, ip = line:match("^([^\\t]+)\\t([^\\t]+)$")',
      '  if p then paths[#paths + 1] = p; ips[#ips + 1] = ip end',
      'end',
      'local n = #paths',
      'local counter = 0',
      'function setup(thread) thread:set("tid", counter); counter = counter + 1 end',
      'local i = 0',
      'function init(args) i = ((tid or 0) * 7919) % n end',
      'local ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"',
      'function request()',
      '  i = i % n + 1',
      '  return wrk.format("GET", paths[i], { ["Host"] = "127.0.0.1", ["User-Agent"] = ua, ["X-Forwarded-For"] = ips[i] })',
      'end',
      '',
    ].join('\n'),
  );
  return script;
}
