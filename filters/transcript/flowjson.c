/* flowjson.c — what the transcript filters share (transcript_internal.h):
 * the per-flow record, the HAR/JSONL event handlers and the JSON helpers.
 * The writer thread is in writer.c.
 */
#include "filters/transcript/transcript_internal.h"
#include "filters/util/output.h"
#include "filters/transcript/transcript.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "filters/util/output.h"

/* ---- one recorded flow -------------------------------------------------- */

/* The record is about 6 KB, most of it (the inline head and URL stores,
 * the frozen flow and connection, the interim heads) written before it is
 * read, or never read: only what is read before it is written is set here,
 * instead of zeroing it all (calloc) for every flow. */
static void msg_init(tr_msg_t *m, size_t body_cap) {
  m->present = 0;
  memset(&m->head, 0, sizeof(m->head));
  m->store = NULL;
  m->cenc[0] = '\0';
  m->dec = NULL;
  flt_strbuf_init(&m->decoded, body_cap);
  flt_strbuf_init(&m->raw, body_cap);
  m->fed = 0;
  m->size_hint = 0;
  m->truncated = 0;
  m->decode_error[0] = '\0';
}

tr_flow_t *tr_flow_new(size_t body_cap) {
  return tr_flow_new_extra(body_cap, 0);
}

tr_flow_t *tr_flow_new_extra(size_t body_cap, size_t extra) {
  tr_flow_t *r = extra > SIZE_MAX - TR_FLOW_EXTRA_OFF ? NULL : malloc(TR_FLOW_EXTRA_OFF + extra);

  if (r == NULL) return NULL;
  r->body_cap = body_cap;
  r->first_on_conn = 0;
  for (int d = 0; d < 2; d++) {
    msg_init(&r->msg[d], body_cap);
    memset(&r->received[d], 0, sizeof(r->received[d]));
    r->received_store[d] = NULL;
    r->has_received[d] = 0;
  }
  r->conn = NULL;
  r->url = NULL;
  r->error = NULL;
  r->actions = NULL;
  r->frozen = 0;
  for (size_t i = 0; i < FLT_MAX_INTERIM; i++) r->interim_store[i] = NULL;
  r->n_interim = 0;
  r->trailers_store = NULL;
  r->has_trailers = 0;
  r->owner = NULL;
  r->n_jobs = 0;
  r->bodies_state = 0;
  memset(r->bodies, 0, sizeof(r->bodies));
  r->ws = NULL;
  r->sharers = 1;
  atomic_init(&r->refs, 1);
  pthread_mutex_init(&r->body_mu, NULL);
  return r;
}

/* Content-Encoding, trimmed; "" for none or "identity". */
static void msg_set_coding(tr_msg_t *m) {
  const flt_header_t *h = flt_head_find(&m->head, "Content-Encoding");
  size_t b = 0, e = h ? h->value_len : 0;

  m->cenc[0] = '\0';
  if (h == NULL) return;
  while (b < e && (h->value[b] == ' ' || h->value[b] == '\t'))
    b++;
  while (e > b && (h->value[e - 1] == ' ' || h->value[e - 1] == '\t'))
    e--;
  if (e - b >= sizeof(m->cenc)) e = b + sizeof(m->cenc) - 1;
  memcpy(m->cenc, h->value + b, e - b);
  m->cenc[e - b] = '\0';
  if (strcasecmp(m->cenc, "identity") == 0) m->cenc[0] = '\0';
}

/* Content-Length of a body kept as it is, so that its buffer is allocated
 * once at its final size instead of growing through realloc. */
static void msg_set_size_hint(tr_msg_t *m) {
  const flt_header_t *h = flt_head_find(&m->head, "Content-Length");
  char buf[24];

  m->size_hint = 0;
  if (h == NULL || m->cenc[0] || h->value_len == 0 || h->value_len >= sizeof(buf)) return;
  memcpy(buf, h->value, h->value_len);
  buf[h->value_len] = '\0';
  if (strspn(buf, " \t0123456789") == h->value_len) m->size_hint = strtoull(buf, NULL, 10);
}

static void msg_reset_body(tr_msg_t *m) {
  flt_decoder_free(m->dec);
  m->dec = NULL;
  tr_big_put(m->decoded.data, m->decoded.alloc);
  m->decoded.data = NULL;
  flt_strbuf_free(&m->decoded);
  flt_strbuf_free(&m->raw);
  m->fed = 0;
  m->truncated = 0;
  m->decode_error[0] = '\0';
}

