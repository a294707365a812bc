/** Wallet (to be filled in). */
export function Wallet() {
  return <p>Not yet.</p>;
}
