/** The signed-in frame: skip link, header (live counter, user, sign-out), role-based navigation and the view. */
import type { FunctionComponent } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { User } from './api.ts';
import { useLive } from './live.ts';
import { useRoute } from './router.ts';
import { logout } from './session.ts';
import { Account } from './views/account.tsx';
import { AdminAlerts, AdminWithdrawals } from './views/admin.tsx';
import { AuditLog, MyActivity } from './views/audit.tsx';
import { Campaigns } from './views/campaigns.tsx';
import { Conversions } from './views/conversions.tsx';
import { Links } from './views/links.tsx';
import { Overview } from './views/overview.tsx';
import { Postbacks } from './views/postbacks.tsx';
import { PublishableKeys } from './views/publishable-keys.tsx';
import { Reports } from './views/reports.tsx';
import { Tokens } from './views/tokens.tsx';
import { Users } from './views/users.tsx';
import { Wallet } from './views/wallet.tsx';
import { Webhooks } from './views/webhooks.tsx';
import { Websites } from './views/websites.tsx';

type Role = User['role'];
interface Page {
  path: string;
  title: string;
  roles: Role[];
  view: FunctionComponent<{ user: User; sub: string }>;
}

const ALL: Role[] = ['admin', 'advertiser', 'affiliate', 'analyst'];

/** Every page, in navigation order, with the roles that see it. */
export const PAGES: Page[] = [
  { path: 'overview', title: 'Overview', roles: ALL, view: Overview },
  { path: 'reports', title: 'Reports', roles: ALL, view: Reports },
  { path: 'campaigns', title: 'Campaigns', roles: ['admin', 'advertiser', 'affiliate'], view: Campaigns },
  { path: 'links', title: 'Links', roles: ['affiliate'], view: Links },
  { path: 'websites', title: 'Websites', roles: ['admin', 'advertiser'], view: Websites },
  { path: 'conversions', title: 'Conversions', roles: ['admin', 'advertiser', 'affiliate'], view: Conversions },
  { path: 'wallet', title: 'Wallet', roles: ['advertiser', 'affiliate'], view: Wallet },
  { path: 'users', title: 'Users', roles: ['admin'], view: Users },
  { path: 'withdrawals', title: 'Withdrawals', roles: ['admin'], view: AdminWithdrawals },
  { path: 'tokens', title: 'Postback tokens', roles: ['advertiser'], view: Tokens },
  { path: 'keys', title: 'Publishable keys', roles: ['advertiser'], view: PublishableKeys },
  { path: 'postbacks', title: 'Postbacks', roles: ['affiliate'], view: Postbacks },
  { path: 'webhooks', title: 'Webhooks', roles: ['admin', 'advertiser', 'affiliate'], view: Webhooks },
  { path: 'alerts', title: 'Deliveries & alerts', roles: ['admin'], view: AdminAlerts },
  { path: 'audit', title: 'Audit log', roles: ['admin'], view: AuditLog },
  { path: 'activity', title: 'My activity', roles: ALL, view: MyActivity },
  { path: 'account', title: 'Account', roles: ALL, view: Account },
];

function LiveCounter() {
  const live = useLive();
  const n = (v: number | undefined) => (v === undefined ? '…' : v.toLocaleString());
  return (
    <div class="counter" role="status" aria-label="Today so far">
      <span>
        Today: <strong data-testid="live-clicks">{n(live.clicks)}</strong> clicks,{' '}
        <strong data-testid="live-conversions">{n(live.conversions)}</strong> conversions
      </span>
      <span class={live.connected ? 'dot on' : 'dot'} title={live.connected ? 'live' : 'offline'}>
        {live.connected ? 'live' : 'offline'}
      </span>
    </div>
  );
}

export function Shell({ user }: { user: User }) {
  const route = useRoute();
  const pages = PAGES.filter((p) => p.roles.includes(user.role));
  const [head, ...rest] = route.split('/');
  const page = pages.find((p) => p.path === head) ?? pages[0]!;
  const heading = useRef<HTMLHeadingElement>(null);
  // Moving focus to the new page's heading tells keyboard and screen-reader users the view changed.
  useEffect(() => {
    if (route) heading.current?.focus();
  }, [page.path]);
  const View = page.view;
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <span class="brand">Affiliate tracker</span>
        <LiveCounter />
        <span class="who">
          {user.name} <span class="role">({user.role})</span>
        </span>
        <button type="button" onClick={() => void logout()}>
          Sign out
        </button>
      </header>
      <nav aria-label="Main">
        <ul>
          {pages.map((p) => (
            <li key={p.path}>
              <a href={`#/${p.path}`} aria-current={p === page ? 'page' : undefined}>
                {p.title}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <h1 ref={heading} tabIndex={-1}>
          {page.title}
        </h1>
        <View user={user} sub={rest.join('/')} />
      </main>
    </div>
  );
}
