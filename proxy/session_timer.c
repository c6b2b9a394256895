/* session_timer.c — the session's one timer: the idle timeout, the phase
 * deadline (px_timer_t: what times out, each with its handler in the table
 * below), the client's deadline (below) and the release of an idle
 * upstream (--upstream-idle).
 *
 * The client's deadlines: what the client must send, its first bytes or
 * complete ClientHello (--client-hello-timeout), a complete request head
 * (--request-timeout, from the head's first byte) and the next request on
 * an idle keep-alive connection (--keepalive-timeout). They are apart from
 * the phase deadline (connect, handshakes), which times the upstream side:
 * a client dribbling its next request head while the upstream is still
 * connecting is timed by both. */
#include <stdio.h>

#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

/* A phase that has no handler of its own: log, error event, close. */
static void timed_out(px_session_t *s, px_timer_t what) {
  char msg[300];
  snprintf(msg, sizeof(msg), "%s timed out", px_session_timer_name(what));
  px_session_fail(s, FLT_LOG_INFO, NULL, msg, PX_FAIL_CLOSE);
}

/* Still resolving or connecting: the upstream failed (504); past that (the
 * next proxy's answer to CONNECT), the session times out. */
static void connect_due(px_session_t *s, px_timer_t what) {
  const px_config_t *cfg = s->w->shared->cfg;
  if (s->up != PX_UP_RESOLVING && s->up != PX_UP_CONNECTING) {
    timed_out(s, what);
    return;
  }
  px_upstream_cancel_lookup(s);
  px_upstream_fail(s, 504, "connect to %s:%u timed out after %.1f s", s->up_host,
                   (unsigned)s->up_port, (double)cfg->connect_timeout_ms / 1000.0);
}

static void upstream_tls_due(px_session_t *s, px_timer_t what) {
  const px_config_t *cfg = s->w->shared->cfg;
  if (s->up != PX_UP_TLS) {
    timed_out(s, what);
    return;
  }
  px_upstream_fail(s, 504, "TLS handshake with %s:%u timed out after %.1f s", s->up_host,
                   (unsigned)s->up_port, (double)cfg->handshake_timeout_ms / 1000.0);
}

static void delivery_due(px_session_t *s, px_timer_t what) {
  (void)what;
  px_maybe_finish(s);
}

static void linger_due(px_session_t *s, px_timer_t what) {
  (void)what;
  px_session_close(s, "done");
}

static const struct {
  const char *name; /* "<name> timed out" */
  void (*due)(px_session_t *s, px_timer_t what);
} timers[PX_T_COUNT] = {
    [PX_T_NONE] = {"nothing", timed_out},
    [PX_T_CLIENT_TLS] = {"TLS handshake", timed_out},
    [PX_T_DNS] = {"DNS lookup", timed_out},
    [PX_T_CONNECT] = {"connect", connect_due},
    [PX_T_UPSTREAM_TLS] = {"upstream TLS handshake", upstream_tls_due},
    [PX_T_DELIVERY] = {"delivery", delivery_due},
    [PX_T_LINGER] = {"linger", linger_due},
};

const char *px_session_timer_name(px_timer_t what) {
  return what >= 0 && what < PX_T_COUNT ? timers[what].name : "?";
}

/* When the timer must look at the session for what it decides: the idle
 * timeout, the phase deadline, or the moment an idle upstream may be
 * released. */
static uint64_t due_wakeup(px_session_t *s) {
  const px_config_t *cfg = s->w->shared->cfg;
  uint64_t next = s->last_activity + cfg->idle_timeout_ms;
  if (s->deadline_what != PX_T_NONE && s->deadline < next) next = s->deadline;
  if (s->client_wait != PX_WAIT_NONE && s->client_deadline < next) next = s->client_deadline;
  if (cfg->upstream_idle_ms && px_upstream_releasable(s) &&
      s->last_activity + px_upstream_release_delay(s) < next)
    next = s->last_activity + px_upstream_release_delay(s);
  return next;
}

/* ... or sooner, for the connection to go quiet (px_upstream_quiet). */
static uint64_t next_wakeup(px_session_t *s) {
  uint64_t next = due_wakeup(s), quiet = px_upstream_quiet_due(s);
  return quiet < next ? quiet : next;
}