/* Room for the whole body (`n` bytes) in one allocation, a kept one when it
 * is large (tr_big_get). */
static void msg_reserve(tr_msg_t *m, size_t n) {
  size_t got;
  char *p = n < SIZE_MAX ? tr_big_get(n + 1, &got) : NULL;

  if (p == NULL) return; /* the appends will try again */
  p[0] = '\0';
  m->decoded.data = p;
  m->decoded.alloc = got;
  m->decoded.len = 0;
}

/* One allocation: [headers[]][strings], like the core's own head copies. */
int tr_head_copy(const flt_head_t *h, flt_head_t *out, char **store, char *inl,
                 size_t inl_size) {
  const char *method = h->method ? h->method : "";
  const char *url = h->url ? h->url : "";
  const char *reason = h->reason ? h->reason : "";
  size_t size =
      h->n_headers * sizeof(flt_header_t) + strlen(method) + strlen(url) + strlen(reason) + 3;
  flt_header_t *hv;
  char *p;

  for (size_t i = 0; i < h->n_headers; i++)
    size += h->headers[i].name_len + h->headers[i].value_len + 2;
  p = inl && size <= inl_size ? inl : malloc(size);
  if (p == NULL) return -1; /* the head before it (after a 1xx) stays */
  if (*store != inl) free(*store);
  *store = p;
  *out = *h;
  hv = (flt_header_t *)(void *)p;
  p += h->n_headers * sizeof(flt_header_t);
#define TR_COPY(dst, src, n) \
  do {                       \
    memcpy(p, (src), (n));   \
    p[(n)] = '\0';           \
    (dst) = p;               \
    p += (n) + 1;            \
  } while (0)
  TR_COPY(out->method, method, strlen(method));
  TR_COPY(out->url, url, strlen(url));
  TR_COPY(out->reason, reason, strlen(reason));
  for (size_t i = 0; i < h->n_headers; i++) {
    TR_COPY(hv[i].name, h->headers[i].name, h->headers[i].name_len);
    hv[i].name_len = h->headers[i].name_len;
    TR_COPY(hv[i].value, h->headers[i].value, h->headers[i].value_len);
    hv[i].value_len = h->headers[i].value_len;
  }
#undef TR_COPY
  out->headers = hv;
  return 0;
}

int tr_flow_head(tr_flow_t *r, flt_dir_t dir, const flt_head_t *h) {
  tr_msg_t *m = &r->msg[dir];
  if (tr_head_copy(h, &m->head, &m->store, m->inline_store, sizeof(m->inline_store)) < 0)
    return -1;
  m->present = 1;
  msg_set_coding(m);
  msg_reset_body(m);
  msg_set_size_hint(m);
  return 0;
}

void tr_flow_body(tr_flow_t *r, flt_dir_t dir, const uint8_t *p, size_t n) {
  tr_msg_t *m = &r->msg[dir];
  int encoded = m->cenc[0] != '\0';
  uint64_t max_in = UINT64_MAX;

  if (n == 0 || m->truncated) return;
  if (r->body_cap == 0) { /* keep no bodies at all */
    m->truncated = 1;
    return;
  }
  if (!encoded) { /* kept as it is: no decoder needed */
    if (m->decoded.data == NULL && m->size_hint) /* at most body_cap */
      msg_reserve(m, m->size_hint < r->body_cap ? (size_t)m->size_hint : r->body_cap);
    if (flt_strbuf_append(&m->decoded, p, n) < 0) m->truncated = 1;
    return;
  }
  if (m->dec == NULL) {
    m->dec = flt_decoder_new(m->cenc, strlen(m->cenc), &m->decoded);
    if (m->dec == NULL) {
      m->truncated = 1;
      return;
    }
  }
  /* The encoded bytes are only needed when decoding fails. */
  flt_strbuf_append(&m->raw, p, n);
  if (r->body_cap <= UINT64_MAX / TR_MAX_ENCODED_RATIO)
    max_in = (uint64_t)r->body_cap * TR_MAX_ENCODED_RATIO;
  if (n > max_in - m->fed) {
    n = (size_t)(max_in - m->fed);
    m->truncated = 1;
  }
  m->fed += n;
  flt_decoder_feed(m->dec, p, n);
  if (flt_decoder_stopped(m->dec)) m->truncated = 1;
}

/* What a frozen flow without a connection points at. */
static const flt_conn_t tr_no_conn;

