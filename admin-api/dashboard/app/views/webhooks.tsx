/** Webhooks (to be filled in). */
export function Webhooks() {
  return <p>Not yet.</p>;
}
