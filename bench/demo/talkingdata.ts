import { readFileSync } from 'node:fs';

/**
 * One row of a TalkingData AdTracking CSV
 * (`ip,app,device,os,channel,click_time,attributed_time,is_attributed`, times UTC `YYYY-MM-DD HH:MM:SS`).
 * Source: Kaggle "TalkingData AdTracking Fraud Detection Challenge" (2018).
 */
export interface TalkingDataRow {
  /** 1-based row number in the file (sent as sub1). */
  row: number;
  ip: number;
  app: number;
  device: number;
  os: number;
  channel: number;
  click_ms: number;
  /** Epoch ms of the download, or undefined when the click did not convert. */
  attributed_ms?: number;
  is_attributed: boolean;
}

/** Thrown for a CSV that is not in TalkingData format; says which line. */
export class CsvFormatError extends Error {
  override name = 'CsvFormatError';
}

const HEADER = 'ip,app,device,os,channel,click_time,attributed_time,is_attributed';

function utcMs(s: string, line: number): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s);
  if (!m) throw new CsvFormatError(`line ${line}: bad time ${JSON.stringify(s)}`);
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

function int(s: string | undefined, line: number, what: string): number {
  if (s === undefined || !/^\d+$/.test(s)) throw new CsvFormatError(`line ${line}: bad ${what}`);
  return Number(s);
}

/**
 * Reads the first `limit` data rows of the file, then sorts them by click time (stable, so equal times keep file
 * order), as the sample is a random draw and a replay must run in time order.
 * @throws CsvFormatError on a wrong header or a malformed line.
 */
export function readTalkingData(file: string, limit = Number.POSITIVE_INFINITY): TalkingDataRow[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  if (lines[0]?.trim() !== HEADER) throw new CsvFormatError(`header is not "${HEADER}"`);
  const rows: TalkingDataRow[] = [];
  for (let i = 1; i < lines.length && rows.length < limit; i++) {
    const text = lines[i]!.trim();
    if (text === '') continue;
    const f = text.split(',');
    if (f.length !== 8) throw new CsvFormatError(`line ${i + 1}: expected 8 fields`);
    const isAttributed = f[7] === '1';
    rows.push({
      row: i,
      ip: int(f[0], i + 1, 'ip'),
      app: int(f[1], i + 1, 'app'),
      device: int(f[2], i + 1, 'device'),
      os: int(f[3], i + 1, 'os'),
      channel: int(f[4], i + 1, 'channel'),
      click_ms: utcMs(f[5]!, i + 1),
      attributed_ms: f[6] ? utcMs(f[6], i + 1) : undefined,
      is_attributed: isAttributed,
    });
  }
  return rows.sort((a, b) => a.click_ms - b.click_ms);
}

/** A stable synthetic IPv4 address for an encoded TalkingData ip value (10.0.0.0/8 holds every value). */
export function syntheticIp(ip: number): string {
  return `10.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** A stable, ordinary (non-bot) mobile user agent for a (device, os) pair. */
export function syntheticUserAgent(device: number, os: number): string {
  return (
    `Mozilla/5.0 (Linux; Android ${7 + (os % 8)}; Device-${device}) ` +
    `AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${90 + (os % 30)}.0.0.0 Mobile Safari/537.36`
  );
}

/**
 * ROC AUC of `score` as a predictor of `label` (Mann–Whitney U with average ranks for ties).
 * @returns a number in [0, 1], or NaN when one class is empty.
 */
export function rocAuc(samples: Array<{ score: number; label: boolean }>): number {
  const sorted = [...samples].sort((a, b) => a.score - b.score);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && sorted[j]!.score === sorted[i]!.score) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (sorted[k]!.label) {
        positives++;
        rankSum += avgRank;
      }
    }
    i = j;
  }
  const negatives = sorted.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
