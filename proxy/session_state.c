/* session_state.c — the session's state variables and their tables
 * (session.h, fsm.h): what the client's next bytes mean (`state`), how the
 * client connection ends (`end`) and whether its bytes are read at all
 * (`reading`: held for an origin switch, paused for the backlog). The
 * setters here are the only places that change them. And the one failure
 * path (px_session_fail). */
#include <stdio.h>

#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

#define B PX_FSM_BIT

static const char *const state_names[PX_S_COUNT] = {"new",          "proxy-http", "socks", "peek",
                                                    "client-hello", "client-tls", "http",  "raw",
                                                    "error-reply",  "closing"};

/* Every state may close. A CONNECT (or SOCKS5 request) leads to PEEK; its
 * first bytes to TLS, HTTP or raw; a TLS client is held at its ClientHello
 * (CLIENT_HELLO) until the upstream is known, then finishes its handshake
 * (CLIENT_TLS) or is told of the upstream's failure (ERROR_REPLY), or is
 * passed through untouched (RAW). An upgrade (101) turns HTTP into RAW.
 * A request that --map-remote sends elsewhere takes an ERROR_REPLY
 * connection whose upstream never connected back to HTTP (action_remote.c). */
static const uint32_t state_allowed[PX_S_COUNT] = {
    [PX_S_NEW] = B(PX_S_PROXY_HTTP) | B(PX_S_SOCKS) | B(PX_S_PEEK) | B(PX_S_CLOSING),
    [PX_S_PROXY_HTTP] = B(PX_S_PEEK) | B(PX_S_RAW) | B(PX_S_CLOSING),
    [PX_S_SOCKS] = B(PX_S_PEEK) | B(PX_S_CLOSING),
    [PX_S_PEEK] = B(PX_S_CLIENT_HELLO) | B(PX_S_HTTP) | B(PX_S_RAW) | B(PX_S_CLOSING),
    [PX_S_CLIENT_HELLO] = B(PX_S_CLIENT_TLS) | B(PX_S_ERROR_REPLY) | B(PX_S_RAW) | B(PX_S_CLOSING),
    [PX_S_CLIENT_TLS] = B(PX_S_HTTP) | B(PX_S_ERROR_REPLY) | B(PX_S_CLOSING),
    [PX_S_HTTP] = B(PX_S_RAW) | B(PX_S_ERROR_REPLY) | B(PX_S_CLOSING),
    [PX_S_RAW] = B(PX_S_CLOSING),
    [PX_S_ERROR_REPLY] = B(PX_S_HTTP) | B(PX_S_CLOSING),
    [PX_S_CLOSING] = 0,
};

const px_fsm_t px_session_fsm = {"state", state_names, PX_S_COUNT, state_allowed};

static const char *const end_names[PX_END_COUNT] = {"open", "draining", "flushing", "linger"};

/* Forward only: draining (close after the last flow) may be skipped when
 * the answer itself ends the connection; the FIN (linger) only follows
 * flushing. */
static const uint32_t end_allowed[PX_END_COUNT] = {
    [PX_END_OPEN] = B(PX_END_DRAINING) | B(PX_END_FLUSHING),
    [PX_END_DRAINING] = B(PX_END_FLUSHING),
    [PX_END_FLUSHING] = B(PX_END_LINGER),
    [PX_END_LINGER] = 0,
};

const px_fsm_t px_end_fsm = {"end", end_names, PX_END_COUNT, end_allowed};

static const char *const reading_names[PX_READ_COUNT] = {"reading", "held", "backlog",
                                                         "held+backlog"};

/* Held (an origin switch) and paused for the backlog are independent: each
 * is set or cleared on its own, one at a time. */
static const uint32_t reading_allowed[PX_READ_COUNT] = {
    [PX_READ_ON] = B(PX_READ_HELD) | B(PX_READ_BACKLOG),
    [PX_READ_HELD] = B(PX_READ_ON) | B(PX_READ_HELD_BACKLOG),
    [PX_READ_BACKLOG] = B(PX_READ_ON) | B(PX_READ_HELD_BACKLOG),
    [PX_READ_HELD_BACKLOG] = B(PX_READ_HELD) | B(PX_READ_BACKLOG),
};

const px_fsm_t px_reading_fsm = {"reading", reading_names, PX_READ_COUNT, reading_allowed};

void px_session_set_state(px_session_t *s, px_state_t next) {
  px_state_t prev = s->state;
  if (prev == next || px_fsm_check(&px_session_fsm, s->conn.id, prev, next) != 0) return;
  s->state = next;
  /* Starting and closing look after the client's deadline themselves. */
  if (prev == PX_S_NEW || next == PX_S_CLOSING) return;
  if (next == PX_S_PEEK)
    px_session_timer_deadline_start(s, PX_WAIT_FIRST); /* a new tunnel: its first bytes */
  else
    px_session_timer_deadline_update(s);
}

void px_session_set_reading(px_session_t *s, px_reading_t bit, int on) {
  px_reading_t next = (px_reading_t)(on ? (s->reading | bit) : (s->reading & ~bit));
  if (next == s->reading || px_fsm_check(&px_reading_fsm, s->conn.id, s->reading, next) != 0)
    return;
  s->reading = next;
}

void px_session_set_end(px_session_t *s, px_end_t next) {
  if (next <= s->end || px_fsm_check(&px_end_fsm, s->conn.id, s->end, next) != 0) return;
  s->end = next;
}

/* ---- the one failure path ---------------------------------------------------- */

const char *px_session_status_reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 504:
      return "Gateway Timeout";
    case 508:
      return "Loop Detected";
    default:
      return "Bad Gateway";
  }
}

void px_session_state_fail(px_session_t *s, int level, const char *about, const char *text,
                           int then) {
  if (about)
    flt_log(level, "session %llu: %s: %s: %s", (unsigned long long)s->conn.id, s->conn.client,
            about, text);
  else
    flt_log(level, "session %llu: %s: %s", (unsigned long long)s->conn.id, s->conn.client, text);
  flt_emit_error(&s->w->shared->chain, &s->conn, text);
  if (then == PX_FAIL_CLOSE)
    px_session_close(s, text);
  else if (then > 0)
    px_reply_error(s, then, px_session_status_reason(then), text);
}
