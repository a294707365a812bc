/**
 * Read-only SQL over the ClickHouse tables for analysts (`POST /api/v1/analytics/query`, issue 19).
 *
 * Layers, because `readonly = 2` alone is no guard (chDB still lets `url()` open a connection under it):
 * 1. one statement only (chDB runs every `;`-separated statement it is handed, even under EXPLAIN);
 * 2. ClickHouse's own parser (`EXPLAIN AST`) lists what the query uses: it must be a SELECT, read only the
 *    product's tables (ANALYTICS_TABLES, unqualified), use no table function, no `IN <table>`, no functions that
 *    reach outside (`file`, dictionaries, `joinGet`) and no SETTINGS clause of its own (which could lift limits);
 * 3. the query runs wrapped as `SELECT * FROM (<sql>) SETTINGS readonly = 2, <limits>, additional_table_filters`:
 *    a SETTINGS clause rather than client settings, because chDB applies client settings session-wide;
 *    the wrapper also makes FORMAT / INTO OUTFILE a syntax error; the filters (a string map) are applied by
 *    ClickHouse to every read of a table, inside UNION ALL, subqueries and joins alike.
 */
import { Readable } from 'node:stream';
import { AppError, type ClickHouseClient } from '../../infra/index.ts';

/** Tables and views an analytics query may read (ClickHouse migrations, infra/migrations/clickhouse). */
export const ANALYTICS_TABLES = ['clicks', 'conversions', 'stats_hourly'] as const;

/** Limits of one analytics query (README "Configuration", ANALYTICS_*). */
export interface AnalyticsLimits {
  /** `max_execution_time`, seconds. */
  maxExecutionS: number;
  /** `max_result_rows`. */
  maxResultRows: number;
  /** `max_memory_usage`, bytes. */
  maxMemoryBytes: number;
  /** `max_rows_to_read`. */
  maxRowsToRead: number;
}

export const DEFAULT_ANALYTICS_LIMITS: AnalyticsLimits = {
  maxExecutionS: 30,
  maxResultRows: 1_000_000,
  maxMemoryBytes: 2_000_000_000,
  maxRowsToRead: 1_000_000_000,
};

/**
 * What a query may see: rows of these advertisers plus rows of these campaigns (`network: true`: every row), less
 * the rows of `excludeCampaignIds` (the test-mode campaigns, for live callers).
 */
export interface AnalyticsScope {
  advertiserIds: number[];
  campaignIds: number[];
  network?: boolean;
  excludeCampaignIds?: number[];
}

export type AnalyticsParam = string | number | boolean;

export interface AnalyticsQuery {
  /** One SELECT; `{name:Type}` placeholders are bound from `params`. */
  sql: string;
  params: Record<string, AnalyticsParam>;
  format: 'json' | 'csv';
  /** Absent → network-wide. */
  scope?: AnalyticsScope;
}

export interface AnalyticsResult {
  /** `application/json` (envelope `{ success, meta: { columns: [{ name, type }] }, data: [[…row…]] }`) or `text/csv`. */
  contentType: string;
  /** The body, streamed as ClickHouse produces rows. */
  body: Readable;
  /** The tables the query reads (from EXPLAIN AST). */
  tables: string[];
}

export interface Analytics {
  /**
   * Checks `q` without running it. @returns the tables it reads.
   * @throws AppError QUERY_NOT_ALLOWED (details say what), QUERY_INVALID (ClickHouse cannot parse it).
   */
  check(q: Pick<AnalyticsQuery, 'sql' | 'params'>): Promise<{ tables: string[] }>;
  /**
   * Checks and runs `q` under the limits and the scope.
   * @throws AppError QUERY_NOT_ALLOWED, QUERY_INVALID, QUERY_LIMIT_EXCEEDED (details `{ limit }`).
   */
  run(q: AnalyticsQuery): Promise<AnalyticsResult>;
}

interface AstNode {
  kind: string;
  name: string;
  depth: number;
  children: AstNode[];
  parent?: AstNode;
}

/** Builds the tree of `EXPLAIN AST` lines (one node a line, depth = leading spaces). */
function astTree(lines: string[]): AstNode[] {
  const roots: AstNode[] = [];
  const stack: AstNode[] = [];
  for (const line of lines) {
    const depth = line.length - line.trimStart().length;
    const [kind = '', name = ''] = line.trim().split(/\s+/);
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1];
    const node: AstNode = { kind, name, depth, children: [], parent };
    if (parent) parent.children.push(node);
    else roots.push(node);
    stack.push(node);
  }
  return roots;
}

const IN_FUNCTIONS = new Set([
  'in',
  'notIn',
  'globalIn',
  'globalNotIn',
  'nullIn',
  'notNullIn',
  'globalNullIn',
  'globalNotNullIn',
]);

