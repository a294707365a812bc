/**
 * The ceiling: a bare uWebSockets.js app answering every `GET /c/:code` with the same 302.
 * Started by the bench as a child process (`node --import tsx bench/ceiling-server.ts`), so its CPU is
 * measured apart from the load generator. Env: `TRACKER_PORT` (0 = any free port), `BIND_HOST`.
 * Sends `{ type: 'ready', port }` over IPC once listening (same handshake as tracker/main.ts).
 */
import uWS from 'uWebSockets.js';
import { loadConfig } from '../infra/index.ts';

const config = loadConfig(process.env);
const LOCATION = 'https://advertiser.example/landing?click_id=00000000-0000-7000-8000-000000000000';

const app = uWS.App();
app.get('/c/:code', (res) => {
  res.cork(() => {
    res.writeStatus('302 Found').writeHeader('Location', LOCATION).writeHeader('Cache-Control', 'no-store').end();
  });
});
app.any('/*', (res) => {
  res.cork(() => {
    res.writeStatus('404 Not Found').end();
  });
});

let listenSocket: uWS.us_listen_socket | false = false;
app.listen(config.BIND_HOST, config.TRACKER_PORT, (socket) => {
  if (!socket) {
    process.exitCode = 1;
    if (process.connected) process.disconnect();
    return;
  }
  listenSocket = socket;
  process.send?.({ type: 'ready', port: uWS.us_socket_local_port(socket) });
});

function stop(): void {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  listenSocket = false;
  if (process.connected) process.disconnect();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
