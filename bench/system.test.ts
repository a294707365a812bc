import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slope } from './stats.ts';
import {
  type BacklogSample,
  bisectRate,
  groupBacklog,
  judgeStep,
  SUSTAIN,
  streamEntriesAdded,
  usPerClick,
} from './system-analysis.ts';

/** One sample per second for `duration_s` seconds, backlog from `f(t)`. */
const series = (duration_s: number, f: (t: number) => number): BacklogSample[] =>
  Array.from({ length: duration_s + 1 }, (_, t) => ({ t_s: t, backlog: f(t) }));

describe('sustained-rate decision (judgeStep)', () => {
  const base = { rate: 10_000, duration_s: 60, achieved_rps: 10_000, errors: 0 };
  const cases: Array<{
    name: string;
    step: Partial<Parameters<typeof judgeStep>[0]>;
    sustained: boolean;
    reason?: RegExp;
  }> = [
    { name: 'flat small backlog', step: { samples: series(60, () => 500) }, sustained: true },
    {
      name: 'sawtooth of batches under the bound',
      step: { samples: series(60, (t) => (t % 2 ? 15_000 : 1_000)) },
      sustained: true,
    },
    {
      name: 'backlog at the end above 2 s of traffic',
      step: { samples: series(60, () => 25_000) },
      sustained: false,
      reason: /backlog at the end 25000 > 20000/,
    },
    {
      name: 'small but climbing 5 % of the rate',
      step: { samples: series(60, (t) => (t >= 40 ? (t - 40) * 500 : 0)) },
      sustained: false,
      reason: /growing 500 clicks\/s > 200/,
    },
    {
      name: 'climbing 1 % of the rate is within the allowance',
      step: { samples: series(60, (t) => (t >= 40 ? (t - 40) * 100 : 0)) },
      sustained: true,
    },
    {
      name: 'large but draining fails the end bound, not the slope',
      step: { samples: series(60, (t) => 90_000 - t * 1_000) },
      sustained: false,
      reason: /^backlog at the end/,
    },
    {
      name: 'generator fell behind',
      step: { achieved_rps: 9_600, samples: series(60, () => 0) },
      sustained: false,
      reason: /generator reached 9600\/s/,
    },
    {
      name: 'errors',
      step: { errors: 3, samples: series(60, () => 0) },
      sustained: false,
      reason: /^3 errors$/,
    },
    {
      name: 'too few samples in the last third',
      step: { samples: series(60, () => 0).filter((s) => s.t_s < 40 || s.t_s >= 59) },
      sustained: false,
      reason: /2 samples in the last third/,
    },
    {
      name: 'no sample at all',
      step: { samples: [] },
      sustained: false,
      reason: /no backlog sample/,
    },
    {
      name: 'low rate: the 2,000-click floor applies to the end bound',
      step: { rate: 500, achieved_rps: 500, samples: series(15, () => 1_900), duration_s: 15 },
      sustained: true,
    },
    {
      name: 'low rate: the slope floor is 2,000 clicks over the last third',
      step: {
        rate: 500,
        achieved_rps: 500,
        samples: series(15, (t) => (t >= 10 ? (t - 10) * 450 : 0)),
        duration_s: 15,
      },
      sustained: false,
      reason: /growing 450 clicks\/s > 400/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = judgeStep({ ...base, samples: [], ...c.step });
      assert.equal(v.sustained, c.sustained, v.reasons.join('; '));
      if (c.reason)
        assert.ok(
          v.reasons.some((r) => c.reason!.test(r)),
          v.reasons.join('; '),
        );
      else assert.deepEqual(v.reasons, []);
    });
  }

  it('quotes its thresholds', () => {
    const v = judgeStep({ ...base, samples: series(60, () => 0) });
    assert.equal(v.allowed_end_backlog, SUSTAIN.endSeconds * base.rate);
    assert.equal(v.allowed_slope_per_s, SUSTAIN.slopeShare * base.rate);
  });
});

describe('least-squares slope', () => {
  for (const [name, pts, want] of [
    [
      'rising',
      [
        [0, 0],
        [1, 2],
        [2, 4],
      ],
      2,
    ],
    [
      'flat',
      [
        [0, 5],
        [1, 5],
        [2, 5],
      ],
      0,
    ],
    [
      'falling',
      [
        [0, 6],
        [1, 3],
        [2, 0],
      ],
      -3,
    ],
    ['one point', [[3, 9]], 0],
  ] as Array<[string, Array<[number, number]>, number]>) {
    it(name, () => assert.equal(slope(pts), want));
  }
});

describe('one bisection step', () => {
  for (const [good, bad, want] of [
    [8_000, 12_000, 10_000],
    [0, 2_000, 1_000],
    [16_000, 24_000, 20_000],
    [6_000, 6_500, undefined],
    [6_000, 7_000, 6_500],
  ] as Array<[number, number, number | undefined]>) {
    it(`${good} … ${bad} → ${want}`, () => assert.equal(bisectRate(good, bad), want));
  }
});

describe('XINFO replies', () => {
  const group = (o: Record<string, unknown>) => Object.entries(o).flat();
  for (const [name, groups, added, want] of [
    ['lag + pending', [group({ name: 'pipeline', consumers: 1, pending: 7, 'entries-read': 90, lag: 3 })], 100, 10],
    [
      'nil lag falls back to entries-added − entries-read',
      [group({ name: 'pipeline', pending: 2, 'entries-read': 90, lag: null })],
      100,
      12,
    ],
    [
      'other groups are ignored',
      [group({ name: 'other', pending: 50, lag: 50 }), group({ name: 'pipeline', pending: 0, lag: 0 })],
      0,
      0,
    ],
    ['no pipeline group', [group({ name: 'other', pending: 1, lag: 1 })], 5, null],
    ['nothing known', [group({ name: 'pipeline', pending: 1, lag: null, 'entries-read': null })], 5, null],
  ] as Array<[string, unknown[], number, number | null]>) {
    it(name, () => assert.equal(groupBacklog(groups, added), want));
  }

  it('reads entries-added of XINFO STREAM', () => {
    assert.equal(streamEntriesAdded(['length', 3, 'entries-added', 42, 'groups', 1]), 42);
    assert.equal(streamEntriesAdded(['length', 3]), null);
  });
});

describe('CPU per click', () => {
  it('is µs per click, NaN without clicks', () => {
    assert.equal(usPerClick(1.5, 100_000), 15);
    assert.equal(usPerClick(0.123456, 1_000), 123.5);
    assert.ok(Number.isNaN(usPerClick(1, 0)));
  });
});
