/* socks.c — the SOCKS5 front end (RFC 1928 CONNECT, RFC 1929
 * username/password). Once the client named its destination, the session
 * goes on exactly as after an HTTP CONNECT: peek, then TLS, HTTP or raw.
 *
 * The greeting is answered at once and the request with "succeeded" before
 * the upstream is reached, as interception requires: the client's first
 * bytes (a ClientHello) decide how we connect. Upstream failures are
 * reported inside the tunnel (502), as in explicit mode. The messages
 * themselves are parsed by socks5.c, which knows nothing of sessions. */
#include <string.h>

#include "filters/util/log.h"
#include "proxy/modes/proxyauth.h"
#include "proxy/session.h"
#include "proxy/modes/socks5.h"
#include "proxy/worker.h"

#define B PX_FSM_BIT

static const char *const step_names[PX_SOCKS_COUNT] = {"greeting", "auth", "request", "done",
                                                       "refused"};

/* Authentication only with --proxyauth; a refusal can come at every step. */
static const uint32_t step_allowed[PX_SOCKS_COUNT] = {
    [PX_SOCKS_GREETING] = B(PX_SOCKS_AUTH) | B(PX_SOCKS_REQUEST) | B(PX_SOCKS_REFUSED),
    [PX_SOCKS_AUTH] = B(PX_SOCKS_REQUEST) | B(PX_SOCKS_REFUSED),
    [PX_SOCKS_REQUEST] = B(PX_SOCKS_DONE) | B(PX_SOCKS_REFUSED),
    [PX_SOCKS_DONE] = 0,
    [PX_SOCKS_REFUSED] = 0,
};

const px_fsm_t px_socks_fsm = {"socks", step_names, PX_SOCKS_COUNT, step_allowed};

static void set_step(px_session_t *s, px_socks_step_t next) {
  if (s->socks_step == next || px_fsm_check(&px_socks_fsm, s->conn.id, s->socks_step, next) != 0)
    return;
  s->socks_step = next;
}

static void reply(px_session_t *s, uint8_t code) {
  /* VER REP RSV ATYP=IPv4 BND.ADDR=0.0.0.0 BND.PORT=0 */
  const uint8_t msg[10] = {PX_SOCKS5_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0};
  px_send_client(s, msg, sizeof(msg));
}

static void refuse(px_session_t *s, const char *why) {
  px_session_fail(s, FLT_LOG_INFO, "SOCKS5", why, PX_FAIL_KEEP);
  set_step(s, PX_SOCKS_REFUSED);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
  px_maybe_finish(s);
}

/* Each on_* takes the parser's verdict (socks5.h) and answers it. Returns
 * the bytes consumed, 0 when the message is incomplete, -1 when it was
 * refused. */
static int on_greeting(px_session_t *s, const uint8_t *p, size_t len) {
  px_socks5_greeting_t g;
  int used = px_socks5_parse_greeting(p, len, &g);
  if (used < 0) {
    refuse(s, px_socks5_strerror(used));
    return -1;
  }
  if (used == 0) return 0;
  uint8_t want = s->w->shared->cfg->proxyauth ? PX_SOCKS5_METHOD_USERPASS : PX_SOCKS5_METHOD_NONE;
  if (px_socks5_greeting_offers(&g, want)) {
    const uint8_t ok[2] = {PX_SOCKS5_VERSION, want};
    px_send_client(s, ok, 2);
    set_step(s, want == PX_SOCKS5_METHOD_USERPASS ? PX_SOCKS_AUTH : PX_SOCKS_REQUEST);
    return used;
  }
  const uint8_t no[2] = {PX_SOCKS5_VERSION, PX_SOCKS5_METHOD_REFUSED};
  px_send_client(s, no, 2);
  refuse(s, want == PX_SOCKS5_METHOD_USERPASS
                ? "client offers no username/password authentication (--proxyauth is set)"
                : "client offers no method without authentication");
  return -1;
}

static int on_auth(px_session_t *s, const uint8_t *p, size_t len) {
  px_socks5_auth_t a;
  int used = px_socks5_parse_auth(p, len, &a);
  if (used == 0) return 0;
  int ok = used > 0 && px_socks5_auth_matches(&a, s->w->shared->cfg->proxyauth);
  const uint8_t answer[2] = {PX_SOCKS5_AUTH_VERSION, ok ? 0 : 1};
  px_send_client(s, answer, 2);
  if (!ok) {
    refuse(s, used < 0 ? px_socks5_strerror(used) : "wrong username or password");
    return -1;
  }
  set_step(s, PX_SOCKS_REQUEST);
  return used;
}

static int on_request(px_session_t *s, const uint8_t *p, size_t len) {
  px_socks5_request_t r;
  int used = px_socks5_parse_request(p, len, &r);
  if (used < 0) {
    reply(s, px_socks5_reply_code(used));
    refuse(s, px_socks5_strerror(used));
    return -1;
  }
  if (used == 0) return 0;
  px_session_log(s, FLT_LOG_DEBUG, "%s: SOCKS5 CONNECT %s:%u", s->conn.client, r.host,
                 (unsigned)r.port);
  char why[400];
  if (px_upstream_targets_us(r.host, r.port, why, sizeof(why))) {
    reply(s, 2); /* connection not allowed by ruleset */
    refuse(s, why);
    return -1;
  }
  px_session_set_target(s, r.host, r.port);
  reply(s, 0);
  set_step(s, PX_SOCKS_DONE);
  px_session_set_state(s, PX_S_PEEK);
  return used;
}

void px_socks_input(px_session_t *s, const char *data, size_t len) {
  if (flt_strbuf_append(&s->peek, data, len) != 0 || s->peek.len > PX_SOCKS5_MAX_MSG) {
    refuse(s, "message too long");
    return;
  }
  while (s->state == PX_S_SOCKS && s->peek.len > 0) {
    const uint8_t *p = (const uint8_t *)s->peek.data;
    size_t n = s->peek.len;
    int used = s->socks_step == PX_SOCKS_GREETING ? on_greeting(s, p, n)
               : s->socks_step == PX_SOCKS_AUTH   ? on_auth(s, p, n)
                                                  : on_request(s, p, n);
    if (used <= 0) return; /* incomplete, or refused */
    /* Whatever follows the request is the tunnel's first bytes. */
    size_t rest = s->peek.len - (size_t)used;
    char tail[PX_SOCKS5_MAX_MSG];
    memcpy(tail, s->peek.data + used, rest);
    flt_strbuf_reset(&s->peek);
    if (s->state == PX_S_PEEK) {
      if (rest > 0) px_session_peek(s, tail, rest);
      return;
    }
    flt_strbuf_append(&s->peek, tail, rest);
  }
}
