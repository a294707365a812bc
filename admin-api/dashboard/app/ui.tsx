/** Small shared pieces of the views: labelled fields, tables, async data, money and error display. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useId, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

/** Minor units as a decimal amount of `currency` (2 decimals unless the currency has none). */
export function money(minor: number | null | undefined, currency = 'USD'): string {
  if (minor === null || minor === undefined) return '—';
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 10 ** (digits ?? 2));
}

/** A decimal amount typed by a person ("12.50") as minor units of `currency`; NaN when it is not one. */
export function toMinor(text: string, currency = 'USD'): number {
  const digits =
    new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  if (!/^\d+(\.\d+)?$/.test(text.trim())) return Number.NaN;
  return Math.round(Number(text.trim()) * 10 ** digits);
}

/** The message of an error for a person; validation details are listed per field. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) {
    const details = err.details
      ? Object.entries(err.details)
          .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`)
          .join('; ')
      : '';
    return details ? `${err.message} (${details})` : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/** An alert box for an error (role=alert: read out at once). */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {describe(error)}
    </p>
  );
}

/** A status line read out politely. */
export function Notice({ children }: { children?: ComponentChildren }) {
  if (!children) return null;
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

/** Loads `fn()` on mount and whenever `deps` change; `reload()` loads again. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[] = []) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/**
 * Runs an action (a button's): tracks `busy` and its error, then calls `after` (usually a reload).
 * Returns `[run, busy, error]`.
 */
export function useAction(after?: () => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = useCallback(
    async (fn: () => Promise<unknown>) => {
      setBusy(true);
      setError(undefined);
      try {
        await fn();
        after?.();
      } catch (e) {
        setError(e);
      } finally {
        setBusy(false);
      }
    },
    [after],
  );
  return [run, busy, error] as const;
}

interface InputProps {
  label: string;
  value: string;
  onValue: (v: string) => void;
  hint?: string;
  type?: 'text' | 'email' | 'password' | 'url' | 'date' | 'number';
  required?: boolean;
  autoComplete?: string;
  inputMode?: 'text' | 'numeric' | 'decimal';
  autoFocus?: boolean;
  maxLength?: number;
  min?: string;
  max?: string;
  /** The id of a `<datalist>` of suggestions. */
  list?: string;
  placeholder?: string;
}

/** A text input with its label (and an optional hint tied to it with aria-describedby). */
export function Field({ label, value, onValue, hint, ...rest }: InputProps) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        value={value}
        onInput={(e) => onValue((e.target as HTMLInputElement).value)}
        aria-describedby={hint ? `${id}-hint` : undefined}
        {...(rest as Record<string, unknown>)}
      />
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

/** A multi-line text area with its label: one entry per line (see {@link lines}). */
export function Area({
  label,
  value,
  onValue,
  hint,
  rows = 3,
}: {
  label: string;
  value: string;
  onValue: (v: string) => void;
  hint?: string;
  rows?: number;
}) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <textarea
        id={id}
        rows={rows}
        value={value}
        onInput={(e) => onValue((e.target as HTMLTextAreaElement).value)}
        aria-describedby={hint ? `${id}-hint` : undefined}
      />
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

/** The non-empty lines (or comma-separated parts) of a text, trimmed. */
export function lines(text: string): string[] {
  return text
    .split(/[\n,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

/** A select with its label. */
export function Select({
  label,
  value,
  onValue,
  options,
}: {
  label: string;
  value: string;
  onValue: (v: string) => void;
  options: Array<string | [string, string]>;
}) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onValue((e.target as HTMLSelectElement).value)}>
        {options.map((o) => {
          const [v, text] = typeof o === 'string' ? [o, o] : o;
          return (
            <option key={v} value={v}>
              {text}
            </option>
          );
        })}
      </select>
    </div>
  );
}

/** A data table with a caption; `cols` name the header cells, `rows` are the cells. */
export function Table({
  caption,
  cols,
  rows,
  empty = 'Nothing yet.',
}: {
  caption: string;
  cols: string[];
  rows: ComponentChildren[][];
  empty?: string;
}) {
  return (
    <div class="table-wrap">
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {cols.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 ? (
            <tr>
              <td colSpan={cols.length}>{empty}</td>
            </tr>
          ) : (
            rows.map((r, i) => (
              <tr key={i}>
                {r.map((cell, j) => (
                  <td key={j}>{cell}</td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

/** A page section with a heading. */
export function Section({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <section aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** A button (type=button unless it submits). */
export function Button({
  children,
  onClick,
  disabled,
  kind = 'normal',
  label,
}: {
  children: ComponentChildren;
  onClick: () => void;
  disabled?: boolean;
  kind?: 'normal' | 'primary' | 'danger';
  label?: string;
}) {
  return (
    <button type="button" class={kind} onClick={onClick} disabled={disabled} aria-label={label}>
      {children}
    </button>
  );
}
