/**
 * Offline evaluation of the in-memory fraud engine (tracker/fraud/engine.ts) on a TalkingData-format CSV, with the
 * demo's mapping (bench/demo/replay.ts): campaign per `app`, affiliate per `channel`, link per (app, channel),
 * sub1 = row number, sub2 = device, sub3 = os, user agent `syntheticUserAgent(device, os)`, IP `syntheticIp(ip)`,
 * event time = click_time. Clicks are routed to partitions by `partitionOf(ip)` as the ingest does; each conversion
 * is delivered as a label into its click's partition right after the click (as the live demo posts it right after
 * the redirect), with conversion event time = attributed_time. Runs in-process, no services.
 *
 *   node --import tsx bench/fraud-eval.ts --file ../shared/data/talkingdata/train_sample.csv --partitions 2
 *
 * Prints JSON `{ auc, auc_later_half, partitions, clicks, positives, us_per_click, ... }`; auc is the ROC AUC of
 * (1 − fraud_score) predicting is_attributed; us_per_click is engine CPU (process.cpuUsage, user + system) per click.
 */
import { parseArgs } from 'node:util';
import { type EngineClick, PartitionEngine, partitionOf } from '../tracker/index.ts';
import { readTalkingData, rocAuc, syntheticIp, syntheticUserAgent } from './demo/talkingdata.ts';

const { values } = parseArgs({
  options: {
    file: { type: 'string', default: '../shared/data/talkingdata/train_sample.csv' },
    partitions: { type: 'string', default: '0.5' },
    'label-delay-ms': { type: 'string', default: '600000' },
    'ramp-labels': { type: 'string', default: '1000' },
    /** Event time between a click and its label's arrival in the partitions (the live pipeline's lag), ms. */
    'label-lag-ms': { type: 'string', default: '0' },
    l1: { type: 'string', default: '0.5' },
    alpha: { type: 'string', default: '1' },
  },
});
const partitions = Number(values.partitions);
const labelDelayMs = Number(values['label-delay-ms']);

const rows = readTalkingData(values.file!);
const links = new Map<string, string>();
const linkOf = (app: number, channel: number) => {
  const k = `${app}:${channel}`;
  let code = links.get(k);
  if (code === undefined) {
    code = `td${links.size.toString(36)}`;
    links.set(k, code);
  }
  return code;
};

const engines = Array.from(
  { length: partitions },
  (_, p) =>
    new PartitionEngine({
      partition: p,
      labelDelayMs,
      modelRampLabels: Number(values['ramp-labels']),
      model: { l1: Number(values.l1), alpha: Number(values.alpha) },
    }),
);
const scores = new Float64Array(rows.length);
const labelLagMs = Number(values['label-lag-ms']);
const inFlight: Array<{ arrive: number; label: Parameters<PartitionEngine['label']>[0] }> = [];
const t0 = process.cpuUsage();
for (let i = 0; i < rows.length; i++) {
  const r = rows[i]!;
  while (inFlight.length > 0 && inFlight[0]!.arrive <= r.click_ms) {
    const { label } = inFlight.shift()!;
    for (const e of engines) e.label(label);
  }
  const ip = syntheticIp(r.ip);
  const click: EngineClick = {
    click_id: `c${r.row}`,
    ts_ms: r.click_ms,
    ip,
    campaign_id: r.app + 1,
    affiliate_id: r.channel + 1,
    link_code: linkOf(r.app, r.channel),
    sub: [String(r.row), String(r.device), String(r.os), '', ''],
    user_agent: syntheticUserAgent(r.device, r.os),
    method: 'GET',
    purpose: '',
    invalid_reason: '',
  };
  const v = engines[partitionOf(ip, partitions)]!.click(click)!;
  scores[i] = v.fraud_score;
  // The label needs the verdict's features, so it is made here and delivered right after its click, to every
  // partition, as the pipeline does (tracker/pipeline/labels.ts).
  if (r.is_attributed && r.attributed_ms !== undefined) {
    const label = {
      click_id: click.click_id,
      click_ts_ms: r.click_ms,
      conversion_ts_ms: r.attributed_ms,
      features: v.features,
    };
    if (labelLagMs > 0) inFlight.push({ arrive: r.click_ms + labelLagMs, label });
    else for (const e of engines) e.label(label);
  }
}
const t1 = process.cpuUsage(t0);
const cpuUs = t1.user + t1.system;
const stats = engines.map((e, p) => ({
  partition: p,
  ...e.stats(),
  model_slots: e.model.activeSlots(),
  snapshot_bytes: e.snapshot().length,
}));

const samples = rows.map((r, i) => ({ score: 1 - scores[i]!, label: r.is_attributed }));
const half = Math.floor(samples.length / 2);
console.log(
  JSON.stringify({
    auc: Number(rocAuc(samples).toFixed(4)),
    auc_later_half: Number(rocAuc(samples.slice(half)).toFixed(4)),
    partitions,
    clicks: rows.length,
    positives: rows.filter((r) => r.is_attributed).length,
    us_per_click: Number((cpuUs / rows.length).toFixed(2)),
    label_delay_ms: labelDelayMs,
    per_partition: stats,
  }),
);
