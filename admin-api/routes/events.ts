import { z } from 'zod';
import type { LiveEvent } from '../../infra/index.ts';
import { type Route, route } from '../http.ts';
import { authenticate } from '../security.ts';
import type { SseClient } from '../sse.ts';
import { ROLES } from '../types.ts';

export function eventRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/events/stream',
      summary:
        'Server-sent events for you (admins: all): website/campaign/conversion/wallet/fraud events and force-logout. ' +
        'Authenticate with ?token=<access_token> (EventSource cannot set headers) or a Bearer header.',
      tag: 'events',
      auth: ROLES,
      produces: ['text/event-stream'],
      query: z.object({ token: z.string().max(4096).optional() }),
      async handler({ ctx, deps, services, user }) {
        const credential = String(ctx.query.token ?? '') || ctx.get('authorization').replace(/^Bearer\s+/i, '');
        // Subscribe before answering, so a Redis outage is still a proper 503 envelope.
        await services.hub.ready();
        const res = ctx.res;
        ctx.req.socket.setTimeout(0);
        ctx.req.socket.setNoDelay(true);
        ctx.respond = false;
        res.writeHead(200, {
          ...(ctx.response.headers as Record<string, string>),
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        let open = true;
        const client: SseClient = {
          principal: user,
          send(e: LiveEvent) {
            if (open) res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
          },
          ping() {
            if (open) res.write(`: ping ${Date.now()}\n\n`);
          },
          close() {
            if (!open) return;
            open = false;
            res.end();
          },
          async stillValid() {
            try {
              await authenticate(deps.sql, services.tokens, credential);
              return true;
            } catch {
              return false;
            }
          },
        };
        ctx.req.on('close', () => {
          open = false;
          services.hub.remove(client);
        });
        services.hub.add(client);
        if (open) res.write('retry: 3000\n: connected\n\n');
        return undefined;
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