/* The facts compared and kept: everything before the counters. */
#define TR_CONN_FACTS offsetof(flt_conn_t, bytes_in)

tr_conn_snap_t *tr_conn_snap_take(tr_conn_snap_t **cache, const flt_conn_t *c) {
  tr_conn_snap_t *s = cache ? *cache : NULL;

  if (s && memcmp(&s->conn, c, TR_CONN_FACTS) == 0) {
    atomic_fetch_add(&s->refs, 1);
    return s;
  }
  if ((s = malloc(sizeof(*s))) == NULL) return NULL;
  for (int i = 0; i < TR_FRAG_N; i++) atomic_init(&s->frag[i], NULL);
  memcpy(&s->conn, c, TR_CONN_FACTS);
  memset((char *)&s->conn + TR_CONN_FACTS, 0, sizeof(s->conn) - TR_CONN_FACTS);
  atomic_init(&s->refs, cache ? 2 : 1);
  if (cache) {
    tr_conn_snap_release(*cache);
    *cache = s;
  }
  return s;
}

void tr_conn_snap_release(tr_conn_snap_t *s) {
  if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) return;
  for (int i = 0; i < TR_FRAG_N; i++) free(atomic_load(&s->frag[i]));
  free(s);
}

/* The heads that f's pointers lend only until flow end: as received when
 * an action edited them (msg[] holds them as forwarded), and the 1xx. */
static int tr_flow_freeze_heads(tr_flow_t *r, const flt_flow_t *f) {
  const flt_head_t *sent[2] = {f->req_sent, f->has_response ? f->resp_sent : NULL};
  const flt_head_t *got[2] = {&f->req, &f->resp};
  for (int d = 0; d < 2; d++) {
    if (sent[d] == NULL || !r->msg[d].present) continue;
    if (tr_head_copy(got[d], &r->received[d], &r->received_store[d], NULL, 0) < 0) return -1;
    r->has_received[d] = 1;
    /* As forwarded, also when that was decided after the head's event
     * (--intercept edits a held request); the body stays as received. */
    tr_msg_t *m = &r->msg[d];
    if (tr_head_copy(sent[d], &m->head, &m->store, m->inline_store, sizeof(m->inline_store)) < 0)
      return -1;
    if (d == 0) r->flow.req = m->head;
    else r->flow.resp = m->head;
  }
  for (size_t i = 0; i < f->n_interim && i < FLT_MAX_INTERIM; i++) {
    if (tr_head_copy(f->interim[i], &r->interim[i], &r->interim_store[i], NULL, 0) < 0) return -1;
    r->n_interim = i + 1;
  }
  if (f->resp_trailers) {
    if (tr_head_copy(f->resp_trailers, &r->trailers, &r->trailers_store, NULL, 0) < 0) return -1;
    r->has_trailers = 1;
  }
  /* The frozen copy must not point into the core's flow. */
  r->flow.req_sent = r->flow.resp_sent = NULL;
  r->flow.interim = NULL;
  r->flow.n_interim = 0;
  r->flow.resp_trailers = r->has_trailers ? &r->trailers : NULL;
  return 0;
}

int tr_flow_freeze(tr_flow_t *r, const flt_flow_t *f, tr_conn_snap_t **conn_cache) {
  const char *url = f->url ? f->url : f->req.url;

  for (int d = 0; d < 2; d++) {
    tr_msg_t *m = &r->msg[d];
    if (m->dec == NULL) continue;
    /* Input we cut off on purpose is not a broken stream. */
    if (!m->truncated) flt_decoder_finish(m->dec);
    if (flt_decoder_error(m->dec))
      snprintf(m->decode_error, sizeof(m->decode_error), "%s: %s", flt_decoder_error_coding(m->dec),
               flt_decoder_error(m->dec));
  }
  r->flow = *f;
  memset(r->flow.fctx, 0, sizeof(r->flow.fctx));
  r->flow.conn = (flt_conn_t *)&tr_no_conn;
  if (f->conn) {
    tr_conn_snap_release(r->conn);
    if ((r->conn = tr_conn_snap_take(conn_cache, f->conn)) == NULL) return -1;
    r->flow.conn = &r->conn->conn;
  }
  if (url == NULL) url = "";
  r->url = strlen(url) < sizeof(r->url_inline) ? strcpy(r->url_inline, url) : strdup(url);
  r->error = f->error ? strdup(f->error) : NULL;
  r->actions = f->actions ? strdup(f->actions) : NULL;
  if (r->url == NULL || (f->error && r->error == NULL) || (f->actions && r->actions == NULL))
    return -1;
  r->flow.url = r->url;
  r->flow.error = r->error;
  r->flow.actions = r->actions;
  r->flow.req = r->msg[0].head;
  r->flow.resp = r->msg[1].head;
  r->flow.has_response = f->has_response && r->msg[1].present;
  if (tr_flow_freeze_heads(r, f) < 0) return -1;
  if (r->flow.t_end_us == 0) r->flow.t_end_us = flt_now_us();
  return 0;
}

