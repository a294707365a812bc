/** Tokens (to be filled in). */
export function Tokens() {
  return <p>Not yet.</p>;
}
