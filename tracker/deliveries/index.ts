/**
 * Outbound deliveries: affiliate postbacks and Standard-Webhooks-signed webhooks, a durable
 * Postgres-backed queue with Svix-like retries, attempt logs, replay, SSRF protection.
 */
export { createDeliveries, type Deliveries, type DeliveriesOptions } from './engine.ts';
export { POSTBACK_MACROS, redactUrl } from './macros.ts';
export { createPostbackSchema, type Postback, updatePostbackSchema } from './postbacks.ts';
export {
  DELIVERY_ROUTES,
  type DeliveryRoute,
  type PageMeta,
  type RouteRequest,
  type RouteResult,
  runRoute,
} from './routes.ts';
export { decryptSecret, encryptSecret, generateWebhookSecret, loadDeliverySecretKey } from './secrets.ts';
export { HostAllowlist, isBlockedAddress } from './ssrf.ts';
export {
  type Actor,
  type AttemptView,
  type DeliveryView,
  type Page,
  type PageQuery,
  POSTBACK_EVENTS,
  type PostbackEvent,
  WEBHOOK_EVENTS,
  type WebhookEvent,
} from './types.ts';
export {
  createWebhookSchema,
  updateWebhookSchema,
  type WebhookEndpoint,
  webhookPayload,
  webhookTargetSchema,
} from './webhooks.ts';
