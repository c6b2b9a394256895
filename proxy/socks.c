/* socks.c — the SOCKS5 front end (RFC 1928 CONNECT, RFC 1929
 * username/password). Once the client named its destination, the session
 * goes on exactly as after an HTTP CONNECT: peek, then TLS, HTTP or raw.
 *
 * The greeting is answered at once and the request with "succeeded" before
 * the upstream is reached, as interception requires: the client's first
 * bytes (a ClientHello) decide how we connect. Upstream failures are
 * reported inside the tunnel (502), as in explicit mode. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "filters/log.h"
#include "proxy/proxyauth.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define SOCKS_VERSION 5
#define SOCKS_MAX_MSG 600 /* greeting <= 257, auth <= 513, request <= 262 */

enum { STEP_GREETING = 0, STEP_AUTH, STEP_REQUEST };

/* A bounded reader: nothing here reads past `len`. */
typedef struct cursor {
  const uint8_t *p;
  size_t len, pos;
} cursor_t;

static int take_u8(cursor_t *c, uint8_t *v) {
  if (c->pos + 1 > c->len) return -1;
  *v = c->p[c->pos++];
  return 0;
}

static int take_bytes(cursor_t *c, size_t n, const uint8_t **out) {
  if (n > c->len - c->pos) return -1;
  *out = c->p + c->pos;
  c->pos += n;
  return 0;
}

static void reply(px_session_t *s, uint8_t code) {
  /* VER REP RSV ATYP=IPv4 BND.ADDR=0.0.0.0 BND.PORT=0 */
  const uint8_t msg[10] = {SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0};
  px_send_client(s, msg, sizeof(msg));
}

static void refuse(px_session_t *s, const char *why) {
  flt_log_info("session %llu: %s: SOCKS5: %s", (unsigned long long)s->conn.id, s->conn.client,
               why);
  flt_emit_error(&s->w->shared->chain, &s->conn, why);
  s->close_when_flushed = 1;
  px_update_reading(s);
  px_maybe_finish(s);
}

/* Returns the bytes consumed, 0 when the message is incomplete, -1 when it
 * was refused. */
static int on_greeting(px_session_t *s, cursor_t *c) {
  uint8_t ver, n;
  const uint8_t *methods;
  if (take_u8(c, &ver) || take_u8(c, &n) || take_bytes(c, n, &methods)) return 0;
  if (ver != SOCKS_VERSION) {
    refuse(s, "not a SOCKS5 client (version byte is not 5)");
    return -1;
  }
  uint8_t want = s->w->shared->cfg->proxyauth ? 2 : 0; /* user/pass or none */
  for (size_t i = 0; i < n; i++) {
    if (methods[i] == want) {
      const uint8_t ok[2] = {SOCKS_VERSION, want};
      px_send_client(s, ok, 2);
      s->socks_step = want == 2 ? STEP_AUTH : STEP_REQUEST;
      return (int)c->pos;
    }
  }
  const uint8_t no[2] = {SOCKS_VERSION, 0xff};
  px_send_client(s, no, 2);
  refuse(s, want == 2 ? "client offers no username/password authentication (--proxyauth is set)"
                      : "client offers no method without authentication");
  return -1;
}

static int on_auth(px_session_t *s, cursor_t *c) {
  uint8_t ver, ulen, plen;
  const uint8_t *user, *pass;
  if (take_u8(c, &ver) || take_u8(c, &ulen) || take_bytes(c, ulen, &user) || take_u8(c, &plen) ||
      take_bytes(c, plen, &pass))
    return 0;
  int ok = px_proxyauth_pair_ok(s->w->shared->cfg->proxyauth, user, ulen, pass, plen) && ver == 1;
  const uint8_t answer[2] = {1, ok ? 0 : 1};
  px_send_client(s, answer, 2);
  if (!ok) {
    refuse(s, "wrong username or password");
    return -1;
  }
  s->socks_step = STEP_REQUEST;
  return (int)c->pos;
}

static int on_request(px_session_t *s, cursor_t *c) {
  uint8_t ver, cmd, rsv, atyp, n;
  const uint8_t *addr, *port;
  char host[256];
  if (take_u8(c, &ver) || take_u8(c, &cmd) || take_u8(c, &rsv) || take_u8(c, &atyp)) return 0;
  switch (atyp) {
    case 1:
      if (take_bytes(c, 4, &addr)) return 0;
      inet_ntop(AF_INET, addr, host, sizeof(host));
      break;
    case 4:
      if (take_bytes(c, 16, &addr)) return 0;
      inet_ntop(AF_INET6, addr, host, sizeof(host));
      break;
    case 3:
      if (take_u8(c, &n) || take_bytes(c, n, &addr)) return 0;
      if (n == 0 || memchr(addr, 0, n)) {
        reply(s, 8);
        refuse(s, "empty or invalid domain name");
        return -1;
      }
      memcpy(host, addr, n);
      host[n] = '\0';
      break;
    default:
      reply(s, 8); /* address type not supported */
      refuse(s, "unsupported address type");
      return -1;
  }
  if (take_bytes(c, 2, &port)) return 0;
  if (ver != SOCKS_VERSION || cmd != 1) {
    reply(s, 7); /* command not supported: only CONNECT */
    refuse(s, cmd == 2 ? "BIND is not supported" : cmd == 3 ? "UDP ASSOCIATE is not supported"
                                                            : "unknown command");
    return -1;
  }
  uint16_t p = (uint16_t)((port[0] << 8) | port[1]);
  if (p == 0) {
    reply(s, 1);
    refuse(s, "port 0");
    return -1;
  }
  px_session_set_target(s, host, p);
  reply(s, 0);
  px_session_set_state(s, PX_S_PEEK);
  return (int)c->pos;
}

void px_socks_input(px_session_t *s, const char *data, size_t len) {
  if (flt_strbuf_append(&s->peek, data, len) != 0 || s->peek.len > SOCKS_MAX_MSG) {
    refuse(s, "message too long");
    return;
  }
  while (s->state == PX_S_SOCKS && s->peek.len > 0) {
    cursor_t c = {(const uint8_t *)s->peek.data, s->peek.len, 0};
    int used = s->socks_step == STEP_GREETING ? on_greeting(s, &c)
               : s->socks_step == STEP_AUTH   ? on_auth(s, &c)
                                              : on_request(s, &c);
    if (used <= 0) return; /* incomplete, or refused */
    /* Whatever follows the request is the tunnel's first bytes. */
    size_t rest = s->peek.len - (size_t)used;
    char tail[SOCKS_MAX_MSG];
    memcpy(tail, s->peek.data + used, rest);
    flt_strbuf_reset(&s->peek);
    if (s->state == PX_S_PEEK) {
      if (rest > 0) px_session_peek(s, tail, rest);
      return;
    }
    flt_strbuf_append(&s->peek, tail, rest);
  }
}
