import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CsvFormatError, readTalkingData, rocAuc, syntheticIp, syntheticUserAgent } from './talkingdata.ts';

describe('TalkingData replay helpers', () => {
  it('reads, limits and sorts rows by click time', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'td-'));
    const file = path.join(dir, 'x.csv');
    writeFileSync(
      file,
      'ip,app,device,os,channel,click_time,attributed_time,is_attributed\n' +
        '5,12,1,13,497,2017-11-07 09:30:38,,0\n' +
        '6,25,1,17,259,2017-11-07 09:30:37,2017-11-07 09:31:00,1\n' +
        '7,25,1,17,259,2017-11-06 00:00:00,,0\n',
    );
    const rows = readTalkingData(file, 2);
    assert.deepEqual(
      rows.map((r) => r.row),
      [2, 1],
    );
    assert.equal(rows[0]!.click_ms, Date.UTC(2017, 10, 7, 9, 30, 37));
    assert.equal(rows[0]!.attributed_ms, Date.UTC(2017, 10, 7, 9, 31, 0));
    assert.equal(rows[0]!.is_attributed, true);
    writeFileSync(file, 'a,b\n1,2\n');
    assert.throws(() => readTalkingData(file), CsvFormatError);
  });

  it('maps ids to stable synthetic IPs and user agents', () => {
    assert.equal(syntheticIp(87540), '10.1.85.244');
    assert.equal(syntheticIp(87540), syntheticIp(87540));
    assert.notEqual(syntheticIp(1), syntheticIp(2));
    assert.equal(syntheticUserAgent(1, 13), syntheticUserAgent(1, 13));
    assert.notEqual(syntheticUserAgent(1, 13), syntheticUserAgent(2, 13));
  });

  it('computes ROC AUC with ties', () => {
    const s = (score: number, label: boolean) => ({ score, label });
    assert.equal(rocAuc([s(0.1, false), s(0.9, true)]), 1);
    assert.equal(rocAuc([s(0.9, false), s(0.1, true)]), 0);
    assert.equal(rocAuc([s(0.5, false), s(0.5, true)]), 0.5);
    assert.equal(rocAuc([s(0.2, false), s(0.4, true), s(0.6, false), s(0.8, true)]), 0.75);
    assert.ok(Number.isNaN(rocAuc([s(1, true)])));
  });
});
