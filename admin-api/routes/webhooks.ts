import { createWebhookSchema, updateWebhookSchema, webhookTargetSchema } from '../../tracker/index.ts';
import { deliveriesOf, deliveryLogQuery, enginePage, owner } from '../domain/deliveries/deliveries-of.ts';
import { pageQuery, type Route, route } from '../http.ts';
import type { Role } from '../types.ts';

const ANYONE: readonly Role[] = ['advertiser', 'affiliate', 'admin'];

/**
 * Standard-Webhooks endpoints of every role (`tracker/deliveries` engine, `deps.deliveries`; absent → 503). The
 * engine refuses other users' endpoints and deliveries with 404 NOT_FOUND.
 */
export function webhookRoutes(): Route<never, never>[] {
  const list = [
    route({
      method: 'get',
      path: '/webhooks',
      summary: 'Your webhook endpoints (admins: all)',
      tag: 'webhooks',
      auth: ANYONE,
      query: pageQuery,
      async handler(a) {
        return enginePage(deliveriesOf(a).webhooks.list(owner(a), a.query));
      },
    }),
    route({
      method: 'post',
      path: '/webhooks',
      summary: 'Create a webhook endpoint; answers its whsec_ signing secret once',
      tag: 'webhooks',
      auth: ANYONE,
      body: createWebhookSchema,
      example: { url: 'https://hooks.example/affiliate', events: ['conversion.created', 'payout.paid'] },
      async handler(a) {
        const { webhook, secret } = await deliveriesOf(a).webhooks.create(owner(a), a.body);
        return { status: 201, data: { ...webhook, secret } };
      },
    }),
    route({
      method: 'post',
      path: '/webhooks/retry-failed',
      summary: 'Requeue every failed webhook delivery (or those of one endpoint)',
      tag: 'webhooks',
      auth: ANYONE,
      body: webhookTargetSchema,
      example: {},
      async handler(a) {
        return { data: await deliveriesOf(a).webhooks.retryFailed(owner(a), a.body ?? {}) };
      },
    }),
    route({
      method: 'post',
      path: '/webhooks/test',
      summary: 'Send a sample conversion.created to one endpoint (or all of yours)',
      tag: 'webhooks',
      auth: ANYONE,
      body: webhookTargetSchema,
      example: {},
      async handler(a) {
        return { status: 202, data: await deliveriesOf(a).webhooks.sendTest(owner(a), a.body ?? {}) };
      },
    }),
    route({
      method: 'post',
      path: '/webhooks/deliveries/:deliveryId/replay',
      summary: 'Send a delivery again now (same webhook-id and body)',
      tag: 'webhooks',
      auth: ANYONE,
      async handler(a) {
        return { status: 202, data: await deliveriesOf(a).webhooks.replay(owner(a), a.params.deliveryId!) };
      },
    }),
    route({
      method: 'get',
      path: '/webhooks/:id',
      summary: 'One webhook endpoint',
      tag: 'webhooks',
      auth: ANYONE,
      async handler(a) {
        return { data: await deliveriesOf(a).webhooks.get(owner(a), a.params.id!) };
      },
    }),
    route({
      method: 'patch',
      path: '/webhooks/:id',
      summary: 'Change a webhook endpoint (status active re-enables it)',
      tag: 'webhooks',
      auth: ANYONE,
      body: updateWebhookSchema,
      example: { events: ['conversion.approved'] },
      async handler(a) {
        return { data: await deliveriesOf(a).webhooks.update(owner(a), a.params.id!, a.body) };
      },
    }),
    route({
      method: 'delete',
      path: '/webhooks/:id',
      summary: 'Delete a webhook endpoint (its delivery log stays)',
      tag: 'webhooks',
      auth: ANYONE,
      async handler(a) {
        await deliveriesOf(a).webhooks.remove(owner(a), a.params.id!);
        return { data: { deleted: true } };
      },
    }),
    route({
      method: 'put',
      path: '/webhooks/:id/rotate-secret',
      summary: 'New signing secret (answered once); the previous one keeps signing for the grace period',
      tag: 'webhooks',
      auth: ANYONE,
      async handler(a) {
        return { data: await deliveriesOf(a).webhooks.rotateSecret(owner(a), a.params.id!) };
      },
    }),
    route({
      method: 'get',
      path: '/webhooks/:id/deliveries',
      summary: 'Deliveries of a webhook endpoint with every attempt',
      tag: 'webhooks',
      auth: ANYONE,
      query: deliveryLogQuery,
      async handler(a) {
        return enginePage(deliveriesOf(a).webhooks.deliveries(owner(a), a.params.id!, a.query));
      },
    }),
  ];
  return list as unknown as Route<never, never>[];
}
