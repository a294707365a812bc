/**
 * The reward events as signed webhooks, through the real deliveries engine consuming the durable event log: a parent
 * subscribed to `promoter_signed_up` and `reward_created` gets each once when a recruit registers and converts, the
 * advertiser gets `fulfilment_pending` once for a non-cash reward, and the recruit's own reward never reaches the
 * parent.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { createLogger } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { createDeliveries, type Deliveries } from '../../tracker/index.ts';
import {
  activateCampaign,
  approvedWebsite,
  createBudgetedCampaign,
  fund,
  startTestApi,
  type TestApi,
} from '../test-helpers.ts';

let t: TestApi;
let deliveries: Deliveries;
let receiver: http.Server;
let url: string;
const received: Array<{ path: string; headers: http.IncomingHttpHeaders; body: string }> = [];

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  t = await startTestApi({
    ledger: true,
    env: { DELIVERY_ALLOWED_HOSTS: '127.0.0.1' },
    deliveries: (env) => {
      deliveries = createDeliveries({
        sql: env.sql,
        redis: env.redis,
        keys: env.keys,
        config: env.config,
        logger: createLogger({ level: 'silent' }),
      });
      return deliveries;
    },
  });
  await deliveries.start();
});
after(async () => {
  await deliveries.stop();
  await t.close();
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
});

/** The events delivered to `path`, verified with `secret`: `{type, data}` each. */
function deliveredTo(path: string, secret: string): Array<{ type: string; data: Record<string, unknown> }> {
  const wh = new Webhook(secret);
  return received
    .filter((r) => r.path === path)
    .map(
      (r) => wh.verify(r.body, r.headers as Record<string, string>) as { type: string; data: Record<string, unknown> },
    );
}

test('promoter_signed_up, reward_created and fulfilment_pending arrive once each, signed', async () => {
  const admin = await t.user('admin');
  const adv = await t.user('advertiser');
  const parent = await t.user('affiliate');
  const hook = async (token: string, path: string, events: string[]) => {
    const r = await t.call('post', '/webhooks', { token, body: { url: `${url}${path}`, events } });
    assert.equal(r.status, 201, r.text);
    return r.body.data.secret as string;
  };
  const parentSecret = await hook(parent.token, '/parent', ['promoter_signed_up', 'reward_created']);
  const advSecret = await hook(adv.token, '/adv', ['fulfilment_pending']);

  const code = (await t.call('get', '/auth/me', { token: parent.token })).body.data.referral_code;
  const reg = await t.call('post', '/auth/register', {
    body: {
      name: 'Sub',
      email: 'sub@example.com',
      password: 'correct-horse-9',
      role: 'affiliate',
      referral_code: code,
    },
  });
  const subId = reg.body.data.id as number;

  const site = await approvedWebsite(t, adv, admin);
  await fund(t, adv, 100_000);
  const camp = await createBudgetedCampaign(t, adv, site, 10_000, {
    goals: [{ goal: 'trial', revenue: 300, reward: { unit: 'credits', quantity: 20 } }],
  });
  await activateCampaign(t, adv, camp);
  await t.call('put', `/campaigns/${camp}/tiers`, { token: admin.token, body: { tier2_share_bp: 1000 } });
  const book = async (goal: string, payout: number, revenue: number) => {
    const id = randomUUID();
    await t.env.sql`
      insert into conversions (id, advertiser_id, event_id, click_id, campaign_id, affiliate_id, goal, status, currency,
        payout, revenue, event_time)
      values (${id}, ${adv.id}, ${`e-${id}`}, ${randomUUID()}, ${camp}, ${subId}, ${goal}, 'pending', 'USD', ${payout},
        ${revenue}, now())`;
    assert.equal((await t.ledger!.conversionRecorded({ id })).type, 'posted');
    return id;
  };
  const cashConv = await book('', 700, 1000);
  const kindConv = await book('trial', 0, 300);

  await waitFor('three deliveries', async () => {
    await deliveries.drain();
    return received.length >= 3;
  });
  await new Promise((r) => setTimeout(r, 500));
  await deliveries.drain();

  const toParent = deliveredTo('/parent', parentSecret);
  assert.deepEqual(
    toParent.map((e) => e.type),
    ['promoter_signed_up', 'reward_created'],
  );
  assert.deepEqual((toParent[0]!.data.promoter as { id: number }).id, subId);
  assert.deepEqual(
    [toParent[1]!.data.conversion_id, toParent[1]!.data.tier_level, toParent[1]!.data.amount, toParent[1]!.data.unit],
    [cashConv, 2, 70, 'cash'],
  );
  const toAdv = deliveredTo('/adv', advSecret);
  assert.equal(toAdv.length, 1);
  assert.deepEqual(
    [
      toAdv[0]!.type,
      toAdv[0]!.data.conversion_id,
      toAdv[0]!.data.amount,
      toAdv[0]!.data.unit,
      toAdv[0]!.data.date_paid,
    ],
    ['fulfilment_pending', kindConv, 20, 'credits', null],
  );
});
