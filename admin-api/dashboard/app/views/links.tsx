/** The affiliate's tracking links: copy, a QR code of each, and new links with default sub-IDs or a custom code. */

import { useEffect, useState } from 'preact/hooks';
import QRCode from 'qrcode';
import { call, get, post } from '../api.ts';
import { Button, ErrorNote, Field, Notice, Section, Select, Table, useAction, useAsync } from '../ui.tsx';
import type { Campaign } from './campaign-form.tsx';

interface Link {
  id: number;
  code: string;
  campaign_id: number;
  sub1: string | null;
  status: string;
  url: string;
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
        cols={['Link', 'Campaign', 'sub1', 'Status', 'Copy', 'QR code']}
        rows={rows.map((l) => [
          <code key="u" data-testid="link-url">
            {l.url}
          </code>,
          `#${l.campaign_id}`,
          l.sub1 ?? '',
          l.status,
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
