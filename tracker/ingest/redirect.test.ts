/**
 * The 302 cannot carry injected headers (issue #12 item 5), read off the raw socket so nothing between the tracker
 * and the test repairs or rejects a broken response: a crafted sub-id is URL-encoded (or refused), and a destination
 * or fallback holding raw CR/LF — as a row written before the admin API refused them, or by hand — is never written
 * into `Location`.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { makeCampaign } from '../../infra/testing/index.ts';
import { env, s, tracker, useTracker } from './test-helpers.ts';

useTracker();

/** The raw bytes of the tracker's answer to `GET path` (HTTP/1.1, connection closed after it), as latin1 text. */
function rawGet(path: string): Promise<string> {
  const { hostname, port } = new URL(tracker.url);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: hostname, port: Number(port) }, () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    sock.on('data', (b) => chunks.push(b));
    sock.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', reject);
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer')));
  });
}

/** Header names of a raw response's head, lower case. */
function headerNames(raw: string): string[] {
  const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase());
}

const INJECTED = 'https://shop.example/a\r\nSet-Cookie: injected=1\r\nX-Injected: yes\r\n\r\n<h1>owned</h1>';

async function legacyLink(code: string, columns: Record<string, unknown>): Promise<void> {
  const id = await makeCampaign(env.sql, s.advertiser, { name: code, ...columns });
  await env.sql`insert into links (code, campaign_id, affiliate_id) values (${code}, ${id}, ${s.affiliate})`;
}

describe('the 302 carries no injected header', () => {
  it('a sub-id with CR/LF cannot add a header', async () => {
    const raw = await rawGet('/c/good-1?sub1=x%0d%0aSet-Cookie:%20injected=1&sub2=%0aX-Injected:%20yes');
    const names = headerNames(raw);
    assert.ok(!names.includes('set-cookie'), raw);
    assert.ok(!names.includes('x-injected'), raw);
    assert.ok(!/\r\nSet-Cookie:/i.test(raw), raw);
  });

  it('a stored destination with raw CR/LF is not written: 500 without Location', async () => {
    await legacyLink('legacy-crlf', { destination_url: INJECTED, status: 'active' });
    const raw = await rawGet('/c/legacy-crlf');
    assert.match(raw, /^HTTP\/1\.1 500 /);
    const names = headerNames(raw);
    assert.ok(!names.includes('location'), raw);
    assert.ok(!names.includes('set-cookie'), raw);
    assert.ok(!names.includes('x-injected'), raw);
    assert.ok(!raw.includes('<h1>owned</h1>'), raw);
    assert.match(raw, /"code":"INTERNAL_ERROR"/);
  });

  it("so is a paused campaign's fallback with raw CR/LF", async () => {
    await legacyLink('legacy-fb', {
      destination_url: 'https://shop.example/',
      fallback_url: INJECTED,
      status: 'paused',
    });
    const raw = await rawGet('/c/legacy-fb');
    assert.match(raw, /^HTTP\/1\.1 500 /);
    const names = headerNames(raw);
    assert.ok(!names.includes('location') && !names.includes('set-cookie') && !names.includes('x-injected'), raw);
  });

  it('a tab is refused too (never valid in a header value)', async () => {
    await legacyLink('legacy-tab', { destination_url: 'https://shop.example/\tx', status: 'active' });
    const raw = await rawGet('/c/legacy-tab');
    assert.match(raw, /^HTTP\/1\.1 500 /);
    assert.ok(!headerNames(raw).includes('location'), raw);
  });
});
