/** Postbacks (to be filled in). */
export function Postbacks() {
  return <p>Not yet.</p>;
}
