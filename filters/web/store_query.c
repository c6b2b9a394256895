/* store_query.c — the questions the web thread asks the flow store
 * (store.h): under the lock only references and copies of the changing
 * fields are taken; expressions and JSON run after it is released. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"
#include "filters/web/store_internal.h"

web_flow_t *web_store_get(flt_web_store_t *s, uint64_t id) {
  web_flow_t *f = NULL;
  pthread_mutex_lock(&s->mu);
  if (id >= s->first && id < s->next_id && (f = s->ring[id % s->max]) != NULL)
    atomic_fetch_add(&f->refs, 1);
  pthread_mutex_unlock(&s->mu);
  return f;
}

void web_state_of(flt_web_store_t *s, web_flow_t *f, web_state_t *st) {
  (void)s;
  web_lock(&f->st_lock);
  *st = f->st;
  web_unlock(&f->st_lock);
}

void flt_web_store_counts(flt_web_store_t *s, flt_web_counts_t *out) {
  pthread_mutex_lock(&s->mu);
  out->count = s->next_id - s->first;
  out->dropped = s->dropped;
  out->max = s->max;
  out->seq = atomic_load(&s->seq);
  out->cleared = s->cleared;
  pthread_mutex_unlock(&s->mu);
}

typedef struct snap {
  web_flow_t *f;
  web_state_t st;
} snap_t;

/* References to the flows changed after `after`, with their state. The
 * store's seq is read before the flows' states, so a change stamped after
 * it is seen again next time rather than missed. */
static snap_t *take_changed(flt_web_store_t *s, uint64_t after, size_t *n, uint64_t *seq) {
  snap_t *v = NULL;
  size_t k = 0;

  pthread_mutex_lock(&s->mu);
  size_t count = (size_t)(s->next_id - s->first);
  *seq = atomic_load(&s->seq);
  if (count && (v = malloc(count * sizeof(*v))) != NULL) {
    for (uint64_t id = s->first; id < s->next_id; id++) {
      web_flow_t *f = s->ring[id % s->max];
      if (f == NULL) continue;
      web_lock(&f->st_lock);
      v[k].st = f->st;
      web_unlock(&f->st_lock);
      if (v[k].st.seq <= after) continue;
      atomic_fetch_add(&f->refs, 1);
      v[k].f = f;
      k++;
    }
  }
  pthread_mutex_unlock(&s->mu);
  *n = k;
  return v;
}

/* A pending flow as expressions see it: its request head and connection. */
static int pending_matches(flt_web_store_t *s, const flt_expr_t *e, const web_flow_t *f) {
  flt_expr_bodies_t none = {NULL, 0, NULL, 0};
  flt_conn_t c;
  flt_flow_t fl;
  web_conn_for_expr(s, f->conn, &c);
  memset(&fl, 0, sizeof(fl));
  fl.id = f->core_id;
  fl.conn = &c;
  memcpy(fl.scheme, f->scheme, sizeof(fl.scheme));
  fl.url = f->url;
  fl.req = f->rec->msg[0].head;
  fl.t_start_us = f->started_us;
  return flt_expr_match_flow(e, &fl, &none);
}

static int flow_matches(flt_web_store_t *s, const flt_expr_t *e, const web_flow_t *f,
                        const web_state_t *st) {
  if (e == NULL) return 1;
  if (!st->done) return pending_matches(s, e, f);
  const tr_flow_t *r = f->rec;
  flt_expr_bodies_t b = {(const uint8_t *)r->msg[0].decoded.data, r->msg[0].decoded.len,
                         (const uint8_t *)r->msg[1].decoded.data, r->msg[1].decoded.len};
  return flt_expr_match_flow(e, &r->flow, &b);
}

