/**
 * The pipeline's maintenance pass, every `maintenanceIntervalMs`: refreshes each stream's lag and pending
 * counters, trims the streams (a click stream keeps every entry after its checkpoint) and removes stale
 * manifests.
 */
import { checkpointAt, checkpointKey } from './partition.ts';
import type { Runtime } from './runtime.ts';
import { compareIds, GROUP, groupStates, manifestKey, readManifests, trimStream } from './streams.ts';

/** Runs maintenance passes until the pipeline closes. */
export async function maintenance(rt: Runtime) {
  const { log, redis, keys, stats, maintenanceMs, nap } = rt;
  while (!rt.closing) {
    for (const st of stats) {
      try {
        const states = await groupStates(redis, st.stream);
        const g = states.get(GROUP);
        st.lag = g?.lag ?? null;
        st.pending = g?.pending ?? null;
        // A click stream keeps every entry after its checkpoint: a takeover replays them into the state.
        const keepFrom = st.kind === 'clicks' ? await checkpointAt(redis, checkpointKey(keys, st.stream)) : undefined;
        await trimStream(redis, st.stream, states, keepFrom);
        // Manifests whose entries are all acknowledged (a crash between XACK and HDEL) are stale.
        const manifests = await readManifests(redis, keys, st.stream);
        const minPending = g?.minPendingId ?? null;
        for (const [token, ids] of manifests) {
          const last = ids[ids.length - 1] ?? '0-0';
          if (minPending === null || compareIds(last, minPending) < 0) {
            const again = await groupStates(redis, st.stream);
            const mp = again.get(GROUP)?.minPendingId ?? null;
            if (mp === null || compareIds(last, mp) < 0) await redis.hdel(manifestKey(keys, st.stream), token);
          }
        }
      } catch (err) {
        log.warn({ stream: st.stream, err: (err as Error).message }, 'maintenance failed');
      }
    }
    await nap(maintenanceMs);
  }
}
