/* throttle.c — --throttle (throttle.h). */
#include "proxy/throttle.h"

#include <stdio.h>
#include <stdlib.h>

#include "filters/expr/expr.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* How often the budgets are topped up while throttling. */
#define PX_THROTTLE_TICK_MS 20

typedef struct px_throttle {
  uv_timer_t timer;      /* timer.data is the session */
  uint64_t rate;         /* bytes per second, each way */
  uint64_t last_ns;      /* uv_hrtime() of the last top-up */
  double frac[2];        /* the fractions of a byte not given yet: client, upstream */
  uint64_t hold_until;   /* uv_now() before which the upstream leg reads nothing */
  int flows;             /* throttled flows in progress */
} px_throttle_t;

/* The least a read may take (reads stop below it) and the most a leg may
 * save up while idle, for `rate`. */
static size_t chunk_of(uint64_t rate) {
  uint64_t c = rate * PX_THROTTLE_TICK_MS / 1000;
  return (size_t)(c < 512 ? 512 : c > 16384 ? 16384 : c);
}

static int64_t cap_of(uint64_t rate) {
  int64_t c = (int64_t)(rate / 5); /* 200 ms worth */
  return c < 2 * (int64_t)chunk_of(rate) ? 2 * (int64_t)chunk_of(rate) : c;
}

static void top_up(px_session_t *s, px_leg_t *leg, double *frac, double add) {
  px_throttle_t *t = s->throttle;
  *frac += add;
  int64_t whole = (int64_t)*frac;
  *frac -= (double)whole;
  px_leg_set_budget(leg, 1, whole, cap_of(t->rate), chunk_of(t->rate));
}

static void on_tick(uv_timer_t *h) {
  px_session_t *s = h->data;
  px_throttle_t *t = s->throttle;
  if (t == NULL || s->state == PX_S_CLOSING) return;
  uint64_t now_ns = uv_hrtime();
  double add = (double)t->rate * (double)(now_ns - t->last_ns) / 1e9;
  t->last_ns = now_ns;
  top_up(s, &s->client, &t->frac[0], add);
  /* Latency: the response's first byte waits; the time held is not saved up. */
  top_up(s, &s->upstream, &t->frac[1], px_session_now(s) < t->hold_until ? 0 : add);
}

/* "512 KiB/s", "1 MiB/s", "1.5 KiB/s", "300 B/s" */
static void rate_text(uint64_t rate, char *out, size_t len) {
  if (rate % (1024 * 1024) == 0)
    snprintf(out, len, "%llu MiB/s", (unsigned long long)(rate / (1024 * 1024)));
  else if (rate % 1024 == 0)
    snprintf(out, len, "%llu KiB/s", (unsigned long long)(rate / 1024));
  else if (rate >= 1024)
    snprintf(out, len, "%.1f KiB/s", (double)rate / 1024.0);
  else
    snprintf(out, len, "%llu B/s", (unsigned long long)rate);
}

static int start(px_session_t *s) {
  px_throttle_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return -1;
  if (uv_timer_init(s->timer.loop, &t->timer) != 0) {
    free(t);
    return -1;
  }
  t->timer.data = s;
  s->handles_open++;
  s->throttle = t;
  t->last_ns = uv_hrtime();
  uv_timer_start(&t->timer, on_tick, PX_THROTTLE_TICK_MS, PX_THROTTLE_TICK_MS);
  return 0;
}

int px_throttle_flow_start(px_session_t *s, flt_flow_t *f) {
  const px_config_t *cfg = s->w->shared->cfg;
  const px_throttle_rule_t *r = NULL;
  for (int i = 0; i < cfg->n_throttle && r == NULL; i++)
    if (flt_expr_match_flow(cfg->throttle[i].expr, f, NULL)) r = &cfg->throttle[i];
  if (r == NULL) return 0;
  if (s->throttle == NULL && start(s) != 0) {
    px_session_log(s, FLT_LOG_WARN, "out of memory: flow %llu is not throttled",
                   (unsigned long long)f->id);
    return 0;
  }
  px_throttle_t *t = s->throttle;
  int first = t->flows++ == 0;
  t->rate = r->rate;
  uint64_t until = px_session_now(s) + r->latency_ms;
  if (until > t->hold_until) t->hold_until = until;
  /* Starts empty: RATE holds from the first byte on. */
  px_leg_set_budget(&s->client, 1, 0, first ? 0 : cap_of(t->rate), chunk_of(t->rate));
  px_leg_set_budget(&s->upstream, 1, 0, first || r->latency_ms ? 0 : cap_of(t->rate),
                    chunk_of(t->rate));
  char rate[40];
  rate_text(r->rate, rate, sizeof(rate));
  if (r->latency_ms)
    flt_flow_action(f, "throttled", "request and response at %s + %llu ms latency", rate,
                    (unsigned long long)r->latency_ms);
  else
    flt_flow_action(f, "throttled", "request and response at %s", rate);
  return 1;
}

static void on_closed(uv_handle_t *h) {
  px_session_t *s = h->data;
  free(h); /* the timer is the struct's first member */
  s->handles_open--;
  if (s->state == PX_S_CLOSING) px_session_close(s, NULL); /* a close that waited for it */
}

void px_throttle_close(px_session_t *s) {
  px_throttle_t *t = s->throttle;
  if (t == NULL) return;
  s->throttle = NULL;
  uv_close((uv_handle_t *)&t->timer, on_closed);
}

void px_throttle_flow_end(px_session_t *s) {
  px_throttle_t *t = s->throttle;
  if (t == NULL || --t->flows > 0) return;
  px_throttle_close(s);
  if (s->state == PX_S_CLOSING) return;
  px_leg_set_budget(&s->client, 0, 0, 0, 0);
  px_leg_set_budget(&s->upstream, 0, 0, 0, 0);
  px_update_reading(s);
}
