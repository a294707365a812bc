/**
 * The tracker's conversion endpoints in the OpenAPI document: the S2S postback (tracker/ingest/postback.ts) and the
 * browser conversions (tracker/ingest/browser.ts). They are served by
 * the tracker, not this API, so each path names the tracker as its server; written by hand because the tracker has
 * no route table. `app.test.ts` checks the document lists exactly the API's routes plus these.
 */

const trackerServer = [
  {
    url: '{tracker}',
    description: 'The tracker (TRACKER_PORT; PUBLIC_TRACKER_URL as publishers see it), not the admin API',
    variables: { tracker: { default: 'http://localhost:8080' } },
  },
];

const errorRef = { $ref: '#/components/schemas/ErrorEnvelope' };
const keyParam = {
  name: 'key',
  in: 'query',
  required: true,
  description: 'A publishable key (pk_live_… / pk_test_…, POST /publishable-keys)',
  schema: { type: 'string', pattern: '^pk_(live|test)_[A-Za-z0-9_-]{20,64}$' },
};
const conversionFields = {
  click_id: { type: 'string', description: 'The click id the landing URL carried ({click_id}); s.js reads its cookie' },
  goal: { type: 'string', maxLength: 255 },
  amount: { type: 'string', description: 'Sale amount as a decimal in major units ("49.90"); needs currency' },
  currency: { type: 'string', description: 'ISO 4217' },
  event_id: {
    type: 'string',
    maxLength: 255,
    description: 'Idempotency key per advertiser; default click_id:goal (required without click_id)',
  },
  customer_id: {
    type: 'string',
    maxLength: 255,
    description:
      "The advertiser's customer reference (trimmed). With click_id: binds the customer to the click (first binding " +
      'wins); without: attributed to the bound click (unknown → rejected unknown_customer). Required for goal=renewal',
  },
};
/** The S2S postback's fields: the browser's, plus what only a server may say (README "Endpoints"). */
const postbackFields = {
  ...conversionFields,
  click_id: { type: 'string', description: 'The click id ({click_id}); optional with customer_id' },
  goal: {
    type: 'string',
    maxLength: 255,
    description:
      'Goal name; lead_signup marks a lead (lead_signup event), renewal a renewal of a recurring commission (priced ' +
      "by the campaign's recurring_percent_bp, attributed through customer_id)",
  },
  status: { enum: ['pending', 'approved', 'rejected'], default: 'pending' },
  event_time: {
    type: 'string',
    description: 'Epoch ms or ISO 8601; not in the future (5 min skew), not before 2000 (default: received time)',
  },
};
const tokenParam = {
  name: 'X-Postback-Token',
  in: 'header',
  required: false,
  description: "The advertiser's postback token (POST /postback-tokens); or the token query/body field",
  schema: { type: 'string' },
};
const postbackErrors = {
  description:
    'Error envelope: 401 UNAUTHORIZED (token), 403 IP_NOT_ALLOWED (allowlist), 400 VALIDATION_ERROR (details per ' +
    'field), 413 (body over 16 KiB), 503 SERVICE_UNAVAILABLE (Retry-After)',
  content: { 'application/json': { schema: errorRef } },
};
const answer = {
  type: 'object',
  required: ['success', 'data'],
  properties: {
    success: { const: true },
    data: {
      type: 'object',
      properties: {
        decision: { enum: ['accepted', 'duplicate', 'rejected'] },
        conversion_id: { type: 'string', format: 'uuid' },
        event_id: { type: 'string' },
        reason: { const: 'unknown_click' },
      },
    },
  },
};

