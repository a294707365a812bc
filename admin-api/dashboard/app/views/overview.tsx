/** Today's live counter and the feed of events from the SSE stream. */
import { useLive } from '../live.ts';
import { when } from '../time.ts';
import { Section } from '../ui.tsx';

/** One line of an event's data: its scalar fields. */
export function summary(data: Record<string, unknown>): string {
  return Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k}: ${String(v)}`)
    .join(', ');
}

export function Overview() {
  const live = useLive();
  return (
    <>
      <Section title="Today">
        <dl class="stats">
          <div>
            <dt>Clicks</dt>
            <dd data-testid="today-clicks">{live.clicks ?? '…'}</dd>
          </div>
          <div>
            <dt>Conversions</dt>
            <dd data-testid="today-conversions">{live.conversions ?? '…'}</dd>
          </div>
          <div>
            <dt>Stream</dt>
            <dd>{live.connected ? 'connected' : 'connecting…'}</dd>
          </div>
        </dl>
      </Section>
      <Section title="Live events">
        {live.events.length === 0 ? (
          <p>No events since you opened the page.</p>
        ) : (
          <ol class="feed" aria-live="polite" data-testid="feed">
            {live.events.map((e) => (
              <li key={e.id}>
                <time dateTime={e.created_at}>{when(e.created_at)}</time> <strong>{e.type}</strong>{' '}
                <span>{summary(e.data)}</span>
              </li>
            ))}
          </ol>
        )}
      </Section>
    </>
  );
}
