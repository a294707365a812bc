/** Hash routing (`#/reports`): the server serves one page, so every view is a fragment of it. */
import { useEffect, useState } from 'preact/hooks';

/** The current route, without `#/` (e.g. `reports`, `campaigns/12`). */
export function useRoute(): string {
  const [route, setRoute] = useState(current());
  useEffect(() => {
    const l = () => setRoute(current());
    window.addEventListener('hashchange', l);
    return () => window.removeEventListener('hashchange', l);
  }, []);
  return route;
}

function current(): string {
  return location.hash.replace(/^#\/?/, '');
}

/** Goes to a route. */
export function go(route: string): void {
  location.hash = `#/${route}`;
}