/** The tracker's paths, keyed by path then method (OpenAPI path items). */
export function trackerPaths(): Record<string, Record<string, unknown>> {
  return {
    '/api/v1/track/conversion': {
      servers: trackerServer,
      get: {
        summary:
          'Server-to-server conversion postback (fields as query parameters): answered at once accepted, duplicate ' +
          '(the original conversion_id) or rejected unknown_click; the final decision (reject reasons such as ' +
          'unknown_customer, recurring_expired) is GET /api/v1/track/conversion/{event_id}',
        tags: ['tracker'],
        operationId: 'getTrackConversion',
        security: [],
        parameters: [
          tokenParam,
          ...Object.entries(postbackFields).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
        ],
        responses: {
          '200': { description: 'The decision', content: { 'application/json': { schema: answer } } },
          default: postbackErrors,
        },
      },
      post: {
        summary: 'The same postback with the fields as a JSON or form body (query parameters also read)',
        tags: ['tracker'],
        operationId: 'postTrackConversion',
        security: [],
        parameters: [tokenParam],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: { type: 'object', properties: postbackFields } },
            'application/x-www-form-urlencoded': { schema: { type: 'object', properties: postbackFields } },
          },
        },
        responses: {
          '200': { description: 'The decision', content: { 'application/json': { schema: answer } } },
          default: postbackErrors,
        },
      },
    },
    '/api/v1/track/conversion/browser': {
      servers: trackerServer,
      post: {
        summary:
          "A conversion from a web page (s.js): recorded pending, deduplicated by event_id, attributed to the key's " +
          'advertiser and mode; only from an origin the key lists (Origin checked), rate-limited per key and IP',
        tags: ['tracker'],
        operationId: 'postTrackConversionBrowser',
        security: [],
        parameters: [keyParam, { name: 'Origin', in: 'header', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'text/plain': { schema: { type: 'string', description: 'The JSON object below (no CORS preflight)' } },
            'application/json': { schema: { type: 'object', properties: conversionFields } },
          },
        },
        responses: {
          '200': {
            description: 'Accepted, duplicate or rejected unknown_click',
            content: { 'application/json': { schema: answer } },
          },
          default: {
            description:
              'Error envelope: 401 INVALID_KEY, 403 ORIGIN_NOT_ALLOWED (without CORS headers), 400 VALIDATION_ERROR, ' +
              '429 RATE_LIMITED (Retry-After), 503 SERVICE_UNAVAILABLE (Retry-After)',
            content: { 'application/json': { schema: errorRef } },
          },
        },
      },
      options: {
        summary: 'CORS preflight: 204 with Access-Control-Allow-* only for an origin the key lists, else 403',
        tags: ['tracker'],
        operationId: 'optionsTrackConversionBrowser',
        security: [],
        parameters: [keyParam],
        responses: {
          '204': { description: 'Allowed: Access-Control-Allow-Origin, -Methods: POST, -Headers: content-type' },
          default: { description: '403 ORIGIN_NOT_ALLOWED', content: { 'application/json': { schema: errorRef } } },
        },
      },
    },
    '/api/v1/track/pixel': {
      servers: trackerServer,
      get: {
        summary:
          'The conversion pixel for pages without JavaScript: always a 1×1 GIF; records a pending conversion when the ' +
          "key is live and the Referer's origin is listed, and says nothing either way",
        tags: ['tracker'],
        operationId: 'getTrackPixel',
        security: [],
        parameters: [
          keyParam,
          ...Object.entries(conversionFields).map(([name, schema]) => ({
            name,
            in: 'query',
            required: false,
            schema,
          })),
        ],
        responses: { '200': { description: 'image/gif, 43 bytes', content: { 'image/gif': {} } } },
      },
    },
    '/s.js': {
      servers: trackerServer,
      get: {
        summary:
          'The page script (ES2017, no dependencies, Cache-Control: public, max-age=3600): stores the landing URL’s ' +
          'click id in a first-party cookie and exposes trk.conversion({ goal, amount, currency, event_id, customer_id })',
        tags: ['tracker'],
        operationId: 'getSJs',
        security: [],
        responses: { '200': { description: 'text/javascript', content: { 'text/javascript': {} } } },
      },
    },
  };
}
