/** A value views subscribe to: `set` notifies, `use()` re-renders the caller on each change. */
import { useEffect, useState } from 'preact/hooks';

export interface Store<T> {
  get(): T;
  set(next: T): void;
  /** The value, re-rendering the calling component whenever it changes. */
  use(): T;
}

export function createStore<T>(initial: T): Store<T> {
  let value = initial;
  const listeners = new Set<() => void>();
  return {
    get: () => value,
    set(next) {
      value = next;
      for (const l of listeners) l();
    },
    use() {
      const [, force] = useState(0);
      const rendered = value;
      useEffect(() => {
        const l = () => force((n) => n + 1);
        listeners.add(l);
        // Effects run after paint: a change between the render and now would otherwise be missed.
        if (value !== rendered) l();
        return () => {
          listeners.delete(l);
        };
      }, [rendered]);
      return value;
    },
  };
}