size_t tr_flow_cost(const tr_flow_t *r) {
  size_t n = sizeof(*r);
  for (int d = 0; d < 2; d++)
    n += r->msg[d].decoded.alloc + r->msg[d].raw.alloc + r->msg[d].head.n_headers * 64 +
         r->received[d].n_headers * 64;
  for (size_t i = 0; i < r->n_interim; i++) n += 64 + r->interim[i].n_headers * 64;
  return n + tr_ws_log_cost(r->ws);
}

void tr_flow_release(tr_flow_t *r) {
  if (r == NULL || atomic_fetch_sub(&r->refs, 1) > 1) return;
  for (int d = 0; d < 2; d++) {
    msg_reset_body(&r->msg[d]);
    if (r->msg[d].store != r->msg[d].inline_store) free(r->msg[d].store);
    free(r->received_store[d]);
  }
  for (size_t i = 0; i < FLT_MAX_INTERIM; i++) free(r->interim_store[i]);
  free(r->trailers_store);
  tr_flow_bodies_free(r);
  tr_ws_log_free(r->ws);
  pthread_mutex_destroy(&r->body_mu);
  if (r->url != r->url_inline) free(r->url);
  free(r->error);
  free(r->actions);
  tr_conn_snap_release(r->conn);
  free(r);
}

/* ---- the shared HAR / JSONL event handlers ------------------------------ */

/* conn->fctx[slot] holds this address once a flow of the connection has
 * been seen (later flows did not pay for the upstream set-up), and then
 * the snapshot of its facts the last frozen flow took (tr_conn_snap_take),
 * which the connection's next flows share while the facts stay the same. */
static char tr_conn_seen;

void tr_rec_set_slot(tr_recorder_t *rec, int slot) {
  rec->slot = slot >= 0 && slot < FLT_MAX_FILTERS ? slot : -1;
}

void tr_rec_share(tr_recorder_t *a, tr_recorder_t *b) {
  if (a == NULL || b == NULL || a == b || a->slot < 0 || b->slot < 0 ||
      a->body_cap != b->body_cap)
    return;
  a->peer = b;
  b->peer = a;
}

void flt_har_jsonl_share(void *har, void *jsonl) {
  tr_rec_share(har, jsonl); /* both start with their tr_recorder_t */
}

static tr_flow_t *rec_flow(const tr_recorder_t *rec, const flt_flow_t *f) {
  return rec->slot >= 0 ? f->fctx[rec->slot] : NULL;
}

/* The record this recorder feeds: its own, not one a peer made. */
static tr_flow_t *rec_flow_fed(const tr_recorder_t *rec, const flt_flow_t *f) {
  tr_flow_t *r = rec_flow(rec, f);
  return r && r->owner == rec ? r : NULL;
}

/* Marks that `slot` has seen a flow of the connection; returns whether the
 * flow pays for an upstream set-up: the connection's first, or the first
 * after the core closed an idle upstream (--upstream-idle), which it shows
 * by set-up times of -1 while the old upstream address is still known. */
static int rec_first_on_conn(int slot, flt_flow_t *f) {
  int first;
  const flt_conn_t *c = f->conn;
  if (c == NULL) return 0;
  first = c->fctx[slot] == NULL ||
          (c->dns_us == -1 && c->connect_us == -1 && c->ssl_us == -1 && c->server_addr[0] != '\0');
  if (c->fctx[slot] == NULL) f->conn->fctx[slot] = &tr_conn_seen;
  return first;
}

