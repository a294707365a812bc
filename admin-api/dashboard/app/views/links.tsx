/**
 * The affiliate's tracking links: copy, a QR code of each, the landing page a link pins (or the campaign's rotation),
 * and new links with default sub-IDs or a custom code.
 */

import { useEffect, useState } from 'preact/hooks';
import QRCode from 'qrcode';
import { call, get, post } from '../api.ts';
import { Button, ErrorNote, Field, Notice, Section, Select, Table, useAction, useAsync } from '../ui.tsx';
import type { Campaign } from './campaign-form.tsx';
import type { LandingPage } from './landing-pages.tsx';

interface Link {
  id: number;
  code: string;
  campaign_id: number;
  sub1: string | null;
  status: string;
  url: string;
  /** The pinned landing page; null = the campaign's rotation. */
  landing_page_id: number | null;
}

function Qr({ url }: { url: string }) {
  const [src, setSrc] = useState('');
  useEffect(() => {
    QRCode.toDataURL(url, { margin: 1, width: 160 }).then(setSrc, () => setSrc(''));
  }, [url]);
  return src ? <img src={src} width={160} height={160} alt={`QR code of ${url}`} data-testid="qr" /> : null;
}

function Copy({ url }: { url: string }) {
  const [copied, setCopied] = useState('');
  return (
    <>
      <Button
        label={`Copy ${url}`}
        onClick={() =>
          navigator.clipboard.writeText(url).then(
            () => setCopied('Copied'),
            () => setCopied('Copy failed: select the link and copy it'),
          )
        }
      >
        Copy
      </Button>
      <Notice>{copied}</Notice>
    </>
  );
}

/** The landing page every click of the link gets (PATCH /affiliate/links/:id), among its campaign's active ones. */
function Pin({ link, done }: { link: Link; done: () => void }) {
  const pages = useAsync(
    () => get<LandingPage[]>(`/campaigns/${link.campaign_id}/landing-pages?status=active&per_page=100`),
    [link.campaign_id],
  );
  const [note, setNote] = useState('');
  const [run, busy, error] = useAction(done);
  const active = pages.data ?? [];
  if (active.length === 0 && link.landing_page_id === null) return <span>rotation</span>;
  const options: Array<[string, string]> = [
    ['', "Campaign's rotation"],
    ...active.map((p): [string, string] => [String(p.id), `${p.name} (#${p.id})`]),
  ];
  // A pinned page that was archived since still shows, so the select tells the truth (clicks rotate meanwhile).
  if (link.landing_page_id !== null && !active.some((p) => p.id === link.landing_page_id))
    options.push([String(link.landing_page_id), `#${link.landing_page_id} (archived: rotates)`]);
  return (
    <>
      <Select
        label={`Landing page of ${link.url}`}
        value={link.landing_page_id === null ? '' : String(link.landing_page_id)}
        onValue={(v) =>
          void run(async () => {
            await call('PATCH', `/affiliate/links/${link.id}`, { landing_page_id: v === '' ? null : Number(v) });
            setNote(v === '' ? 'Rotating.' : 'Pinned.');
          })
        }
        options={options}
      />
      {busy ? null : <Notice>{note}</Notice>}
      <ErrorNote error={pages.error ?? error} />
    </>
  );
}

function NewLink({ done }: { done: () => void }) {
  const campaigns = useAsync(() => get<Campaign[]>('/campaigns?per_page=100'));
  const joined = (campaigns.data ?? []).filter((c) => c.membership === 'approved');
  const [campaignId, setCampaignId] = useState('');
  const [sub1, setSub1] = useState('');
  const [code, setCode] = useState('');
  const [run, busy, error] = useAction(done);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void run(() =>
          post('/affiliate/links', {
            campaign_id: Number(campaignId || joined[0]?.id),
            ...(sub1 ? { sub1 } : {}),
            ...(code ? { code } : {}),
          }),
        );
      }}
      aria-label="New link"
    >
      <Select
        label="Campaign"
        value={campaignId || String(joined[0]?.id ?? '')}
        onValue={setCampaignId}
        options={joined.map((c): [string, string] => [String(c.id), c.name])}
      />
      <Field label="Default sub1 (optional)" value={sub1} onValue={setSub1} />
      <Field label="Custom code (optional)" value={code} onValue={setCode} hint="3–64 of A–Z a–z 0–9 _ -" />
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy || joined.length === 0}>
        Create link
      </button>
    </form>
  );
}

export function Links() {
  const links = useAsync(() => call<Link[]>('GET', '/affiliate/links?per_page=100'));
  const rows = links.data?.data ?? [];
  return (
    <>
      <ErrorNote error={links.error} />
      <Table
        caption="Your tracking links"
        cols={['Link', 'Campaign', 'sub1', 'Status', 'Landing page', 'Copy', 'QR code']}
        rows={rows.map((l) => [
          <code key="u" data-testid="link-url">
            {l.url}
          </code>,
          `#${l.campaign_id}`,
          l.sub1 ?? '',
          l.status,
          <Pin key="p" link={l} done={links.reload} />,
          <Copy key="c" url={l.url} />,
          <Qr key="q" url={l.url} />,
        ])}
        empty="No links yet: join a campaign first."
      />
      <Section title="New link">
        <NewLink done={links.reload} />
      </Section>
    </>
  );
}
