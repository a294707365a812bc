import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { mulberry32 } from '../../infra/testing/index.ts';
import { PartitionEngine } from './engine.ts';
import { createFraudEngine } from './engine-pool.ts';
import { type EngineClick, type EngineRecord, type EngineVerdict, FraudStateMismatch } from './engine-types.ts';
import { FRAUD_THRESHOLD } from './rules.ts';
import { MODEL_WEIGHT_MAX } from './scoring.ts';

const T0 = Date.UTC(2024, 2, 1);
const PHONE =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36';

function click(i: number, over: Partial<EngineClick> = {}): EngineClick {
  return {
    click_id: `click-${i}`,
    ts_ms: T0 + i * 1000,
    ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
    campaign_id: 1,
    affiliate_id: 1,
    link_code: 'L1',
    sub: ['', '', '', '', ''],
    user_agent: PHONE,
    method: 'GET',
    purpose: '',
    invalid_reason: '',
    ...over,
  };
}

/**
 * A synthetic stream: affiliate 1 (link good, 10 % of clicks) always converts, affiliate 2 (link bad) never does; conversions are
 * delivered right after their click (as the demo does), the conversion 1 min after the click in event time.
 */
function stream(n: number, seed = 3): Array<{ click: EngineClick; converts: boolean }> {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => {
    const good = rand() < 0.1;
    const c = click(i, {
      ip: `10.${Math.floor(rand() * 200)}.${Math.floor(rand() * 200)}.${Math.floor(rand() * 200)}`,
      affiliate_id: good ? 1 : 2,
      link_code: good ? 'good' : 'bad',
      sub: [String(Math.floor(rand() * 5)), '', '', '', ''],
    });
    return { click: c, converts: good };
  });
}

/** Runs the stream in batches of `batch` records, making each conversion's label from its click's verdict. */
function run(e: PartitionEngine, items: ReturnType<typeof stream>, batch = 100, start = 0): EngineVerdict[] {
  const out: EngineVerdict[] = [];
  let pos = start;
  for (let i = 0; i < items.length; i += batch) {
    const chunk = items.slice(i, i + batch);
    // Labels follow their click in the stream; their features come from the verdict, so labels of this batch
    // go into the next one.
    const verdicts = e.process(
      chunk.map((x) => ({ kind: 'click', click: x.click }) as EngineRecord),
      { from: `${pos}-0`, to: `${pos + 1}-0` },
    );
    pos++;
    out.push(...verdicts);
    const labels: EngineRecord[] = [];
    chunk.forEach((x, k) => {
      if (x.converts)
        labels.push({
          kind: 'label',
          label: {
            click_id: x.click.click_id,
            click_ts_ms: x.click.ts_ms,
            conversion_ts_ms: x.click.ts_ms + 60_000,
            features: verdicts[k]!.features,
          },
        });
    });
    e.process(labels, { from: `${pos}-0`, to: `${pos + 1}-0` });
    pos++;
  }
  return out;
}