/** Scalar functions that read outside the query's tables (files, dictionaries, Join tables, server config). */
function reachesOutside(fn: string): boolean {
  const f = fn.toLowerCase();
  return (
    f === 'file' ||
    f.startsWith('dictget') ||
    f.startsWith('dicthas') ||
    f.startsWith('dictis') ||
    f.startsWith('joinget') ||
    f === 'getserversetting' ||
    f === 'getmergetreesetting'
  );
}

const notAllowed = (message: string, details: Record<string, string>): never => {
  throw new AppError('QUERY_NOT_ALLOWED', message, details);
};

/** Walks the AST; @returns the tables read. @throws AppError QUERY_NOT_ALLOWED */
function inspect(roots: AstNode[]): string[] {
  const root = roots[0];
  if (!root || roots.length !== 1) notAllowed('exactly one statement is allowed', { statement: 'multiple' });
  if (root!.kind !== 'SelectWithUnionQuery' && root!.kind !== 'SelectIntersectExceptQuery')
    notAllowed('only SELECT queries are allowed', { statement: root!.kind });
  const tables = new Set<string>();
  const allowed = new Set<string>(ANALYTICS_TABLES);
  const visit = (n: AstNode) => {
    if (n.kind === 'Set') notAllowed('a SETTINGS clause is not allowed (the limits are fixed)', { clause: 'SETTINGS' });
    if (n.kind === 'TableIdentifier') {
      if (!allowed.has(n.name))
        notAllowed(`table ${n.name} is not readable; use ${ANALYTICS_TABLES.join(', ')}`, { table: n.name });
      tables.add(n.name);
    }
    if (n.kind === 'Function') {
      if (n.parent?.kind === 'TableExpression')
        notAllowed(`table function ${n.name}() is not allowed`, { table_function: n.name });
      if (reachesOutside(n.name)) notAllowed(`function ${n.name}() is not allowed`, { function: n.name });
      if (IN_FUNCTIONS.has(n.name)) {
        const rhs = n.children[0]?.children[1];
        if (rhs?.kind === 'Identifier') notAllowed(`IN ${rhs.name}: name a subquery, not a table`, { table: rhs.name });
      }
    }
    for (const c of n.children) visit(c);
  };
  // Children of the root that are Identifiers are the FORMAT of the EXPLAIN itself (the client appends one).
  for (const c of root!.children) if (c.kind !== 'Identifier') visit(c);
  return [...tables];
}

const LIMIT_ERRORS: Record<string, keyof AnalyticsLimits> = {
  TIMEOUT_EXCEEDED: 'maxExecutionS',
  MEMORY_LIMIT_EXCEEDED: 'maxMemoryBytes',
  TOO_MANY_ROWS: 'maxRowsToRead',
  TOO_MANY_BYTES: 'maxRowsToRead',
  TOO_MANY_ROWS_OR_BYTES: 'maxResultRows',
  '159': 'maxExecutionS',
  '241': 'maxMemoryBytes',
  '158': 'maxRowsToRead',
  '307': 'maxRowsToRead',
  '396': 'maxResultRows',
};
const SETTING_OF: Record<keyof AnalyticsLimits, string> = {
  maxExecutionS: 'max_execution_time',
  maxMemoryBytes: 'max_memory_usage',
  maxRowsToRead: 'max_rows_to_read',
  maxResultRows: 'max_result_rows',
};

/** Turns a ClickHouse error into a stable API error. */
function chError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { type?: unknown; code?: unknown; message?: unknown };
  const limit = LIMIT_ERRORS[String(e.type)] ?? LIMIT_ERRORS[String(e.code)];
  if (limit) {
    const setting = SETTING_OF[limit];
    // TOO_MANY_ROWS is raised for both read and result limits; the message names the setting.
    const named = /max_result_rows|max_rows_to_read|max_execution_time|max_memory_usage/.exec(String(e.message));
    const s = named ? named[0] : setting;
    return new AppError('QUERY_LIMIT_EXCEEDED', `the query went past its ${s} limit`, { limit: s });
  }
  if (e.type !== undefined || e.code !== undefined) {
    const msg = String(e.message ?? 'query failed')
      .split('\n')[0]!
      .slice(0, 500);
    return new AppError('QUERY_INVALID', msg, { clickhouse: String(e.type ?? e.code) });
  }
  return err as AppError;
}

function positiveInts(xs: number[]): string {
  for (const x of xs) if (!Number.isSafeInteger(x) || x < 1) throw new Error(`scope id ${x} is not a positive integer`);
  return xs.join(', ');
}

