/** Conversions (to be filled in). */
export function Conversions() {
  return <p>Not yet.</p>;
}
