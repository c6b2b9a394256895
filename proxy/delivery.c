/* delivery.c — whether the client is still there.
 *
 * An HTTP/1 client may half-close after its request and still read the
 * answer, so its FIN alone says nothing. What does: a reset, a failed
 * write, or how its kernel treats the answer sent after the FIN — a socket
 * that is still open for reading acknowledges the bytes; a closed one
 * answers them with a reset (RFC 9293 §3.10.7.4, Linux "abort on data").
 * The verdict ends up in flt_conn_t (client_eof_us, client_gone_us), where
 * the views read it. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "proxy/session.h"

void px_delivery_client_left(px_session_t *s) {
  if (s->conn.client_eof_us == 0) s->conn.client_eof_us = flt_now_us();
}

/* Gone since its EOF when that came first: it left then. */
void px_delivery_client_gone(px_session_t *s) {
  if (s->conn.client_gone_us) return;
  s->conn.client_gone_us = s->conn.client_eof_us ? s->conn.client_eof_us : flt_now_us();
}

/* 1: everything written to the client was acknowledged; 0: the connection
 * was reset; -1: bytes still unacknowledged. A socket that cannot tell
 * (not TCP) counts as 1. */
static int client_socket_verdict(px_session_t *s) {
  uv_os_fd_t fd;
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  int unacked = 0;

  if (uv_fileno((uv_handle_t *)&s->client.tcp, &fd) != 0) return 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 1;
  if (ti.tcpi_state == TCP_CLOSE) return 0;
  if (ioctl(fd, TIOCOUTQ, &unacked) != 0) return 1; /* sent or not, unacknowledged */
  return unacked == 0 ? 1 : -1;
}

int px_delivery_pending(px_session_t *s) {
  if (!s->answered_after_eof || s->conn.client_gone_us) return 0;
  int verdict = client_socket_verdict(s);
  if (verdict == 0) px_delivery_client_gone(s);
  if (verdict >= 0) return 0;
  uint64_t now = px_session_now(s);
  if (s->delivery_until == 0) s->delivery_until = now + PX_DELIVERY_WAIT_MS;
  if (now >= s->delivery_until) return 0; /* not known: taken */
  px_set_deadline(s, PX_DELIVERY_POLL_MS, PX_T_DELIVERY);
  return 1;
}

void px_delivery_check_gone(px_session_t *s) {
  if (s->conn.client_eof_us && !s->conn.client_gone_us && client_socket_verdict(s) == 0)
    px_delivery_client_gone(s);
}
