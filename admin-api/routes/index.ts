import type { Route } from '../http.ts';
import { analyticsRoutes } from './analytics.ts';
import { approvedHostRoutes } from './approved-hosts.ts';
import { auditRoutes } from './audit.ts';
import { authRoutes } from './auth.ts';
import { campaignRoutes } from './campaigns.ts';
import { conversionRoutes } from './conversions.ts';
import { eventRoutes } from './events.ts';
import { exportRoutes } from './exports.ts';
import { landingPageRoutes } from './landing-pages.ts';
import { linkRoutes } from './links.ts';
import { postbackAllowlistRoutes } from './postback-allowlist.ts';
import { postbackRoutes } from './postbacks.ts';
import { publishableKeyRoutes } from './publishable-keys.ts';
import { reportRoutes } from './reports.ts';
import { rewardRoutes } from './rewards.ts';
import { tokenRoutes } from './tokens.ts';
import { userRoutes } from './users.ts';
import { walletRoutes } from './wallet.ts';
import { webhookRoutes } from './webhooks.ts';
import { websiteRoutes } from './websites.ts';

/** Every route of the API, in registration order (also the OpenAPI source and the authz matrix). */
export function allRoutes(): Route<unknown, unknown>[] {
  return [
    ...authRoutes(),
    ...websiteRoutes(),
    ...approvedHostRoutes(),
    ...campaignRoutes(),
    ...landingPageRoutes(),
    ...linkRoutes(),
    ...tokenRoutes(),
    ...publishableKeyRoutes(),
    ...postbackAllowlistRoutes(),
    ...conversionRoutes(),
    ...reportRoutes(),
    ...exportRoutes(),
    ...eventRoutes(),
    ...postbackRoutes(),
    ...webhookRoutes(),
    ...walletRoutes(),
    ...rewardRoutes(),
    ...analyticsRoutes(),
    ...auditRoutes(),
    ...userRoutes(),
  ] as Route<unknown, unknown>[];
}
