/** Refusals of malformed requests (request.ts): link codes, sub-ids, sizes, headers, methods, bodies. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clicks, get, post, s, useTracker } from './test-helpers.ts';

useTracker();

describe('GET /c/:code', () => {
  it('refuses bad input with a 4xx envelope', async () => {
    const cases: Array<[string, Record<string, string>, string, number, unknown, string?]> = [
      [
        '/c/a$',
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid link code',
          details: { code: ['must match [A-Za-z0-9_-]{3,64}'] },
        },
      ],
      [
        `/c/${'x'.repeat(65)}`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid link code',
          details: { code: ['must match [A-Za-z0-9_-]{3,64}'] },
        },
      ],
      [
        `/c/good-1?sub1=${'y'.repeat(256)}&sub3=%01`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid sub-id',
          details: { sub1: ['must be at most 255 characters'], sub3: ['must not contain control characters'] },
        },
      ],
      [
        `/c/good-1?q=${'z'.repeat(5000)}`,
        {},
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'query string too long',
          details: { query: ['must be at most 4096 characters'] },
        },
      ],
      [
        '/c/good-1',
        { 'user-agent': 'u'.repeat(5000) },
        'GET',
        431,
        {
          code: 'HEADERS_TOO_LARGE',
          message: 'header too large',
          details: { 'user-agent': 'must be at most 4096 characters' },
        },
      ],
      [
        '/c/good-1',
        { 'x-event-time': 'yesterday' },
        'GET',
        400,
        {
          code: 'VALIDATION_ERROR',
          message: 'invalid X-Event-Time',
          details: { 'x-event-time': ['must be epoch milliseconds, from 2000-01-01 and not in the future'] },
        },
      ],
      [
        '/c/good-1',
        {},
        'POST',
        405,
        { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed; use GET, HEAD' },
        'GET, HEAD',
      ],
      [
        '/api/v1/track/conversion',
        {},
        'DELETE',
        405,
        { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed; use GET, POST' },
        'GET, POST',
      ],
      ['/nothing/here', {}, 'GET', 404, { code: 'NOT_FOUND', message: 'not found' }],
    ];
    const before = (await clicks()).length;
    for (const [path, headers, method, status, error, allow] of cases) {
      const res = await get(path, headers, method);
      assert.equal(res.status, status, `${method} ${path.slice(0, 40)}`);
      assert.deepEqual(await res.json(), { success: false, error }, `${method} ${path.slice(0, 40)}`);
      if (allow) assert.equal(res.headers.get('allow'), allow);
    }
    assert.equal((await clicks()).length, before, 'refused requests are not recorded');
  });
});

describe('GET|POST /api/v1/track/conversion', () => {
  const click_id = '0190f2c4-1111-7abc-8def-0123456789ab';

  it('refuses bad bodies: too large, wrong type, bad JSON', async () => {
    const headers = { 'x-postback-token': s.token };
    const big = await post(JSON.stringify({ click_id, pad: 'p'.repeat(17_000) }), 'application/json', headers);
    assert.equal(big.status, 413);
    assert.deepEqual(await big.json(), {
      success: false,
      error: { code: 'PAYLOAD_TOO_LARGE', message: 'body must be at most 16384 bytes' },
    });
    const xml = await post('<a/>', 'application/xml', headers);
    assert.equal(xml.status, 415);
    assert.deepEqual(await xml.json(), {
      success: false,
      error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'use application/json or application/x-www-form-urlencoded' },
    });
    const bad = await post('{"click_id":', 'application/json', headers);
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'body is not valid JSON',
        details: { body: ['must be a JSON object'] },
      },
    });
    const arr = await post('[1]', 'application/json', headers);
    assert.equal(arr.status, 400);
    const obj = await post(JSON.stringify({ click_id, goal: { x: 1 } }), 'application/json', headers);
    assert.deepEqual(await obj.json(), {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'invalid conversion postback',
        details: { goal: ['must be a string'] },
      },
    });
  });
});
