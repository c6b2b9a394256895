/* deadline.c — deadlines for what the client must send: its first bytes or
 * complete ClientHello (--client-hello-timeout), a complete request head
 * (--request-timeout, from the head's first byte) and the next request on
 * an idle keep-alive connection (--keepalive-timeout).
 *
 * These are apart from the phase deadline (session.c: connect, handshakes),
 * which times the upstream leg: a client dribbling its next request head
 * while the upstream is still connecting is timed by both. */
#include <stdio.h>

#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* At most this many lines per window and worker thread at info level; the
 * rest at debug level, counted in one line when the next window opens, so
 * a crowd of slow (or unauthenticated) clients does not flood stderr. */
#define PX_DEADLINE_LOG_BURST 5
#define PX_DEADLINE_LOG_WINDOW_MS 10000

static _Thread_local uint64_t log_window_start;
static _Thread_local unsigned log_in_window, log_suppressed;

static uint64_t timeout_of(const px_config_t *cfg, px_client_wait_t what) {
  switch (what) {
    case PX_WAIT_FIRST:
      return cfg->client_hello_timeout_ms;
    case PX_WAIT_HEAD:
      return cfg->request_timeout_ms;
    case PX_WAIT_NEXT:
      return cfg->keepalive_timeout_ms;
    default:
      return 0;
  }
}

void px_client_deadline_start(px_session_t *s, px_client_wait_t what) {
  if (s->state == PX_S_CLOSING) return;
  s->client_wait = what;
  s->client_deadline = px_session_now(s) + timeout_of(s->w->shared->cfg, what);
  px_session_timer_restart(s);
}

/* Arms `what` unless a deadline for it already runs (it counts from the
 * moment that thing began to be awaited, not from the latest byte). */
static void keep(px_session_t *s, px_client_wait_t what) {
  if (s->client_wait != what) px_client_deadline_start(s, what);
}

static void clear(px_session_t *s) {
  s->client_wait = PX_WAIT_NONE;
}

/* What the client must send next, judged from the session as it is now. */
static px_client_wait_t awaited(const px_session_t *s) {
  if (s->end != PX_END_OPEN)
    return PX_WAIT_NONE; /* answered or ending: the linger deadline takes over */
  switch (s->state) {
    case PX_S_SOCKS:
    case PX_S_PEEK:
      return PX_WAIT_FIRST;
    case PX_S_HTTP:
    case PX_S_PROXY_HTTP:
    case PX_S_ERROR_REPLY:
      break;
    default:
      return PX_WAIT_NONE; /* handshake (phase deadline), raw relay */
  }
  if (s->req.state != PX_HTTP_HEAD)
    return PX_WAIT_NONE; /* a body, a held request or an upgraded stream: --idle-timeout */
  if (s->req.raw.len > 0) return PX_WAIT_HEAD;
  if (s->flows_head != NULL || s->req_flow != NULL)
    return PX_WAIT_NONE; /* waiting for the upstream's answer, not for the client */
  /* Between requests; a connection that sent nothing yet keeps its
   * first-bytes deadline. */
  return s->client_wait == PX_WAIT_FIRST ? PX_WAIT_FIRST : PX_WAIT_NEXT;
}

void px_client_deadline_update(px_session_t *s) {
  if (s->state == PX_S_CLOSING) return;
  px_client_wait_t what = awaited(s);
  if (what == PX_WAIT_NONE)
    clear(s);
  else
    keep(s, what);
}

void px_log_client_limited(px_session_t *s, const char *text) {
  uint64_t now = px_session_now(s);
  if (now - log_window_start >= PX_DEADLINE_LOG_WINDOW_MS) {
    if (log_suppressed > 0)
      flt_log_info(
          "%u more clients were cut off or refused in the last %.0f s (each shown "
          "at --log-level debug)",
          log_suppressed, (double)(now - log_window_start) / 1000.0);
    log_window_start = now;
    log_in_window = log_suppressed = 0;
  }
  if (log_in_window < PX_DEADLINE_LOG_BURST) {
    log_in_window++;
    px_session_log(s, FLT_LOG_INFO, "%s: %s", s->conn.client, text);
  } else {
    log_suppressed++;
    px_session_log(s, FLT_LOG_DEBUG, "%s: %s", s->conn.client, text);
  }
}

void px_client_deadline_expired(px_session_t *s) {
  const px_config_t *cfg = s->w->shared->cfg;
  px_client_wait_t what = s->client_wait;
  double secs = (double)timeout_of(cfg, what) / 1000.0;
  char text[200];
  if (s->client.paused) {
    /* tlspeek stopped reading (backpressure): the client is not to blame. */
    px_client_deadline_start(s, what);
    return;
  }
  if (awaited(s) != what) { /* things moved on without a call to update */
    px_client_deadline_update(s);
    return;
  }
  clear(s);
  if (what == PX_WAIT_NEXT) {
    snprintf(text, sizeof(text), "no new request for %.1f s on a keep-alive connection", secs);
    px_session_log(s, FLT_LOG_DEBUG, "%s, closing", text);
    px_session_close(s, text);
    return;
  }
  if (what == PX_WAIT_HEAD) {
    /* Nothing of a response has begun: the client can be told why. */
    int answer = s->flows_head == NULL && s->client.writes == 0;
    snprintf(text, sizeof(text), "request head not complete after %.1f s (--request-timeout)%s",
             secs, answer ? "; answered 408" : ", closing");
    px_log_client_limited(s, text);
    if (answer) {
      char body[200];
      snprintf(body, sizeof(body), "tlspeek: the request head was not complete after %.1f s", secs);
      px_reply_error(s, 408, "Request Timeout", body);
      px_update_reading(s);
      px_maybe_finish(s);
    } else {
      px_session_close(s, text);
    }
    return;
  }
  snprintf(text, sizeof(text), "%s after %.1f s (--client-hello-timeout), closing",
           s->client.tls.ssl              ? "ClientHello not complete"
           : s->state == PX_S_SOCKS ? "SOCKS5 set-up not complete"
           : s->conn.bytes_in == 0  ? "nothing received"
                                    : "first bytes not complete",
           secs);
  px_log_client_limited(s, text);
  px_session_close(s, text);
}
