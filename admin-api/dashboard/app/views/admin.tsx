/** Admin views (to be filled in). */
export function AdminWithdrawals() {
  return <p>Not yet.</p>;
}
export function AdminAlerts() {
  return <p>Not yet.</p>;
}
