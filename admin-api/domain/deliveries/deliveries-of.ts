import { z } from 'zod';
import { AppError } from '../../../infra/index.ts';
import { DELIVERY_STATUSES, type Deliveries } from '../../../tracker/index.ts';
import { type HandlerArgs, type HandlerResult, paged, pageQuery } from '../../http.ts';
import type { Role } from '../../types.ts';

/** What the delivery operations read of a handler's arguments. */
export type Caller = Pick<HandlerArgs<unknown, unknown>, 'deps' | 'user'>;

/** The deliveries engine, or 503 SERVICE_UNAVAILABLE when the API runs without one. */
export function deliveriesOf(a: Caller): Deliveries {
  if (!a.deps.deliveries) throw new AppError('SERVICE_UNAVAILABLE', 'deliveries are not configured');
  return a.deps.deliveries;
}

/** The owner the engine checks every object against: the caller's user id and role. */
// Analysts reach no delivery route (their auth lists leave them out), so the engine never sees one.
export const owner = (a: Caller) => ({ id: a.user.user_id, role: a.user.role as Exclude<Role, 'analyst'> });

/** Query of the delivery-log lists: page, per_page and an optional delivery status. */
export const deliveryLogQuery = pageQuery.extend({ status: z.enum(DELIVERY_STATUSES).optional() });

/** A page the engine answers (its items, total, and the page and size it applied) as a list result. */
export async function enginePage(
  page: Promise<{ items: unknown[]; total: number; page: number; per_page: number }>,
): Promise<HandlerResult> {
  const p = await page;
  return paged(p.items, p.total, p);
}
