/**
 * Outbound deliveries: affiliate postbacks and Standard-Webhooks-signed webhooks, a durable
 * Postgres-backed queue with Svix-like retries, attempt logs, replay, SSRF protection.
 * Exports only what other folders use: the engine (admin-api, infra/start.ts) and the input schemas and
 * delivery states the admin API's `/postbacks` and `/webhooks` routes validate with, and the subscribable event types
 * (README's event catalogue is tested against them).
 */
export { createDeliveries, type Deliveries } from './engine.ts';
export { createPostbackSchema, updatePostbackSchema } from './postbacks.ts';
export { DELIVERY_STATUSES, WEBHOOK_EVENTS, type WebhookEvent } from './types.ts';
export { createWebhookSchema, updateWebhookSchema, webhookTargetSchema } from './webhooks.ts';
