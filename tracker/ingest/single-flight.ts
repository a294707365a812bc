/**
 * Joins concurrent loads of one key: the first caller starts `load(key)` and records its promise in `loading`;
 * callers until it settles get the same promise, so a burst of misses asks Postgres once. The entry is removed when
 * the promise settles (fulfilled or rejected), so a failed load is retried by the next caller.
 */
export function singleFlight<K, V>(loading: Map<K, Promise<V>>, key: K, load: (key: K) => Promise<V>): Promise<V> {
  let p = loading.get(key);
  if (!p) {
    p = load(key);
    loading.set(key, p);
    const done = () => loading.delete(key);
    p.then(done, done);
  }
  return p;
}
