/**
 * What the tracker does with a postback its advertiser's IP allowlist refused, besides the 403: count it
 * (`tracker_postbacks_ip_refused_total`) and append it to the advertiser's capped Redis stream
 * (`keys.postbackRefusals`, listed by `GET /api/v1/postback-allowlist/refusals`). The XADD is not awaited by the
 * answer, and a failure is only logged: the hot path never writes Postgres and never waits on a refusal record.
 */
import {
  counterOn,
  type Logger,
  type Redis,
  type RedisKeys,
  type Registry,
  recordPostbackRefusal,
} from '../../infra/index.ts';
import type { TokenAuth } from './conversion.ts';

/** Builds the `onIpRefused` callback of the postback handler. */
export function ipRefusals(
  registry: Registry,
  redis: Redis,
  keys: RedisKeys,
  log: Logger,
): (auth: TokenAuth, ip: string, received_ms: number) => void {
  const refused = counterOn(registry, {
    name: 'tracker_postbacks_ip_refused_total',
    help: "Postbacks refused (403 IP_NOT_ALLOWED) because their address is outside the advertiser's IP allowlist",
  });
  return (auth, ip, received_ms) => {
    refused.inc();
    recordPostbackRefusal(redis, keys, auth.advertiser_id, { ip, token_prefix: auth.prefix, received_ms }).catch(
      (err: Error) =>
        log.warn({ err: err.message, advertiser_id: auth.advertiser_id, ip }, 'postback refusal not recorded'),
    );
  };
}
