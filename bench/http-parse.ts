/** Just enough HTTP/1.1 response framing for the open-loop load generator (keep-alive, one at a time). */

const HEADER_END = Buffer.from('\r\n\r\n');
const CHUNK_END = Buffer.from('0\r\n\r\n');

/**
 * Length in bytes of the first complete response at the start of `buf` (-1 while incomplete) and its
 * status code. Framing by Content-Length, or by the terminating chunk for chunked bodies; a response
 * with neither has no body (a 302 from uWS or Koa always has one of them).
 */
export function completeLength(buf: Buffer): { len: number; status: number } {
  const he = buf.indexOf(HEADER_END);
  if (he < 0) return { len: -1, status: 0 };
  const head = buf.toString('latin1', 0, he);
  const status = Number(head.slice(9, 12));
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) {
    const len = he + 4 + Number(cl[1]);
    return { len: buf.length >= len ? len : -1, status };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const end = buf.indexOf(CHUNK_END, he + 4);
    return { len: end < 0 ? -1 : end + CHUNK_END.length, status };
  }
  return { len: he + 4, status };
}
