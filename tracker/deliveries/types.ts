import { z } from 'zod';
import { type AppError, type LiveEventType, parseWith, validationError } from '../../infra/index.ts';

/** The owner a call acts for (user id + role): every repository call checks ownership against it (admins see everything). */
export interface Actor {
  id: number;
  role: 'admin' | 'advertiser' | 'affiliate';
}

/** 1-based page; per_page at most 100. */
export interface PageQuery {
  /** Numbers, or their decimal strings straight from a query string. */
  page?: number | string;
  per_page?: number | string;
}

/** A page of items plus the total count, for the envelope's `meta`. */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  per_page: number;
}

/** States of a delivery: queued or retrying, delivered, given up. */
export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Events an affiliate postback can fire on. */
export const POSTBACK_EVENTS = ['conversion.created', 'conversion.approved', 'conversion.rejected'] as const;
export type PostbackEvent = (typeof POSTBACK_EVENTS)[number];

/** Events a webhook endpoint can subscribe to. */
export const WEBHOOK_EVENTS = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'partnership.created',
  'website.approved',
  'website.rejected',
  'campaign.status_changed',
  'wallet.updated',
  'payout.paid',
  'fraud.alert',
  'cap.threshold_reached',
  'lead_signup',
  'promoter_signed_up',
  'reward_created',
  'fulfilment_pending',
] as const satisfies readonly LiveEventType[];
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export const pageQuerySchema = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  per_page: z.coerce.number().int().min(1).max(100).default(20),
});

/**
 * Parses input with a zod schema (`undefined` is read as `{}`).
 * @throws AppError VALIDATION_ERROR with FieldErrors details.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  return parseWith(schema, input ?? {});
}

/** A VALIDATION_ERROR about one field, in the same details shape as {@link parseInput}. */
export function fieldError(path: string, message: string): AppError {
  return validationError({ [path]: message });
}

/** One logged attempt, as the API shows it. */
export interface AttemptView {
  attempt: number;
  started_at: string;
  request_method: string;
  /** Redacted URL. */
  request_url: string;
  request_body_sha256: string | null;
  status_code: number | null;
  response_body: string | null;
  latency_ms: number;
  error: string | null;
  success: boolean;
}

/** One delivery (an event for one endpoint) with its attempts, newest attempt last. */
export interface DeliveryView {
  id: number;
  kind: 'postback' | 'webhook';
  endpoint_id: number;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  completed_at: string | null;
  attempt_log: AttemptView[];
}