static void on_timer(uv_timer_t *t) {
  px_session_t *s = t->data;
  uint64_t now = px_session_now(s);
  const px_config_t *cfg = s->w->shared->cfg;
  char msg[300];

  if (s->state == PX_S_CLOSING) return;
  if (s->client_wait != PX_WAIT_NONE && now >= s->client_deadline) {
    px_session_timer_deadline_expired(s);
    if (s->state == PX_S_CLOSING) return;
  }
  if (s->deadline_what != PX_T_NONE && now >= s->deadline) {
    px_timer_t what = s->deadline_what;
    s->deadline_what = PX_T_NONE;
    timers[what].due(s, what);
    return;
  }
  /* Idle check: measured from the last byte moved. */
  if (now - s->last_activity >= cfg->idle_timeout_ms) {
    snprintf(msg, sizeof(msg), "idle for %.0f s, closing", (double)cfg->idle_timeout_ms / 1000.0);
    px_session_log(s, FLT_LOG_DEBUG, "%s", msg);
    px_session_close(s, msg);
    return;
  }
  /* A wake only to go quiet leaves the idle upstreams' count as it is: an
   * upstream counted then would be judged against the worker's limit before
   * it would have been otherwise. */
  int quiet = now >= px_upstream_quiet_due(s), released = 0;
  if (cfg->upstream_idle_ms && !(quiet && now < due_wakeup(s))) {
    int idle = px_upstream_releasable(s);
    released = idle && now - s->last_activity >= px_upstream_release_delay(s);
    if (released)
      px_upstream_release(s);
    else
      px_upstream_count_idle(s, idle);
  }
  if (quiet && !released) px_upstream_quiet(s);
  uint64_t next = next_wakeup(s);
  uv_timer_start(&s->timer, on_timer, next > now ? next - now : 1, 0);
}

void px_session_timer_rearm(px_session_t *s) {
  int idle = px_upstream_releasable(s);
  if (s->state == PX_S_CLOSING || (!idle && px_upstream_quiet_due(s) == UINT64_MAX)) return;
  if (idle) px_upstream_count_idle(s, 1);
  uint64_t now = px_session_now(s), next = next_wakeup(s);
  uint64_t in = next > now ? next - now : 1;
  if (uv_timer_get_due_in(&s->timer) > in) uv_timer_start(&s->timer, on_timer, in, 0);
}

void px_session_timer_restart(px_session_t *s) {
  uint64_t now = px_session_now(s), next = next_wakeup(s);
  if (s->state != PX_S_CLOSING) uv_timer_start(&s->timer, on_timer, next > now ? next - now : 1, 0);
}

void px_session_timer_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what) {
  s->deadline_what = what;
  s->deadline = px_session_now(s) + ms;
  px_session_timer_restart(s);
}

/* ---- the client's deadlines ------------------------------------------------ */

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

void px_session_timer_deadline_start(px_session_t *s, px_client_wait_t what) {
  if (s->state == PX_S_CLOSING) return;
  s->client_wait = what;
  s->client_deadline = px_session_now(s) + timeout_of(s->w->shared->cfg, what);
  px_session_timer_restart(s);
}

/* Arms `what` unless a deadline for it already runs (it counts from the
 * moment that thing began to be awaited, not from the latest byte). */
static void keep(px_session_t *s, px_client_wait_t what) {
  if (s->client_wait != what) px_session_timer_deadline_start(s, what);
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
  px_codec_phase_t phase = px_codec_phase(s->client.codec);
  if (phase == PX_CODEC_HEAD) return PX_WAIT_HEAD;
  if (phase != PX_CODEC_IDLE)
    return PX_WAIT_NONE; /* a body, a held request or an upgraded stream: --idle-timeout */
  if (s->flows.head != NULL || s->flows.req != NULL)
    return PX_WAIT_NONE; /* waiting for the upstream's answer, not for the client */
  /* Between requests; a connection that sent nothing yet keeps its
   * first-bytes deadline. */
  return s->client_wait == PX_WAIT_FIRST ? PX_WAIT_FIRST : PX_WAIT_NEXT;
}

void px_session_timer_deadline_update(px_session_t *s) {
  if (s->state == PX_S_CLOSING) return;
  px_client_wait_t what = awaited(s);
  if (what == PX_WAIT_NONE)
    clear(s);
  else
    keep(s, what);
}

void px_session_timer_log_client(px_session_t *s, const char *text) {
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

void px_session_timer_deadline_expired(px_session_t *s) {
  const px_config_t *cfg = s->w->shared->cfg;
  px_client_wait_t what = s->client_wait;
  double secs = (double)timeout_of(cfg, what) / 1000.0;
  char text[200];
  if (s->client.paused) {
    /* tlspeek stopped reading (backpressure): the client is not to blame. */
    px_session_timer_deadline_start(s, what);
    return;
  }
  if (awaited(s) != what) { /* things moved on without a call to update */
    px_session_timer_deadline_update(s);
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
    int answer = s->flows.head == NULL && s->client.writes == 0;
    snprintf(text, sizeof(text), "request head not complete after %.1f s (--request-timeout)%s",
             secs, answer ? "; answered 408" : ", closing");
    px_session_timer_log_client(s, text);
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
  px_session_timer_log_client(s, text);
  px_session_close(s, text);
}
