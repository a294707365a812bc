import type postgres from 'postgres';
import type { Sql } from '../infra/index.ts';
import { type HandlerResult, offsetOf, paged } from './http.ts';

/** A piece of SQL built with the `sql` tag and not awaited, spliced into a larger query. */
export type SqlFragment = postgres.PendingQuery<postgres.Row[]>;

/** The parts of a paged list query: `select <columns> from <from> where <where> order by <orderBy>`. */
export interface PageParts {
  columns: SqlFragment;
  from: SqlFragment;
  where: SqlFragment;
  orderBy: SqlFragment;
}

/**
 * Runs one page of a list query and counts the whole list with `count(*) over ()` in the same query. A page
 * past the end has no row to carry that count, so then (and only then) a second query counts the list.
 * @returns the page's rows and the list's total.
 */
export async function queryPage<T>(
  sql: Sql,
  q: { page: number; per_page: number },
  parts: PageParts,
): Promise<{ rows: T[]; total: number }> {
  const offset = offsetOf(q);
  const rows = await sql<(T & { total: number })[]>`
    select ${parts.columns}, count(*) over ()::int8 as total from ${parts.from} where ${parts.where}
    order by ${parts.orderBy} limit ${q.per_page} offset ${offset}`;
  let total = rows[0]?.total ?? 0;
  if (rows.length === 0 && offset > 0) {
    const [c] = await sql<{ total: number }[]>`select count(*)::int8 as total from ${parts.from} where ${parts.where}`;
    total = c?.total ?? 0;
  }
  return { rows: rows.map(({ total: _t, ...r }) => r as T), total };
}

/** {@link queryPage} answered as a list result (`meta: { page, per_page, total, total_pages }`), rows mapped by `view`. */
export async function pagedQuery<T>(
  sql: Sql,
  q: { page: number; per_page: number },
  parts: PageParts,
  view: (row: T) => unknown = (row) => row,
): Promise<HandlerResult> {
  const { rows, total } = await queryPage<T>(sql, q, parts);
  return paged(rows.map(view), total, q);
}
