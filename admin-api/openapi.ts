import { z } from 'zod';
import { ERROR_STATUS } from '../infra/index.ts';
import type { Route } from './http.ts';
import { trackerPaths } from './openapi-tracker.ts';

function schemaOf(s: z.ZodType): Record<string, unknown> {
  const j = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  delete j.$schema;
  return j;
}

const envelopeError = {
  type: 'object',
  required: ['success', 'error'],
  properties: {
    success: { const: false },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        // Every stable code of infra/errors.ts, and the HTTP status each one is answered with.
        code: { type: 'string', enum: Object.keys(ERROR_STATUS), 'x-http-status': ERROR_STATUS },
        message: { type: 'string' },
        details: {},
      },
    },
  },
};

/**
 * The OpenAPI 3.1 document of the API, built from the same route table that registers the routes,
 * so a route cannot exist without being documented; plus the tracker's browser-conversion endpoints
 * (./openapi-tracker.ts), each path naming the tracker as its server.
 */
export function buildOpenApi(routes: readonly Route<unknown, unknown>[], prefix: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const oaPath = prefix + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const params = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema:
        m[1] === 'sid' || r.uuidParams?.includes(m[1]!)
          ? { type: 'string', format: 'uuid' }
          : { type: 'integer', minimum: 1 },
    }));
    if (r.query) {
      const q = schemaOf(r.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {}))
        params.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema } as never);
    }
    const content: Record<string, unknown> = {
      'application/json': {
        schema: {
          type: 'object',
          required: ['success', 'data'],
          properties: { success: { const: true }, data: {}, meta: { type: 'object' } },
        },
      },
    };
    for (const t of r.produces ?? []) content[t] = { schema: { type: 'string' } };
    const item = paths[oaPath] ?? {};
    paths[oaPath] = item;
    item[r.method] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method}${r.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      security: r.auth === 'public' ? [] : [{ bearer: [] }],
      ...(r.auth === 'public' ? {} : { 'x-roles': r.auth, ...(r.scope ? { 'x-api-key-scope': r.scope } : {}) }),
      parameters: params,
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: {
                'application/json': { schema: schemaOf(r.body), ...(r.example ? { example: r.example } : {}) },
                ...(r.csv ? { 'text/csv': { schema: { type: 'string' } } } : {}),
              },
            },
          }
        : {}),
      responses: {
        '200': { description: 'Success envelope', content },
        default: { description: 'Error envelope', content: { 'application/json': { schema: envelopeError } } },
      },
    };
  }
  paths[`${prefix}/openapi.json`] = {
    get: {
      summary: 'This document',
      tags: ['meta'],
      operationId: 'getOpenapi',
      security: [],
      responses: { '200': { description: 'OpenAPI 3.1 document' } },
    },
  };
  Object.assign(paths, trackerPaths());
  return {
    openapi: '3.1.0',
    info: { title: 'Affiliate tracker admin API', version: '1.0.0' },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Access token (JWT) or API key (live_/test_)' },
      },
      schemas: { ErrorEnvelope: envelopeError },
    },
    paths,
  };
}