void tr_rec_on_request_head(void *self, flt_flow_t *f) {
  tr_recorder_t *rec = self, *peer = rec->peer;
  tr_flow_t *r;

  if (rec->slot < 0 || tr_writer_failed(rec->w)) return;
  if (f->fctx[rec->slot]) return; /* the peer's record, shared with us */
  r = tr_flow_new(rec->body_cap);
  /* Recorded as forwarded: what the server saw (the head as received is
   * kept too, at flow end, when an action changed it). */
  if (r == NULL || tr_flow_head(r, FLT_DIR_REQUEST, f->req_sent ? f->req_sent : &f->req) < 0) {
    flt_log_error("transcript: out of memory; flow %llu not recorded", (unsigned long long)f->id);
    tr_flow_release(r);
    return;
  }
  r->owner = rec;
  r->first_on_conn = rec_first_on_conn(rec->slot, f);
  f->fctx[rec->slot] = r;
  if (peer && peer->slot >= 0 && !tr_writer_failed(peer->w)) {
    rec_first_on_conn(peer->slot, f);
    r->sharers++;
    atomic_fetch_add(&r->refs, 1);
    f->fctx[peer->slot] = r;
  }
}

void tr_rec_on_request_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  tr_flow_t *r = rec_flow_fed(self, f);
  if (r) tr_flow_body(r, FLT_DIR_REQUEST, data, len);
}

void tr_rec_on_response_head(void *self, flt_flow_t *f) {
  tr_flow_t *r = rec_flow_fed(self, f);
  if (r && tr_flow_head(r, FLT_DIR_RESPONSE, f->resp_sent ? f->resp_sent : &f->resp) < 0)
    flt_log_error("transcript: out of memory; response of flow %llu not recorded",
                  (unsigned long long)f->id);
}

void tr_rec_on_response_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  tr_flow_t *r = rec_flow_fed(self, f);
  if (r) tr_flow_body(r, FLT_DIR_RESPONSE, data, len);
}

void tr_flow_job_free(tr_job_t *job) {
  tr_flow_release(((tr_flow_job_t *)job)->rec); /* the job is part of it */
}

int tr_jw_write_list(void *sink, tr_jw_t *w, tr_job_t *list, const char *path,
                     const tr_batch_ops_t *ops) {
  int n = 0, rc = 0;

  tr_jw_reset(w);
  for (; list; list = list->next) {
    tr_flow_t *r = ((tr_flow_job_t *)list)->rec;
    const tr_body_t *bodies;
    tr_jw_mark_t m;
    tr_jw_mark(w, &m);
    int ok = tr_flow_bodies(r, &bodies) == 0;
    if (ok) ops->entry(sink, w, r, bodies, n);
    if (!ok || w->oom) {
      tr_jw_rewind(w, &m);
      flt_log_error("%s %s: out of memory; flow %llu not recorded", ops->label, path,
                    (unsigned long long)r->flow.id);
      continue;
    }
    n++;
    if (tr_jw_full(w)) {
      if ((rc = ops->append(sink, n)) != 0) return rc;
      n = 0;
      tr_jw_reset(w);
    }
  }
  if (n) rc = ops->append(sink, n);
  tr_jw_reset(w);
  return rc;
}

/* Freezes `r` with the connection's snapshot kept in its fctx[slot]. */
static int rec_freeze(const tr_recorder_t *rec, tr_flow_t *r, const flt_flow_t *f) {
  void **ctx = f->conn ? &f->conn->fctx[rec->slot] : NULL;
  tr_conn_snap_t *cache = ctx && *ctx != &tr_conn_seen ? *ctx : NULL;
  int rc = tr_flow_freeze(r, f, ctx ? &cache : NULL);

  if (cache) *ctx = cache;
  return rc;
}

void tr_rec_on_flow_end(void *self, flt_flow_t *f) {
  tr_recorder_t *rec = self;
  tr_flow_t *r = rec_flow(rec, f);
  tr_flow_job_t *j;

  if (r == NULL) return;
  f->fctx[rec->slot] = NULL;
  if (f->hidden & (1u << rec->slot)) { /* --har-filter / --jsonl-filter */
    tr_flow_release(r);
    return;
  }
  /* Whichever sharer comes first freezes the record, before any queues it. */
  if (r->frozen == 0) r->frozen = rec_freeze(rec, r, f) < 0 ? -1 : 1;
  if (r->frozen < 0 || r->n_jobs >= 2) {
    flt_log_error("transcript: out of memory; flow %llu not recorded", (unsigned long long)f->id);
    tr_flow_release(r);
    return;
  }
  j = &r->jobs[r->n_jobs++];
  j->rec = r;
  j->job.order = r->flow.t_end_us; /* files list flows in the order they ended */
  /* The record's memory, split between the queues of those sharing it. */
  j->job.cost = tr_flow_cost(r) / (size_t)r->sharers;
  tr_writer_put(rec->w, &j->job);
}