/** `additional_table_filters` as ClickHouse's string map literal, one filter for every readable table. */
export function scopeFilters(scope: AnalyticsScope): string {
  const parts: string[] = [];
  if (scope.advertiserIds.length > 0) parts.push(`advertiser_id IN (${positiveInts(scope.advertiserIds)})`);
  if (scope.campaignIds.length > 0) parts.push(`campaign_id IN (${positiveInts(scope.campaignIds)})`);
  const include = scope.network ? '1' : parts.length > 0 ? parts.join(' OR ') : '0';
  const exclude = scope.excludeCampaignIds ?? [];
  const filter = exclude.length > 0 ? `(${include}) AND campaign_id NOT IN (${positiveInts(exclude)})` : include;
  return `{${ANALYTICS_TABLES.map((t) => `'${t}': '${filter}'`).join(', ')}}`;
}

function settingsClause(l: AnalyticsLimits, scope?: AnalyticsScope): string {
  for (const v of Object.values(l))
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`analytics limit ${v} is not a positive integer`);
  const s = [
    'readonly = 2',
    `max_execution_time = ${l.maxExecutionS}`,
    "timeout_overflow_mode = 'throw'",
    `max_result_rows = ${l.maxResultRows}`,
    "result_overflow_mode = 'throw'",
    `max_memory_usage = ${l.maxMemoryBytes}`,
    `max_rows_to_read = ${l.maxRowsToRead}`,
    "read_overflow_mode = 'throw'",
    // 64-bit integers as JSON strings: JSON numbers lose precision past 2^53.
    'output_format_json_quote_64bit_integers = 1',
  ];
  if (scope) s.push(`additional_table_filters = ${scopeFilters(scope)}`);
  return `SETTINGS ${s.join(', ')}`;
}

/** The SQL without trailing `;`. @throws AppError QUERY_NOT_ALLOWED when another `;` remains. */
function oneStatement(sql: string): string {
  const s = sql.trim().replace(/;\s*$/, '');
  // chDB executes every statement it is handed, EXPLAIN or not: refuse any `;` (write char(59) in a literal).
  if (s.includes(';')) notAllowed('exactly one statement is allowed (no ";")', { statement: 'multiple' });
  if (s === '') throw new AppError('QUERY_INVALID', 'the query is empty');
  return s;
}

/** Creates the analytics engine over a ClickHouse client (server or chDB); every query runs under `limits`. */
export function createAnalytics(ch: ClickHouseClient, limits: AnalyticsLimits = DEFAULT_ANALYTICS_LIMITS): Analytics {
  async function check(q: Pick<AnalyticsQuery, 'sql' | 'params'>) {
    const sql = oneStatement(q.sql);
    let lines: string[];
    try {
      const rs = await ch.query({ query: `EXPLAIN AST ${sql}`, format: 'JSONEachRow', query_params: q.params });
      // A server answers `{ explain }` objects; chDB (26) answers each line as a bare JSON string.
      lines = (await rs.json<unknown>()).map((r) =>
        typeof r === 'string' ? r : String(Object.values(r as Record<string, unknown>)[0] ?? ''),
      );
    } catch (err) {
      throw chError(err);
    }
    return { tables: inspect(astTree(lines)) };
  }
  return {
    check,
    async run(q) {
      const { tables } = await check(q);
      const sql = oneStatement(q.sql);
      const inner = `SELECT * FROM (\n${sql}\n)`;
      // Names and types from DESCRIBE (analysis only), and the rows in a format without a header: chDB (26) leaves
      // a *WithNames header of a query that then fails in its output buffer, where the next query reads it.
      let columns: { name: string; type: string }[];
      try {
        const d = await ch.query({ query: `DESCRIBE TABLE (${inner})`, format: 'JSONEachRow', query_params: q.params });
        columns = (await d.json<{ name: string; type: string }>()).map((c) => ({ name: c.name, type: c.type }));
      } catch (err) {
        throw chError(err);
      }
      const format = q.format === 'csv' ? 'CSV' : 'JSONCompactEachRow';
      let rs: Awaited<ReturnType<ClickHouseClient['query']>>;
      try {
        rs = await ch.query({ query: `${inner}\n${settingsClause(limits, q.scope)}`, format, query_params: q.params });
      } catch (err) {
        throw chError(err);
      }
      const stream = rs.stream() as AsyncIterable<Array<{ text: string }>>;
      if (q.format === 'csv') {
        const header = columns.map((c) => `"${c.name.replace(/"/g, '""')}"`).join(',');
        const body = Readable.from(
          (async function* () {
            yield `${header}\r\n`;
            for await (const rows of stream) for (const r of rows) yield `${r.text}\r\n`;
          })(),
        );
        return { contentType: 'text/csv; charset=utf-8', body, tables };
      }
      const body = Readable.from(
        (async function* () {
          yield `{"success":true,"meta":{"columns":${JSON.stringify(columns)}},"data":[`;
          let n = 0;
          for await (const rows of stream) for (const r of rows) yield `${n++ > 0 ? ',' : ''}${r.text}`;
          yield ']}';
        })(),
      );
      return { contentType: 'application/json; charset=utf-8', body, tables };
    },
  };
}
