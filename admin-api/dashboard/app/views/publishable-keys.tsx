/**
 * The advertiser's publishable keys for browser conversions (README "Browser conversions"): create one with its mode
 * and allowed origins, the list (keys are public, so shown whole), replace a key's origins, revoke it, and the
 * `<script>` tag (and the no-JavaScript pixel) to paste into the site's pages.
 */
import { useState } from 'preact/hooks';
import { call, post } from '../api.ts';
import { when } from '../time.ts';
import { Area, Button, ErrorNote, Field, lines, Notice, Section, Select, Table, useAction, useAsync } from '../ui.tsx';

interface Key {
  id: number;
  name: string;
  mode: 'live' | 'test';
  key: string;
  allowed_origins: string[];
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const ORIGINS_HINT = 'One per line, e.g. https://shop.example.com (https; http only for localhost and 127.0.0.1)';

function NewKey({ done }: { done: (k: Key) => void }) {
  const [name, setName] = useState('');
  const [mode, setMode] = useState('live');
  const [origins, setOrigins] = useState('');
  const [run, busy, error] = useAction();
  return (
    <form
      aria-label="New publishable key"
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          done(await post<Key>('/publishable-keys', { name, mode, allowed_origins: lines(origins) }));
          setName('');
          setOrigins('');
        });
      }}
    >
      <Field label="Key name" value={name} onValue={setName} required />
      <Select
        label="Mode"
        value={mode}
        onValue={setMode}
        options={[
          ['live', 'live (pk_live_: live campaigns)'],
          ['test', 'test (pk_test_: test-mode campaigns only)'],
        ]}
      />
      <Area label="Allowed origins" value={origins} onValue={setOrigins} hint={ORIGINS_HINT} />
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Create key
      </button>
    </form>
  );
}

function EditOrigins({ k, done }: { k: Key; done: () => void }) {
  const [origins, setOrigins] = useState(k.allowed_origins.join('\n'));
  const [run, busy, error] = useAction(done);
  return (
    <form
      aria-label={`Origins of ${k.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => call('PATCH', `/publishable-keys/${k.id}`, { allowed_origins: lines(origins) }));
      }}
    >
      <Area label={`Allowed origins of ${k.name}`} value={origins} onValue={setOrigins} hint={ORIGINS_HINT} />
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Save origins
      </button>
    </form>
  );
}

/** What to paste: the script on every page, the call where the conversion happens, the pixel without JavaScript. */
function Snippet({ k }: { k: Key }) {
  // The API does not tell the tracker's public URL (PUBLIC_TRACKER_URL): the host the tracking links use.
  const [tracker, setTracker] = useState('https://track.example.net');
  const [param, setParam] = useState('click_id');
  const base = tracker.trim().replace(/\/+$/, '');
  const script = `<script src="${base}/s.js" data-key="${k.key}" data-param="${param.trim()}"></script>`;
  const conversion = "trk.conversion({ goal: 'purchase', amount: '49.90', currency: 'USD', event_id: 'order-1002' });";
  const pixel =
    `<img src="${base}/api/v1/track/pixel?key=${k.key}&click_id=CLICK_ID&goal=signup&event_id=EVENT_ID" ` +
    'width="1" height="1" alt="">';
  const [copied, setCopied] = useState('');
  return (
    <Section title={`Snippet for ${k.name}`}>
      <div class="filters">
        <Field label="Tracker URL" value={tracker} onValue={setTracker} hint="The host your tracking links use" />
        <Field
          label="Click-id parameter"
          value={param}
          onValue={setParam}
          hint="The landing URL's parameter that carries {click_id}"
        />
      </div>
      <p>On every page of the site (at least the landing page and the one that converts):</p>
      <pre class="snippet" data-testid="snippet">
        {script}
      </pre>
      <Button
        label={`Copy the script tag of ${k.name}`}
        onClick={() =>
          navigator.clipboard.writeText(script).then(
            () => setCopied('Copied'),
            () => setCopied('Copy failed: select the snippet and copy it'),
          )
        }
      >
        Copy
      </Button>
      <Notice>{copied}</Notice>
      <p>Where the conversion happens:</p>
      <pre class="snippet">{conversion}</pre>
      <p>Without JavaScript (the page's server fills in the click id):</p>
      <pre class="snippet">{pixel}</pre>
    </Section>
  );
}

export function PublishableKeys() {
  const list = useAsync(() => call<Key[]>('GET', '/publishable-keys?per_page=100'));
  const [shown, setShown] = useState<number>();
  const [editing, setEditing] = useState<number>();
  const [run, busy, error] = useAction(list.reload);
  const keys = list.data?.data ?? [];
  const live = keys.filter((k) => !k.revoked_at);
  const snippetOf = live.find((k) => k.id === shown) ?? live[0];
  const edited = live.find((k) => k.id === editing);
  return (
    <>
      <p>
        A publishable key lets your pages report conversions from the visitor's browser, only from the origins it lists;
        everything it sends is pending until you approve it.
      </p>
      <ErrorNote error={list.error ?? error} />
      <Table
        caption="Publishable keys"
        cols={['Name', 'Key', 'Mode', 'Allowed origins', 'Last used', 'Revoked', 'Change']}
        rows={keys.map((k) => [
          k.name,
          <code key="k">{k.key}</code>,
          k.mode,
          k.allowed_origins.join(', '),
          when(k.last_used_at),
          when(k.revoked_at),
          k.revoked_at ? (
            ''
          ) : (
            <span class="actions">
              <Button label={`Snippet for ${k.name}`} onClick={() => setShown(k.id)}>
                Snippet
              </Button>
              <Button
                label={`Edit origins of ${k.name}`}
                onClick={() => setEditing(editing === k.id ? undefined : k.id)}
              >
                {editing === k.id ? 'Close' : 'Edit origins'}
              </Button>
              <Button
                kind="danger"
                disabled={busy}
                label={`Revoke ${k.name}`}
                onClick={() => run(() => call('DELETE', `/publishable-keys/${k.id}`))}
              >
                Revoke
              </Button>
            </span>
          ),
        ])}
        empty="No publishable key yet."
      />
      {edited && (
        <EditOrigins
          key={edited.id}
          k={edited}
          done={() => {
            setEditing(undefined);
            list.reload();
          }}
        />
      )}
      {snippetOf && <Snippet key={snippetOf.id} k={snippetOf} />}
      <Section title="New publishable key">
        <NewKey
          done={(k) => {
            setShown(k.id);
            list.reload();
          }}
        />
      </Section>
    </>
  );
}
