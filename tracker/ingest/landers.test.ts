/** The weighted pick of landing pages (./landers.ts): exact shares over evenly spread draws, zero weights, pins. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileLanders, type Landers, pickLander } from './landers.ts';

const row = (id: number, weight: number) => ({ id, url: `https://shop.example.com/${id}?c={click_id}`, weight });

/** How often each id is picked over `n` draws spread evenly over [0, 1). */
function shares(l: Landers, n: number): Map<number, number> {
  const got = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const id = pickLander(l, (i + 0.5) / n).id;
    got.set(id, (got.get(id) ?? 0) + 1);
  }
  return got;
}

describe('landing-page rotation', () => {
  it('gives each page its weight share; a zero weight is never picked', () => {
    const l = compileLanders([row(3, 2), row(1, 1), row(9, 0), row(2, 1)], null)!;
    assert.deepEqual(
      l.list.map((x) => x.id),
      [1, 2, 3],
    );
    assert.deepEqual([...l.cumulative], [1, 2, 4]);
    assert.deepEqual(
      [...shares(l, 4000)].sort((a, b) => a[0] - b[0]),
      [
        [1, 1000],
        [2, 1000],
        [3, 2000],
      ],
    );
    // The edges of [0, 1): the first and the last page.
    assert.equal(pickLander(l, 0).id, 1);
    assert.equal(pickLander(l, 0.999_999_999).id, 3);
    assert.equal(pickLander(l, 0.25).id, 2);
    assert.equal(pickLander(l, 0.5).id, 3);
  });

  it('spreads many pages by weight (binary search over the cumulative weights)', () => {
    const rows = Array.from({ length: 100 }, (_, i) => row(i + 1, i % 3 === 0 ? 0 : i + 1));
    const l = compileLanders(rows, null)!;
    const n = l.total * 10;
    const got = shares(l, n);
    for (const r of rows) assert.equal(got.get(r.id) ?? 0, r.weight * 10, `page ${r.id}`);
  });

  it('a pin always wins, whatever its weight; a pin that is not active falls back to the rotation', () => {
    const pinned = compileLanders([row(1, 5), row(2, 0)], 2)!;
    assert.deepEqual([...shares(pinned, 100).keys()], [2]);
    const gone = compileLanders([row(1, 5)], 7)!;
    assert.equal(gone.pinned, null);
    assert.deepEqual([...shares(gone, 100).keys()], [1]);
  });

  it('no pages, or only zero weights, mean the campaign destination (null)', () => {
    assert.equal(compileLanders([], null), null);
    assert.equal(compileLanders([row(1, 0), row(2, 0)], null), null);
    assert.notEqual(compileLanders([row(1, 0)], 1), null);
  });
});
