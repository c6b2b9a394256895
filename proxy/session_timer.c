/* session_timer.c — the session's one timer: the idle timeout, the phase
 * deadline (px_timer_t: what times out, each with its handler in the table
 * below), the client's deadline (deadline.c) and the release of an idle
 * upstream (--upstream-idle). */
#include <stdio.h>

#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* A phase that has no handler of its own: log, error event, close. */
static void timed_out(px_session_t *s, px_timer_t what) {
  char msg[300];
  snprintf(msg, sizeof(msg), "%s timed out", px_timer_name(what));
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
  px_dns_cancel(&s->dnsq);
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

const char *px_timer_name(px_timer_t what) {
  return what >= 0 && what < PX_T_COUNT ? timers[what].name : "?";
}

/* When the timer must next look at the session: the idle timeout, the
 * phase deadline, or the moment an idle upstream may be released. */
static uint64_t next_wakeup(px_session_t *s) {
  const px_config_t *cfg = s->w->shared->cfg;
  uint64_t next = s->last_activity + cfg->idle_timeout_ms;
  if (s->deadline_what != PX_T_NONE && s->deadline < next) next = s->deadline;
  if (s->client_wait != PX_WAIT_NONE && s->client_deadline < next) next = s->client_deadline;
  if (cfg->upstream_idle_ms && px_upstream_releasable(s) &&
      s->last_activity + px_upstream_release_delay(s) < next)
    next = s->last_activity + px_upstream_release_delay(s);
  return next;
}

static void on_timer(uv_timer_t *t) {
  px_session_t *s = t->data;
  uint64_t now = px_session_now(s);
  const px_config_t *cfg = s->w->shared->cfg;
  char msg[300];

  if (s->state == PX_S_CLOSING) return;
  if (s->client_wait != PX_WAIT_NONE && now >= s->client_deadline) {
    px_client_deadline_expired(s);
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
  if (cfg->upstream_idle_ms) {
    int idle = px_upstream_releasable(s);
    if (idle && now - s->last_activity >= px_upstream_release_delay(s))
      px_upstream_release(s);
    else
      px_upstream_count_idle(s, idle);
  }
  uint64_t next = next_wakeup(s);
  uv_timer_start(&s->timer, on_timer, next > now ? next - now : 1, 0);
}

void px_session_rearm_timer(px_session_t *s) {
  if (s->state == PX_S_CLOSING || !px_upstream_releasable(s)) return;
  px_upstream_count_idle(s, 1);
  uint64_t now = px_session_now(s), next = next_wakeup(s);
  uint64_t in = next > now ? next - now : 1;
  if (uv_timer_get_due_in(&s->timer) > in) uv_timer_start(&s->timer, on_timer, in, 0);
}

void px_session_timer_restart(px_session_t *s) {
  uint64_t now = px_session_now(s), next = next_wakeup(s);
  if (s->state != PX_S_CLOSING) uv_timer_start(&s->timer, on_timer, next > now ? next - now : 1, 0);
}

void px_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what) {
  s->deadline_what = what;
  s->deadline = px_session_now(s) + ms;
  px_session_timer_restart(s);
}