long flt_web_store_summaries(flt_web_store_t *s, tr_jw_t *w, const flt_expr_t *filter,
                             uint64_t after, uint64_t *last_seq) {
  size_t n;
  long written = 0;
  snap_t *v = take_changed(s, after, &n, last_seq);

  for (size_t i = 0; i < n; i++) {
    if (flow_matches(s, filter, v[i].f, &v[i].st)) {
      web_json_summary(w, NULL, v[i].f, &v[i].st);
      written++;
    }
    web_flow_unref(v[i].f);
  }
  free(v);
  return w->oom ? -1 : written;
}

int flt_web_store_detail(flt_web_store_t *s, uint64_t id, tr_jw_t *w) {
  web_flow_t *f = web_store_get(s, id);
  if (f == NULL) return -1;
  web_json_detail(s, w, f);
  web_flow_unref(f);
  return 0;
}

/* Content-Type without parameters of a frozen message. */
static void msg_type(const tr_msg_t *m, char *out, size_t size) {
  const flt_header_t *ct = m->present ? flt_head_find(&m->head, "Content-Type") : NULL;
  size_t n = 0;
  out[0] = '\0';
  if (ct == NULL || size == 0) return;
  while (n < ct->value_len && ct->value[n] != ';' && n + 1 < size) {
    char c = ct->value[n];
    out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  while (n > 0 && out[n - 1] == ' ') n--;
  out[n] = '\0';
}

int flt_web_store_body(flt_web_store_t *s, uint64_t id, flt_dir_t dir, int raw, char **data,
                       size_t *len, char *ctype, size_t ctype_len) {
  web_flow_t *f = web_store_get(s, id);
  web_state_t st;
  int rc = -2;

  *data = NULL;
  *len = 0;
  if (f == NULL) return -1;
  web_state_of(s, f, &st);
  const tr_msg_t *m = &f->rec->msg[dir]; /* read only once frozen */
  const flt_strbuf_t *b = !st.done ? NULL : raw && m->cenc[0] ? &m->raw : &m->decoded;
  /* A body that did not decode is kept as received. */
  if (b && !raw && m->decode_error[0]) b = &m->raw;
  if (b && m->present && b->len > 0) {
    msg_type(m, ctype, ctype_len);
    *data = malloc(b->len);
    if (*data) {
      memcpy(*data, b->data, b->len);
      *len = b->len;
      rc = 0;
    }
  }
  web_flow_unref(f);
  return rc;
}

void flt_web_request_free(flt_web_request_t *r) {
  for (size_t i = 0; i < r->n_headers; i++) {
    free(r->names[i]);
    free(r->values[i]);
  }
  free(r->names);
  free(r->values);
  free(r->method);
  free(r->url);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

/* The head as the client sent it: the received copy when an action changed it. */
static const flt_head_t *client_head(const tr_flow_t *r, const web_flow_t *f, int done) {
  if (done && r->has_received[0]) return &r->received[0];
  return done ? &r->flow.req : &f->rec->msg[0].head;
}

static int copy_request(const web_flow_t *f, const web_state_t *st, flt_web_request_t *out) {
  const tr_flow_t *r = f->rec;
  const flt_head_t *h = client_head(r, f, st->done);
  const tr_msg_t *m = &r->msg[0];

  out->method = strdup(h->method ? h->method : "GET");
  out->url = strdup(f->url);
  out->names = calloc(h->n_headers + 1, sizeof(char *));
  out->values = calloc(h->n_headers + 1, sizeof(char *));
  if (!out->method || !out->url || !out->names || !out->values) return -1;
  for (size_t i = 0; i < h->n_headers; i++) {
    out->names[i] = strndup(h->headers[i].name, h->headers[i].name_len);
    out->values[i] = strndup(h->headers[i].value, h->headers[i].value_len);
    out->n_headers = i + 1;
    if (!out->names[i] || !out->values[i]) return -1;
  }
  out->complete = 1;
  if (!st->done) {
    out->complete = 0; /* its body is still arriving */
    return 0;
  }
  out->has_body = r->flow.req_body_bytes > 0;
  const flt_strbuf_t *b = m->decode_error[0] ? &m->raw : &m->decoded;
  if (m->truncated || (m->cenc[0] && !m->decode_error[0])) out->complete = !out->has_body;
  if (b->len) {
    if ((out->body = malloc(b->len)) == NULL) return -1;
    memcpy(out->body, b->data, b->len);
    out->body_len = b->len;
  }
  return 0;
}

int flt_web_store_request(flt_web_store_t *s, uint64_t id, flt_web_request_t *out) {
  web_flow_t *f = web_store_get(s, id);
  web_state_t st;
  int rc;

  memset(out, 0, sizeof(*out));
  if (f == NULL) return -1;
  web_state_of(s, f, &st);
  rc = copy_request(f, &st, out);
  web_flow_unref(f);
  if (rc < 0) flt_web_request_free(out);
  return rc < 0 ? -2 : 0;
}

static int wanted(const uint64_t *ids, size_t n, uint64_t id) {
  if (ids == NULL) return 1;
  for (size_t i = 0; i < n; i++)
    if (ids[i] == id) return 1;
  return 0;
}

long flt_web_store_har(flt_web_store_t *s, const uint64_t *ids, size_t n, const char *version,
                       tr_jw_t *w) {
  size_t count;
  uint64_t seq;
  long entries = 0;
  snap_t *v = take_changed(s, 0, &count, &seq);
  char *head = tr_har_head(version, s->body_cap);

  if (head == NULL) w->oom = 1;
  else tr_jw_raw(w, head, strlen(head));
  free(head);
  for (size_t i = 0; i < count; i++) {
    const tr_body_t *bodies;
    if (v[i].st.done && wanted(ids, n, v[i].f->id) && tr_flow_bodies(v[i].f->rec, &bodies) == 0) {
      tr_jw_raw(w, entries ? ",\n" : "\n", entries ? 2 : 1);
      tr_har_entry(w, v[i].f->rec, bodies);
      entries++;
    }
    web_flow_unref(v[i].f);
  }
  free(v);
  tr_jw_raw(w, "\n]}}\n", 5);
  return w->oom ? -1 : entries;
}

void flt_web_store_clear(flt_web_store_t *s) {
  web_flow_t **gone = NULL;
  size_t n = 0;

  pthread_mutex_lock(&s->mu);
  size_t count = (size_t)(s->next_id - s->first);
  gone = count ? malloc(count * sizeof(*gone)) : NULL;
  for (uint64_t id = s->first; id < s->next_id; id++) {
    web_flow_t *f = s->ring[id % s->max];
    s->ring[id % s->max] = NULL;
    if (f && gone) gone[n++] = f;
    else if (f) atomic_fetch_sub(&f->refs, 1); /* out of memory: leak nothing but the free */
  }
  s->first = s->next_id;
  s->cleared++;
  atomic_fetch_add(&s->seq, 1);
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; i < n; i++) web_flow_unref(gone[i]);
  free(gone);
  if (s->notify && atomic_load(&s->watchers) > 0) s->notify(s->notify_ud);
}

/* ---- --intercept: between the list's ids and tlspeek's ------------------------ */

uint64_t flt_web_store_flow_id(flt_web_store_t *s, uint64_t id) {
  web_flow_t *f = web_store_get(s, id);
  uint64_t core = f ? f->core_id : 0;
  if (f) web_flow_unref(f);
  return core;
}

uint64_t flt_web_store_list_id(flt_web_store_t *s, uint64_t flow_id) {
  uint64_t found = 0;
  pthread_mutex_lock(&s->mu);
  for (uint64_t id = s->next_id; id-- > s->first && found == 0;) { /* newest first */
    web_flow_t *f = s->ring[id % s->max];
    if (f && f->core_id == flow_id) found = id;
  }
  pthread_mutex_unlock(&s->mu);
  return found;
}
