import { createPostbackSchema, updatePostbackSchema } from '../../tracker/index.ts';
import { deliveriesOf, deliveryLogQuery, enginePage, owner } from '../domain/deliveries/deliveries-of.ts';
import { pageQuery, type Route, route } from '../http.ts';
import type { Role } from '../types.ts';

const AFFILIATE: readonly Role[] = ['affiliate', 'admin'];

/**
 * Affiliate postback URL templates (`tracker/deliveries` engine, `deps.deliveries`; absent → 503). Affiliates and
 * admins only; the engine refuses other affiliates' postbacks with 404 NOT_FOUND.
 */
export function postbackRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/postbacks',
      summary: 'Your postback URL templates (admins: all)',
      tag: 'postbacks',
      auth: AFFILIATE,
      query: pageQuery,
      async handler(a) {
        return enginePage(deliveriesOf(a).postbacks.list(owner(a), a.query));
      },
    }),
    route({
      method: 'post',
      path: '/postbacks',
      summary: 'Create a postback URL template (global or per campaign; macros {click_id} {payout} {sub1}…)',
      tag: 'postbacks',
      auth: AFFILIATE,
      body: createPostbackSchema,
      example: {
        url: 'https://tracker.example/pb?cid={click_id}&p={payout}&c={currency}',
        events: ['conversion.approved'],
      },
      async handler(a) {
        return { status: 201, data: await deliveriesOf(a).postbacks.create(owner(a), a.body) };
      },
    }),
    route({
      method: 'get',
      path: '/postbacks/:id',
      summary: 'One postback',
      tag: 'postbacks',
      auth: AFFILIATE,
      async handler(a) {
        return { data: await deliveriesOf(a).postbacks.get(owner(a), a.params.id!) };
      },
    }),
    route({
      method: 'patch',
      path: '/postbacks/:id',
      summary: 'Change a postback (status active re-enables it)',
      tag: 'postbacks',
      auth: AFFILIATE,
      body: updatePostbackSchema,
      example: { method: 'POST' },
      async handler(a) {
        return { data: await deliveriesOf(a).postbacks.update(owner(a), a.params.id!, a.body) };
      },
    }),
    route({
      method: 'delete',
      path: '/postbacks/:id',
      summary: 'Delete a postback (its logs stay)',
      tag: 'postbacks',
      auth: AFFILIATE,
      async handler(a) {
        await deliveriesOf(a).postbacks.remove(owner(a), a.params.id!);
        return { data: { deleted: true } };
      },
    }),
    route({
      method: 'get',
      path: '/postbacks/:id/logs',
      summary: 'Deliveries of a postback with every attempt',
      tag: 'postbacks',
      auth: AFFILIATE,
      query: deliveryLogQuery,
      async handler(a) {
        return enginePage(deliveriesOf(a).postbacks.logs(owner(a), a.params.id!, a.query));
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
