/**
 * A campaign's recurring-commission terms (README "Leads and recurring commissions"): what share of each renewal the
 * affiliate is paid, and for how many months after the customer's first conversion.
 */
import { z } from 'zod';

/** The recurring fields of campaign create and PATCH (migration 00019). */
export const recurringFields = {
  /** Share of each renewal's amount paid to the affiliate, basis points (0..10000); null = renewals are not paid. */
  recurring_percent_bp: z.number().int().min(0).max(10_000).nullable().optional(),
  /** Calendar months after the customer's first sale or lead that renewals are paid; null = for ever. */
  recurring_months: z.number().int().min(1).max(1200).nullable().optional(),
};

/** The keys of {@link recurringFields}, as create and PATCH copy them into the row. */
export const RECURRING_KEYS = ['recurring_percent_bp', 'recurring_months'] as const;
