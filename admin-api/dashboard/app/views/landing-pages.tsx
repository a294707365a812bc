/**
 * A campaign's landing pages (README "Landing pages and split tests"), for its owner and admins: the split test's
 * pages with their weights and share of the rotation, add one, change its name, URL or weight, archive it. An
 * archived campaign's pages are read-only.
 */
import { useState } from 'preact/hooks';
import { call, get, post } from '../api.ts';
import { Button, ErrorNote, Field, Notice, Section, Table, useAction, useAsync } from '../ui.tsx';
import type { Campaign } from './campaign-form.tsx';

/** A landing page as the API answers it. */
export interface LandingPage {
  id: number;
  campaign_id: number;
  name: string;
  url: string;
  /** 0..10000; the page's share is weight / the sum of the campaign's active weights (0 = kept, never served). */
  weight: number;
  status: 'active' | 'archived';
}

/** A weight typed by a person: a whole number 0..10000. @throws Error otherwise */
function weightOf(text: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) > 10_000) throw new Error('Weight: a whole number from 0 to 10000');
  return Number(t);
}

function PageForm({ campaign, page, done }: { campaign: Campaign; page?: LandingPage; done: () => void }) {
  const [name, setName] = useState(page?.name ?? '');
  const [url, setUrl] = useState(page?.url ?? '');
  const [weight, setWeight] = useState(String(page?.weight ?? 1));
  const [run, busy, error] = useAction(done);
  const what = page ? `landing page ${page.name}` : 'new landing page';
  return (
    <form
      class="filters"
      aria-label={page ? `Edit ${page.name}` : 'New landing page'}
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const body = { name, url, weight: weightOf(weight) };
          if (page) await call('PATCH', `/campaigns/${campaign.id}/landing-pages/${page.id}`, body);
          else await post(`/campaigns/${campaign.id}/landing-pages`, body);
          if (!page) {
            setName('');
            setUrl('');
            setWeight('1');
          }
        });
      }}
    >
      <Field label={`Name of ${what}`} value={name} onValue={setName} required />
      <Field
        label={`URL of ${what}`}
        value={url}
        onValue={setUrl}
        required
        hint="On the campaign's website; macros as in the destination URL"
      />
      <Field label={`Weight of ${what}`} value={weight} onValue={setWeight} inputMode="numeric" hint="0–10000" />
      <button type="submit" class="primary" disabled={busy}>
        {page ? 'Save page' : 'Add landing page'}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

/** The landing pages section of a campaign's page. */
export function LandingPages({ campaign }: { campaign: Campaign }) {
  const list = useAsync(
    () => get<LandingPage[]>(`/campaigns/${campaign.id}/landing-pages?per_page=100`),
    [campaign.id],
  );
  const [editing, setEditing] = useState<number>();
  const [note, setNote] = useState('');
  const [run, busy, error] = useAction(list.reload);
  const pages = list.data ?? [];
  const total = pages.filter((p) => p.status === 'active').reduce((a, p) => a + p.weight, 0);
  const open = campaign.status !== 'archived';
  const edited = pages.find((p) => p.id === editing);
  return (
    <Section title="Landing pages">
      <p class="hint">
        Each click goes to an active page with probability weight / sum of weights; without one, to the destination URL.
      </p>
      <ErrorNote error={list.error ?? error} />
      <Table
        caption={`Landing pages of ${campaign.name}`}
        cols={['Page', 'URL', 'Weight', 'Share', 'Status', 'Change']}
        rows={pages.map((p) => [
          `${p.name} (#${p.id})`,
          <span key="u" class="url">
            {p.url}
          </span>,
          p.weight,
          p.status === 'active' && total > 0 ? `${((p.weight / total) * 100).toFixed(1)} %` : '—',
          p.status,
          open && p.status === 'active' ? (
            <span class="actions">
              <Button label={`Edit ${p.name}`} onClick={() => setEditing(editing === p.id ? undefined : p.id)}>
                {editing === p.id ? 'Close' : 'Edit'}
              </Button>
              <Button
                kind="danger"
                label={`Archive ${p.name}`}
                disabled={busy}
                onClick={() =>
                  run(async () => {
                    await post(`/campaigns/${campaign.id}/landing-pages/${p.id}/archive`);
                    setNote(`${p.name} archived.`);
                  })
                }
              >
                Archive
              </Button>
            </span>
          ) : (
            ''
          ),
        ])}
        empty="No landing page: clicks go to the destination URL."
      />
      <Notice>{note}</Notice>
      {edited && (
        <PageForm
          key={edited.id}
          campaign={campaign}
          page={edited}
          done={() => {
            setEditing(undefined);
            list.reload();
          }}
        />
      )}
      {open && <PageForm campaign={campaign} done={list.reload} />}
    </Section>
  );
}