describe('PartitionEngine', () => {
  test('fresh state is at 0-0; a wrong `from` throws FraudStateMismatch and processes nothing', () => {
    const e = new PartitionEngine({ partition: 4, maxKeys: 1024, model: { bits: 16 } });
    assert.equal(e.position, '0-0');
    assert.throws(
      () => e.process([{ kind: 'click', click: click(1) }], { from: '5-0', to: '6-0' }),
      (err: unknown) =>
        err instanceof FraudStateMismatch && err.partition === 4 && err.expected === '5-0' && err.actual === '0-0',
    );
    assert.equal(e.stats().clicks, 0);
    e.process([{ kind: 'click', click: click(1) }], { from: '0-0', to: '1-0' });
    assert.equal(e.position, '1-0');
  });

  test('rules keep their verdicts: a bot user agent, a HEAD, a duplicate click', () => {
    const e = new PartitionEngine({ maxKeys: 1024, model: { bits: 16 } });
    const [bot, head, first, dup] = e.process(
      [
        { kind: 'click', click: click(1, { user_agent: 'curl/8.0' }) },
        { kind: 'click', click: click(2, { method: 'HEAD' }) },
        { kind: 'click', click: click(3, { ip: '7.7.7.7' }) },
        { kind: 'click', click: click(4, { ip: '7.7.7.7' }) },
      ],
      { from: '0-0', to: '1-0' },
    );
    assert.deepEqual(bot!.fraud_reasons, ['bot_user_agent']);
    assert.equal(bot!.fraud_score, 0.95);
    assert.deepEqual(head!.fraud_reasons, ['head_request']);
    assert.equal(first!.fraud_score, 0);
    assert.deepEqual(dup!.fraud_reasons, ['duplicate_click']);
    assert.equal(first!.device, 'mobile');
    assert.equal(first!.os, 'Android');
    assert.equal(first!.model_version, 0);
  });

  test('the model learns: a source that always converts scores below one that never does', () => {
    const e = new PartitionEngine({ maxKeys: 1 << 12, model: { bits: 18 } });
    const items = stream(6000);
    const v = run(e, items);
    const late = items.map((x, i) => ({ good: x.converts, v: v[i]! })).slice(4000);
    const mean = (good: boolean) => {
      const xs = late.filter((x) => x.good === good).map((x) => x.v.fraud_score);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    assert.ok(mean(true) < 0.05, `good source ${mean(true)}`);
    assert.ok(mean(false) > 0.3, `bad source ${mean(false)}`);
    // The model alone never flags a click.
    assert.ok(late.every((x) => x.v.fraud_score < FRAUD_THRESHOLD && x.v.fraud_score <= MODEL_WEIGHT_MAX + 1e-4));
    assert.ok(late.some((x) => x.v.fraud_reasons.includes('low_quality_source')));
    assert.ok(late.at(-1)!.v.model_version > 3000);
  });

  test('one click far ahead in time (a live click among replayed ones) does not stop the learning', () => {
    const e = new PartitionEngine({ maxKeys: 1 << 12, model: { bits: 18 } });
    const future = click(0, { click_id: 'from-now', ts_ms: T0 + 10 * 365 * 86_400_000 });
    e.process([{ kind: 'click', click: future }], { from: '0-0', to: '1-0' });
    const items = stream(6000);
    const v = run(e, items, 100, 1);
    assert.ok(v.at(-1)!.model_version > 3000, `labels applied: ${v.at(-1)!.model_version}`);
    const late = items.map((x, i) => ({ good: x.converts, v: v[i]! })).slice(4000);
    const mean = (good: boolean) => {
      const xs = late.filter((x) => x.good === good).map((x) => x.v.fraud_score);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    assert.ok(mean(true) < mean(false), 'the model still separates the sources');
  });

  test('labels only affect later clicks: a label changes nothing until the watermark reaches its due time', () => {
    const mk = () => new PartitionEngine({ maxKeys: 1024, model: { bits: 16 }, labelDelayMs: 10_000 });
    const a = mk();
    const b = mk();
    const clicks = Array.from({ length: 40 }, (_, i) => click(i));
    const va = a.process(
      clicks.slice(0, 20).map((c) => ({ kind: 'click', click: c })),
      { from: '0-0', to: '1-0' },
    );
    b.process(
      clicks.slice(0, 20).map((c) => ({ kind: 'click', click: c })),
      { from: '0-0', to: '1-0' },
    );
    // Click 19's conversion is due 15 s after it (ts 34 s): only clicks from then on can see it.
    a.process(
      [
        {
          kind: 'label',
          label: {
            click_id: 'click-19',
            click_ts_ms: T0 + 19_000,
            conversion_ts_ms: T0 + 34_000,
            features: va[19]!.features,
          },
        },
      ],
      { from: '1-0', to: '2-0' },
    );
    b.process([], { from: '1-0', to: '2-0' });
    const ra = a.process(
      clicks.slice(20).map((c) => ({ kind: 'click', click: c })),
      { from: '2-0', to: '3-0' },
    );
    const rb = b.process(
      clicks.slice(20).map((c) => ({ kind: 'click', click: c })),
      { from: '2-0', to: '3-0' },
    );
    // Clicks 20..28 are scored identically with and without the label. At 29 s click 19's negative is due: the
    // positive that arrived first cancels it; at 34 s the positive itself is applied.
    assert.deepEqual(ra.slice(0, 9), rb.slice(0, 9));
    assert.equal(ra[9]!.model_version, rb[9]!.model_version - 1);
    assert.equal(ra[14]!.model_version, rb[14]!.model_version);
    assert.notDeepEqual(ra[14]!.fraud_score, rb[14]!.fraud_score);
    // A duplicate delivery of the same label is dropped.
    a.process(
      [
        {
          kind: 'label',
          label: { click_id: 'click-19', click_ts_ms: 0, conversion_ts_ms: 0, features: va[19]!.features },
        },
      ],
      { from: '3-0', to: '4-0' },
    );
    assert.equal(a.stats().positives_duplicate, 1);
    // Its negative was cancelled by the positive that arrived first.
    assert.equal(a.stats().negatives_cancelled, 1);
  });

  test('invalid clicks are scored but never queued as negatives; a full queue drops (and counts)', () => {
    const e = new PartitionEngine({ maxKeys: 1024, model: { bits: 16 }, labelQueueMax: 5 });
    const v = e.process(
      Array.from({ length: 10 }, (_, i) => ({
        kind: 'click' as const,
        click: click(i, { invalid_reason: i < 3 ? 'unknown_link' : '' }),
      })),
      { from: '0-0', to: '1-0' },
    );
    assert.equal(v.length, 10);
    assert.equal(e.stats().pending_negatives, 5);
    assert.equal(e.stats().negatives_dropped, 2);
  });

  test('determinism: the same records twice give identical verdicts', () => {
    const items = stream(3000, 11);
    const a = run(new PartitionEngine({ maxKeys: 1 << 12, model: { bits: 18 } }), items);
    const b = run(new PartitionEngine({ maxKeys: 1 << 12, model: { bits: 18 } }), items);
    assert.deepEqual(a, b);
  });

  test('restore(snapshot(e)) then the same records gives byte-identical verdicts to continuing e', () => {
    const items = stream(6000, 5);
    const e = new PartitionEngine({ maxKeys: 1 << 10, model: { bits: 18 }, labelQueueMax: 4000 });
    run(e, items.slice(0, 3000));
    const snap = e.snapshot();
    const r = PartitionEngine.restore(snap);
    assert.equal(r.position, e.position);
    assert.deepEqual(r.snapshot(), snap);
    const pos = Number(e.position.split('-')[0]);
    const ve = run(e, items.slice(3000), 100, pos);
    const vr = run(r, items.slice(3000), 100, pos);
    assert.ok(ve.length === 3000);
    assert.equal(JSON.stringify(vr), JSON.stringify(ve));
    assert.deepEqual(r.snapshot(), e.snapshot());
  });

  test('bounded memory: 10^6 clicks from random IPs and 10^6 from one IP keep every table at its cap', () => {
    const cap = 1 << 12;
    const opts = { maxKeys: cap, model: { bits: 16 }, labelQueueMax: 10_000 };
    const flood = (ipOf: (i: number) => string) => {
      const e = new PartitionEngine(opts);
      const batch: EngineRecord[] = [];
      let pos = 0;
      for (let i = 0; i < 1_000_000; i++) {
        batch.push({ kind: 'click', click: click(i, { ip: ipOf(i), ts_ms: T0 + i * 10 }) });
        if (batch.length === 10_000) {
          e.process(batch, { from: pos === 0 ? '0-0' : `${pos}`, to: `${pos + 1}` }, { replay: true });
          pos++;
          batch.length = 0;
        }
      }
      return e;
    };
    const rand = mulberry32(9);
    const many = flood(() => `${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 65536)}`);
    const one = flood(() => '6.6.6.6');
    for (const e of [many, one]) {
      const s = e.state.sizes();
      assert.ok(s.ip <= cap && s.ipCampaign <= cap && s.ipLink <= cap);
      assert.ok(e.stats().pending_negatives <= 10_000);
    }
    assert.ok(many.state.sizes().ip > cap * 0.95);
    assert.deepEqual(one.state.sizes(), { ip: 1, ipCampaign: 1, ipLink: 1 });
    // Snapshot bound: tables at cap (≤ 220 B per key with slot and key), queue at cap (≤ 125 B), model slots.
    const bound = cap * 220 + 10_000 * 125 + (1 << 16) * 20 + 4096;
    assert.ok(many.snapshot().length <= bound, `${many.snapshot().length} > ${bound}`);
    assert.ok(one.snapshot().length <= bound);
  });
});

describe('createFraudEngine (worker threads)', () => {
  const engine = createFraudEngine({ threads: 2, maxKeys: 1 << 12, labelQueueMax: 50_000 });
  after(() => engine.close());
  const items = stream(4000, 21);
  const records = (xs: typeof items): EngineRecord[] => xs.map((x) => ({ kind: 'click', click: x.click }));

  test('verdicts match the in-process engine; snapshot → restore continues identically; mismatch is reported', async () => {
    const local = new PartitionEngine({ maxKeys: 1 << 12, labelQueueMax: 50_000 });
    const expected = local.process(records(items.slice(0, 2000)), { from: '0-0', to: '1-0' });
    const got = await engine.process(1, records(items.slice(0, 2000)), { from: '0-0', to: '1-0' });
    assert.equal(JSON.stringify(got), JSON.stringify(expected));

    const snap = await engine.snapshot(1);
    assert.equal(snap.at, '1-0');
    // Partition 3 lives in the same thread as 1, partition 2 in the other: both restored from 1's snapshot.
    await engine.restore(2, snap);
    await engine.restore(3, snap);
    const next = records(items.slice(2000));
    const a = await engine.process(1, next, { from: '1-0', to: '2-0' });
    const b = await engine.process(2, next, { from: '1-0', to: '2-0' });
    const c = await engine.process(3, next, { from: '1-0', to: '2-0' });
    const l = local.process(next, { from: '1-0', to: '2-0' });
    assert.equal(JSON.stringify(a), JSON.stringify(l));
    assert.equal(JSON.stringify(b), JSON.stringify(l));
    assert.equal(JSON.stringify(c), JSON.stringify(l));

    await assert.rejects(
      engine.process(1, next, { from: '1-0', to: '2-0' }),
      (e: unknown) => e instanceof FraudStateMismatch && e.actual === '2-0' && e.expected === '1-0',
    );
    // A partition the worker holds no state for (lost or never restored) is a mismatch unless it starts at 0-0.
    await assert.rejects(
      engine.process(9, next, { from: '5-0', to: '6-0' }),
      (e: unknown) => e instanceof FraudStateMismatch && e.actual === '',
    );
    await engine.restore(1, null);
    assert.equal((await engine.snapshot(1)).at, '0-0');
    assert.deepEqual(await engine.process(1, next, { from: '0-0', to: '1-0' }, { replay: true }), []);
  });
});