void tr_rec_on_conn_close(void *self, flt_conn_t *c) {
  tr_recorder_t *rec = self;
  if (rec->slot < 0 || c->fctx[rec->slot] == NULL) return;
  if (c->fctx[rec->slot] != &tr_conn_seen) tr_conn_snap_release(c->fctx[rec->slot]);
  c->fctx[rec->slot] = NULL;
}

void tr_rec_on_shutdown(void *self) {
  tr_recorder_t *rec = self;
  tr_writer_flush(rec->w);
}

/* ---- JSON helpers ------------------------------------------------------- */

void tr_http_version(const flt_head_t *h, char *buf, size_t size) {
  /* The usual ones without snprintf: every entry prints two or more. */
  if (h && size >= 9 && h->http_major >= 1 && h->http_major <= 9 && h->http_minor >= 0 &&
      h->http_minor <= 9) {
    memcpy(buf, "HTTP/", 5);
    buf[5] = (char)('0' + h->http_major);
    if (h->http_major == 2) { /* "HTTP/2.0", as HAR writers (Chrome) spell it */
      memcpy(buf + 6, ".0", 3);
      return;
    }
    if (h->http_major > 2) {
      buf[6] = '\0';
      return;
    }
    buf[6] = '.';
    buf[7] = (char)('0' + h->http_minor);
    buf[8] = '\0';
    return;
  }
  if (h == NULL || (h->http_major == 0 && h->http_minor == 0))
    snprintf(buf, size, "%s", "");
  else if (h->http_major >= 2)
    snprintf(buf, size, "HTTP/%d", h->http_major);
  else
    snprintf(buf, size, "HTTP/%d.%d", h->http_major, h->http_minor);
}

/* Each writer formats a flow's start time; flows of one second share the
 * date and time, formatted once per thread. */
void tr_iso_time(uint64_t us, char *buf, size_t size) {
  static _Thread_local time_t last_sec = -1;
  static _Thread_local char last[64]; /* "2024-01-31T23:59:59" */
  static _Thread_local size_t last_len;
  time_t sec = (time_t)(us / 1000000u);
  unsigned ms = (unsigned)(us % 1000000u / 1000u);

  if (sec != last_sec) {
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(last, sizeof(last), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last_len = strlen(last);
    last_sec = sec;
  }
  if (size < last_len + 6) {
    snprintf(buf, size, "%s", "");
    return;
  }
  memcpy(buf, last, last_len);
  buf += last_len;
  buf[0] = '.';
  buf[1] = (char)('0' + ms / 100);
  buf[2] = (char)('0' + ms / 10 % 10);
  buf[3] = (char)('0' + ms % 10);
  buf[4] = 'Z';
  buf[5] = '\0';
}

static double us_to_ms(uint64_t us) {
  return (double)us / 1000.0;
}

static double setup_ms(int64_t us) {
  return us < 0 ? -1 : us_to_ms((uint64_t)us);
}

void tr_timings_of(const tr_flow_t *r, tr_timings_t *t) {
  const flt_flow_t *f = &r->flow;
  uint64_t start = f->t_start_us, end, req_end, resp_head;

  t->dns = t->connect = t->ssl = -1;
  if (r->first_on_conn) {
    t->dns = setup_ms(r->flow.conn->dns_us);
    t->connect = setup_ms(r->flow.conn->connect_us);
    t->ssl = setup_ms(r->flow.conn->ssl_us);
    if (t->ssl >= 0 && t->connect >= 0) t->connect += t->ssl;
  }
  /* Missing or out-of-order stamps (an error flow) count as zero-length
   * phases: HAR timings are never negative except -1. */
  end = f->t_end_us > start ? f->t_end_us : start;
  req_end = f->t_req_end_us ? f->t_req_end_us : end;
  req_end = req_end < start ? start : req_end > end ? end : req_end;
  resp_head = f->t_resp_head_us ? f->t_resp_head_us : end;
  resp_head = resp_head < req_end ? req_end : resp_head > end ? end : resp_head;
  t->send = us_to_ms(req_end - start);
  t->wait = us_to_ms(resp_head - req_end);
  t->receive = us_to_ms(end - resp_head);
  t->total = t->send + t->wait + t->receive;
  if (t->dns > 0) t->total += t->dns;
  if (t->connect > 0) t->total += t->connect;
}
