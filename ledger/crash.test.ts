/**
 * Crash test: a child process posts in a loop (./crash-child.ts) and is killed with SIGKILL at random moments,
 * several times; a fresh child is started after each kill (repeating some of the killed one's keys). After every
 * kill the audit must be clean — nothing half-written, every invariant intact — and work must have progressed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../infra/index.ts';
import { createTestEnv, type TestEnv } from '../infra/testing/index.ts';
import { checkInvariants, createLedger } from './index.ts';
import { makeCampaign, makeUser } from './testing.ts';

const KILLS = 6;

describe('ledger crash safety', () => {
  let env: TestEnv;
  let child: ChildProcess | undefined;

  before(async () => {
    env = await createTestEnv();
  });
  after(async () => {
    child?.kill('SIGKILL');
    await env.close();
  });

  it('keeps every invariant when the posting process is killed -9 mid-flight, again and again', async (t) => {
    const advs = [await makeUser(env.sql, 'advertiser'), await makeUser(env.sql, 'advertiser')];
    const affs = [await makeUser(env.sql, 'affiliate'), await makeUser(env.sql, 'affiliate')];
    const camps = [
      await makeCampaign(env.sql, {
        advertiserId: advs[0]!,
        budget: 40_000,
        dailyCap: 30_000,
        revenue: 700,
        payout: 400,
      }),
      await makeCampaign(env.sql, { advertiserId: advs[1]!, budget: null, revenue: 500, payout: 300 }),
      await makeCampaign(env.sql, { advertiserId: advs[0]!, model: 'CPC', budget: 5_000, revenue: 9, payout: 6 }),
    ];
    const wallets: number[] = [];
    for (const aff of affs) {
      const [w] = await env.sql<{ id: number }[]>`
        insert into payout_wallets (affiliate_id, network, address, created_at, usable_at)
        values (${aff}, 'ETH', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', now() - interval '2 days', now() - interval '1 day')
        returning id`;
      wallets.push(w!.id);
    }
    const ledger = createLedger({ sql: env.sql, config: env.config, logger: createLogger({ level: 'silent' }) });
    for (const adv of advs) {
      await ledger.fund({
        advertiserId: adv,
        amount: 60_000,
        currency: 'USD',
        reference: 'seed',
        idempotencyKey: 'seed',
      });
    }
    const fixture = JSON.stringify({ databaseUrl: env.config.DATABASE_URL, advs, affs, camps, wallets });
    const script = path.join(import.meta.dirname, 'crash-child.ts');

    let lastCount = 0;
    for (let k = 0; k < KILLS; k++) {
      const c = spawn(process.execPath, ['--import', 'tsx', script, fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let stderr = '';
      c.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        c.once('exit', (code, signal) => resolve({ code, signal })),
      );
      // Wait until it is posting, then let it run a random while and kill it mid-flight.
      await new Promise<void>((resolve, reject) => {
        c.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('progress')) resolve();
        });
        void exited.then(({ code }) => reject(new Error(`child exited (${code}) before posting: ${stderr}`)));
      });
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 600));
      c.kill('SIGKILL');
      const { signal } = await exited;
      child = undefined;
      assert.equal(signal, 'SIGKILL', `the child failed on its own: ${stderr}`);
      // Its connections' open transactions are rolled back by Postgres; the audit sees committed data only.
      assert.deepEqual(await checkInvariants(env.sql), [], `after kill ${k + 1}`);
      const [{ n }] = (await env.sql<{ n: number }[]>`select count(*)::int as n from ledger_postings`) as unknown as [
        { n: number },
      ];
      assert.ok(n > lastCount, 'postings progressed');
      lastCount = n;
    }
    const kinds = await env.sql<{ type: string; n: number }[]>`
      select type, count(*)::int as n from ledger_postings group by type order by type`;
    t.diagnostic(`postings by type: ${kinds.map((r) => `${r.type}=${r.n}`).join(' ')}`);
    const types = new Set(kinds.map((r) => r.type));
    for (const t of ['deposit', 'conversion', 'click_charge']) assert.ok(types.has(t), `no ${t} posting was made`);
  });
});
