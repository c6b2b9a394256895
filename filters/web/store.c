/* store.c — the flow store's filter and list (store.h): flows in a ring of
 * max_flows references, connections with their TLS messages and wire
 * records. The JSON is in store_json.c, the questions in store_query.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/util/log.h"
#include "filters/web/store_internal.h"

/* ---- references ---------------------------------------------------------- */

void web_conn_unref(web_conn_t *c) {
  if (c == NULL || atomic_fetch_sub(&c->refs, 1) > 1) return;
  size_t n = atomic_load(&c->n_msgs);
  for (size_t i = 0; i < n; i++) free((void *)c->msgs[i].data);
  for (size_t k = 0; k < WEB_WIRE_CHUNKS; k++) {
    if (c->wire[k] == NULL) continue;
    for (size_t i = 0; i < WEB_WIRE_CHUNK; i++) free(atomic_load(&c->wire[k][i].plain));
    free(c->wire[k]);
  }
  tr_conn_snap_release(c->snap);
  free(c);
}

void web_flow_unref(web_flow_t *f) {
  if (f == NULL || atomic_fetch_sub(&f->refs, 1) > 1) return;
  web_conn_t *c = f->conn;
  tr_flow_release(f->rec); /* frees f too: it lives in the record's block */
  web_conn_unref(c);
}

static void store_changed(flt_web_store_t *s) {
  if (atomic_load_explicit(&s->watchers, memory_order_relaxed) > 0 && s->notify)
    s->notify(s->notify_ud);
}

/* ---- connections ------------------------------------------------------------ */

/* Copies a NUL-terminated field (cut to the destination). */
#define FACT(dst, src)                                 \
  do {                                                 \
    size_t n_ = strnlen((src), sizeof(dst) - 1);       \
    memcpy((dst), (src), n_);                          \
    (dst)[n_] = '\0';                                  \
  } while (0)

/* Facts of the connection that appear as it goes (lock held). */
static void conn_facts(web_conn_t *wc, const flt_conn_t *c) {
  int v6 = strchr(c->server_host, ':') != NULL;
  FACT(wc->client, c->client);
  FACT(wc->server_host, c->server_host);
  wc->server_port = c->server_port;
  if (c->server_addr[0])
    FACT(wc->server, c->server_addr);
  else
    snprintf(wc->server, sizeof(wc->server), "%s%s%s:%u", v6 ? "[" : "", c->server_host,
             v6 ? "]" : "", (unsigned)c->server_port);
  FACT(wc->sni, c->sni);
  if (c->ja3[0]) FACT(wc->ja3, c->ja3);
  if (c->ja4[0]) FACT(wc->ja4, c->ja4);
  wc->tls[0] = c->client_tls;
  wc->tls[1] = c->upstream_tls;
  FACT(wc->version[0], c->tls_version);
  FACT(wc->cipher[0], c->cipher);
  FACT(wc->alpn[0], c->alpn);
  FACT(wc->version[1], c->up_tls_version);
  FACT(wc->cipher[1], c->up_cipher);
  FACT(wc->alpn[1], c->up_alpn);
}

void web_conn_for_expr(flt_web_store_t *s, web_conn_t *wc, flt_conn_t *c) {
  (void)s;
  memset(c, 0, sizeof(*c));
  if (wc == NULL) return;
  web_lock(&wc->lock);
  c->id = wc->id;
  FACT(c->client, wc->client);
  FACT(c->server_host, wc->server_host);
  c->server_port = wc->server_port;
  FACT(c->sni, wc->sni);
  FACT(c->ja3, wc->ja3);
  FACT(c->ja4, wc->ja4);
  c->client_tls = wc->tls[0];
  c->upstream_tls = wc->tls[1];
  c->kind = wc->tls[0] ? FLT_CONN_HTTPS : FLT_CONN_HTTP;
  FACT(c->tls_version, wc->version[0]);
  FACT(c->alpn, wc->alpn[0]);
  web_unlock(&wc->lock);
}

static web_conn_t *conn_new(uint64_t id, uint64_t start_us) {
  web_conn_t *wc = calloc(1, sizeof(*wc));
  if (wc == NULL) return NULL;
  atomic_init(&wc->refs, 1);
  atomic_init(&wc->wire_dropped, 0);
  atomic_init(&wc->n_msgs, 0);
  atomic_init(&wc->n_wire, 0);
  atomic_flag_clear(&wc->lock);
  wc->id = id;
  wc->start_us = start_us;
  return wc;
}

/* The connection's record, made on first use (worker thread). */
static web_conn_t *conn_get(flt_web_store_t *s, flt_conn_t *c) {
  web_conn_t *wc;
  if (s->slot < 0) return NULL;
  if ((wc = c->fctx[s->slot]) != NULL) return wc;
  if ((wc = conn_new(c->id, c->start_us ? c->start_us : flt_now_us())) == NULL) return NULL;
  conn_facts(wc, c); /* not shared yet */
  c->fctx[s->slot] = wc;
  return wc;
}

static void on_conn_open(void *self, flt_conn_t *c) {
  conn_get(self, c);
}

static void on_tls_established(void *self, flt_conn_t *c) {
  flt_web_store_t *s = self;
  web_conn_t *wc = conn_get(s, c);
  if (wc == NULL) return;
  web_lock(&wc->lock);
  conn_facts(wc, c);
  web_unlock(&wc->lock);
}

/* JA3S of the upstream's ServerHello (lock held). */
static void conn_ja3s(web_conn_t *wc, const flt_tls_msg_t *m) {
  flt_tls_hello_t h;
  flt_strbuf_t str;
  if (m->leg != 1 || m->sent || m->data == NULL || m->len < 1 ||
      m->data[0] != FLT_TLS_HS_SERVER_HELLO || flt_tls_hello_parse(m->data, m->len, &h) < 0)
    return;
  flt_strbuf_init(&str, FLT_TLS_MAX_JA3);
  if (flt_tls_ja3s(&h, &str, wc->ja3s) < 0) wc->ja3s[0] = '\0';
  flt_strbuf_free(&str);
}

static void on_tls_message(void *self, flt_conn_t *c, flt_leg_t leg, int sent, int content_type,
                           int version, const uint8_t *data, size_t len) {
  flt_web_store_t *s = self;
  web_conn_t *wc = conn_get(s, c);
  uint8_t *copy = NULL;
  (void)version;

  size_t n = wc ? atomic_load_explicit(&wc->n_msgs, memory_order_relaxed) : 0;
  if (wc == NULL || n == FLT_WEB_MAX_MSGS || wc->msg_bytes + len > FLT_WEB_MAX_MSG_BYTES) {
    if (wc) wc->msgs_dropped++;
    return;
  }
  if (len > 0 && len <= FLT_TLS_MAX_HANDSHAKE && (copy = malloc(len)) != NULL)
    memcpy(copy, data, len);
  flt_tls_msg_t m = {.leg = leg == FLT_LEG_UPSTREAM, .sent = sent != 0,
                     .content_type = content_type, .data = copy, .len = len};
  (void)s;
  wc->msgs[n] = m;
  wc->msg_bytes += len;
  atomic_store_explicit(&wc->n_msgs, n + 1, memory_order_release);
  web_lock(&wc->lock);
  conn_ja3s(wc, &m);
  web_unlock(&wc->lock);
}

/* Escaped plaintext is made when asked; here the bytes are kept. */
static char *plain_copy(const uint8_t *p, size_t len, uint16_t *out_len) {
  size_t n = len < FLT_WEB_WIRE_PLAIN ? len : FLT_WEB_WIRE_PLAIN;
  char *copy = malloc(n ? n : 1);
  if (copy) memcpy(copy, p, n);
  *out_len = (uint16_t)n;
  return copy;
}

static web_wire_t *wire_at(web_conn_t *wc, size_t i) {
  return &wc->wire[i / WEB_WIRE_CHUNK][i % WEB_WIRE_CHUNK];
}

/* Gives entry i+1 (if any) its plaintext, once. */
static void wire_attach(web_conn_t *wc, size_t idx1, const uint8_t *p, size_t len) {
  uint16_t n;
  char *copy, *none = NULL;
  if (idx1 == 0 || len == 0 || (copy = plain_copy(p, len, &n)) == NULL) return;
  web_wire_t *r = wire_at(wc, idx1 - 1);
  r->plain_len = n; /* published with the pointer (seq_cst) */
  if (!atomic_compare_exchange_strong(&r->plain, &none, copy)) free(copy);
}

/* One read or write being split into entries (wire_split.h). */
typedef struct wire_read {
  web_conn_t *wc;
  int leg, sent;
  const uint8_t *data; /* the read, for a plain entry's plaintext */
  size_t len;
  int forwarded; /* a sent ApplicationData record took the plaintext */
} wire_read_t;

/* The plaintext of an entry as it is made: a plain leg's bytes; for a
 * record tlspeek sends, the first ApplicationData record of the write gets
 * the plaintext it forwards; a received ApplicationData record waits for
 * on_data (plain_q). */
static void wire_plain(wire_read_t *x, web_wire_t *r, size_t idx) {
  web_conn_t *wc = x->wc;
  uint16_t n;
  if (r->kind == WEB_KIND_PLAIN) {
    atomic_init(&r->plain, plain_copy(x->data, x->len, &n));
    r->plain_len = n;
  } else if (r->kind != FLT_TLS_CT_APPLICATION_DATA) {
    return;
  } else if (x->sent) {
    int dir = x->leg == 0 ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST;
    if (x->forwarded || wc->last_plain_len[dir] == 0) return;
    atomic_init(&r->plain, plain_copy(wc->last_plain[dir], wc->last_plain_len[dir], &n));
    r->plain_len = n;
    wc->last_plain_len[dir] = 0;
    x->forwarded = 1;
  } else {
    uint8_t *qn = &wc->plain_qn[x->leg];
    if (*qn == WEB_PLAIN_Q) { /* the oldest waits no more */
      memmove(wc->plain_q[x->leg], wc->plain_q[x->leg] + 1, (WEB_PLAIN_Q - 1) * sizeof(uint16_t));
      (*qn)--;
    }
    wc->plain_q[x->leg][(*qn)++] = (uint16_t)(idx + 1);
  }
}

static void wire_entry(void *ud, uint8_t kind, uint32_t len, const uint8_t *head,
                       size_t head_len) {
  wire_read_t *x = ud;
  web_conn_t *wc = x->wc;
  size_t nw = atomic_load_explicit(&wc->n_wire, memory_order_relaxed); /* ours */

  if (nw == FLT_WEB_MAX_WIRE) {
    atomic_fetch_add_explicit(&wc->wire_dropped, 1, memory_order_relaxed);
    return;
  }
  size_t k = nw / WEB_WIRE_CHUNK;
  if (wc->wire[k] == NULL && (wc->wire[k] = calloc(WEB_WIRE_CHUNK, sizeof(web_wire_t))) == NULL)
    return;
  web_wire_t *r = wire_at(wc, nw);
  r->t_us = flt_now_us() - wc->start_us;
  r->leg = (uint8_t)x->leg;
  r->sent = (uint8_t)x->sent;
  r->kind = kind;
  r->len = len;
  r->head_len = (uint8_t)(head_len < FLT_WEB_WIRE_HEX ? head_len : FLT_WEB_WIRE_HEX);
  memcpy(r->head, head, r->head_len);
  wire_plain(x, r, nw);
  atomic_store_explicit(&wc->n_wire, nw + 1, memory_order_release);
}

/* A new read on a leg: the plaintext decrypted after it belongs to its
 * records; only a record still in progress keeps waiting. */
static void plain_q_new_read(web_conn_t *wc, int l) {
  const web_split_t *sp = &wc->split[l][0];
  int keep = sp->total && sp->emitted && sp->kind == FLT_TLS_CT_APPLICATION_DATA &&
             wc->plain_qn[l] > 0;
  if (keep) wc->plain_q[l][0] = wc->plain_q[l][wc->plain_qn[l] - 1];
  wc->plain_qn[l] = (uint8_t)keep;
}

static void on_wire(void *self, flt_conn_t *c, flt_leg_t leg, int sent, const uint8_t *data,
                    size_t len) {
  flt_web_store_t *s = self;
  web_conn_t *wc = conn_get(s, c);
  int l = leg == FLT_LEG_UPSTREAM, tls = l ? c->upstream_tls : c->client_tls;
  wire_read_t x = {wc, l, sent != 0, data, len, 0};

  if (wc == NULL || len == 0) return;
  if (atomic_load_explicit(&wc->n_wire, memory_order_relaxed) == FLT_WEB_MAX_WIRE) {
    atomic_fetch_add_explicit(&wc->wire_dropped, 1, memory_order_relaxed);
    return;
  }
  if (!sent) plain_q_new_read(wc, l);
  web_split_feed(&wc->split[l][x.sent], data, len, tls, wire_entry, &x);
}

/* The plaintext a received record carried: the first of that leg's waiting
 * ApplicationData entries takes it. */
static void on_data(void *self, flt_conn_t *c, flt_dir_t dir, const uint8_t *data, size_t len) {
  flt_web_store_t *s = self;
  web_conn_t *wc = s->slot >= 0 ? c->fctx[s->slot] : NULL;
  int l = dir == FLT_DIR_RESPONSE;

  size_t nw = wc ? atomic_load_explicit(&wc->n_wire, memory_order_relaxed) : 0;
  if (wc == NULL || len == 0 || nw == 0 || nw == FLT_WEB_MAX_WIRE ||
      !(l ? c->upstream_tls : c->client_tls))
    return;
  size_t n = len < FLT_WEB_WIRE_PLAIN ? len : FLT_WEB_WIRE_PLAIN;
  memcpy(wc->last_plain[dir], data, n);
  wc->last_plain_len[dir] = n;
  if (wc->plain_qn[l] == 0) return;
  wire_attach(wc, wc->plain_q[l][0], data, len);
  memmove(wc->plain_q[l], wc->plain_q[l] + 1, (size_t)(wc->plain_qn[l] - 1) * sizeof(uint16_t));
  wc->plain_qn[l]--;
}

/* The flows answered after the client's EOF, now that client_gone_us is
 * final: the ones it had left before their end become "aborted". */
static void conn_release_held(flt_web_store_t *s, web_conn_t *wc, const flt_conn_t *c) {
  web_flow_t *f = wc->held;
  int changed = 0;

  wc->held = NULL;
  while (f) {
    web_flow_t *next = f->held_next;
    if (flt_client_aborted(c, f->end_us)) {
      web_lock(&f->st_lock);
      f->st.state = WEB_ABORTED;
      f->st.seq = atomic_fetch_add(&s->seq, 1) + 1;
      web_unlock(&f->st_lock);
      changed = 1;
    }
    f->held_next = NULL;
    web_flow_unref(f);
    f = next;
  }
  if (changed) store_changed(s);
}

static void on_conn_close(void *self, flt_conn_t *c) {
  flt_web_store_t *s = self;
  web_conn_t *wc = s->slot >= 0 ? c->fctx[s->slot] : NULL;
  if (wc == NULL) return;
  web_lock(&wc->lock);
  conn_facts(wc, c);
  web_unlock(&wc->lock);
  conn_release_held(s, wc, c);
  c->fctx[s->slot] = NULL;
  web_conn_unref(wc);
}

/* ---- flows ------------------------------------------------------------------ */

/* Puts f in the list (its reference), dropping the oldest when full; the
 * dropped one is returned for the caller to release outside the lock. */
static web_flow_t *store_insert(flt_web_store_t *s, web_flow_t *f) {
  web_flow_t *old = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->next_id - s->first == s->max) {
    old = s->ring[s->first % s->max];
    s->ring[s->first % s->max] = NULL;
    s->first++;
    s->dropped++;
  }
  f->id = s->next_id++;
  f->st.seq = atomic_fetch_add(&s->seq, 1) + 1;
  s->ring[f->id % s->max] = f;
  pthread_mutex_unlock(&s->mu);
  return old;
}

static const char *url_path(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  return p ? p : "/";
}

/* One allocation holds the record, the flow after it (tr_flow_extra) and
 * its URL and host strings. */
static web_flow_t *flow_new(flt_web_store_t *s, flt_flow_t *f, web_conn_t *wc) {
  const flt_head_t *req = f->req_sent ? f->req_sent : &f->req;
  const char *url = f->url ? f->url : f->req.url ? f->req.url : "";
  const char *host = f->conn ? f->conn->server_host : "";
  size_t ul = strlen(url), hl = strnlen(host, sizeof(f->conn->server_host));
  tr_flow_t *rec = tr_flow_new_extra(s->body_cap, sizeof(web_flow_t) + ul + hl + 2);
  web_flow_t *wf;

  if (rec == NULL) return NULL;
  wf = tr_flow_extra(rec);
  memset(wf, 0, sizeof(*wf));
  wf->rec = rec;
  atomic_init(&wf->refs, 1);
  atomic_flag_clear(&wf->st_lock);
  wf->url = memcpy(wf->strings, url, ul + 1);
  wf->host = memcpy(wf->strings + ul + 1, host, hl);
  wf->host[hl] = '\0';
  if (tr_flow_head(wf->rec, FLT_DIR_REQUEST, req) < 0) {
    web_flow_unref(wf);
    return NULL;
  }
  wf->path = url_path(wf->url);
  memcpy(wf->scheme, f->scheme, sizeof(wf->scheme));
  wf->scheme[sizeof(wf->scheme) - 1] = '\0';
  wf->core_id = f->id;
  wf->port = f->conn ? f->conn->server_port : 0;
  wf->started_us = f->t_start_us ? f->t_start_us : flt_now_us();
  if (wc) atomic_fetch_add(&wc->refs, 1);
  wf->conn = wc;
  wf->st.status = 0;
  wf->st.size = wf->st.wire = -1;
  wf->st.duration = -1;
  snprintf(wf->st.proto, sizeof(wf->st.proto), "HTTP/%d.%d", f->req.http_major,
           f->req.http_minor);
  if (f->conn && f->conn->client_tls)
    snprintf(wf->st.tls, sizeof(wf->st.tls), "%s", f->conn->tls_version);
  return wf;
}

static web_flow_t *flow_of(const flt_web_store_t *s, flt_flow_t *f) {
  return s->slot >= 0 ? f->fctx[s->slot] : NULL;
}

static void on_request_head(void *self, flt_flow_t *f) {
  flt_web_store_t *s = self;
  web_conn_t *wc = f->conn ? conn_get(s, f->conn) : NULL;
  web_flow_t *wf;

  if (s->slot < 0) return;
  if ((wf = flow_new(s, f, wc)) == NULL) {
    flt_log_error("web: out of memory; flow %llu not shown", (unsigned long long)f->id);
    return;
  }
  atomic_fetch_add(&wf->refs, 1); /* the list's; the worker keeps its own */
  f->fctx[s->slot] = wf;
  web_flow_unref(store_insert(s, wf));
  store_changed(s);
}

static void on_request_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  web_flow_t *wf = flow_of(self, f);
  if (wf) tr_flow_body(wf->rec, FLT_DIR_REQUEST, data, len);
}

static void on_response_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  web_flow_t *wf = flow_of(self, f);
  if (wf) tr_flow_body(wf->rec, FLT_DIR_RESPONSE, data, len);
}

/* Content-Type without parameters, lower-cased. */
static void media_type(const flt_head_t *h, char *out, size_t size) {
  const flt_header_t *ct = flt_head_find(h, "Content-Type");
  size_t n = 0;
  out[0] = '\0';
  if (ct == NULL) return;
  while (n < ct->value_len && ct->value[n] != ';' && n + 1 < size) {
    char c = ct->value[n];
    out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
  out[n] = '\0';
}

static void on_response_head(void *self, flt_flow_t *f) {
  flt_web_store_t *s = self;
  web_flow_t *wf = flow_of(s, f);
  const flt_header_t *up;
  char type[96];

  if (wf == NULL) return;
  tr_flow_head(wf->rec, FLT_DIR_RESPONSE, f->resp_sent ? f->resp_sent : &f->resp);
  media_type(&f->resp, type, sizeof(type));
  up = flt_head_find(&f->resp, "Upgrade");
  web_lock(&wf->st_lock);
  wf->st.status = f->resp.status;
  snprintf(wf->st.type, sizeof(wf->st.type), "%s", type);
  if (f->resp.status == 101 && up && up->value_len == 9 && strncasecmp(up->value, "websocket", 9) == 0)
    snprintf(wf->st.proto, sizeof(wf->st.proto), "WebSocket");
  wf->st.seq = atomic_fetch_add(&s->seq, 1) + 1;
  web_unlock(&wf->st_lock);
  store_changed(s);
}

/* The response body's decoded size: what was received when it carried no
 * Content-Encoding, else what decoding gave (cut at body_cap). */
static int64_t decoded_size(const tr_flow_t *r, const flt_flow_t *f, int recorded) {
  if (!f->has_response) return -1;
  /* A transcript's body is recorded decoded already (bodySize is the wire's). */
  if (r->msg[1].cenc[0] == '\0' && !recorded) return (int64_t)f->resp_body_bytes;
  return (int64_t)r->msg[1].decoded.len;
}

static void flow_finish(flt_web_store_t *s, web_flow_t *wf, const flt_flow_t *f, int frozen) {
  int64_t size = frozen ? decoded_size(wf->rec, &wf->rec->flow, wf->conn && wf->conn->file_mode) : -1;
  uint64_t end = f->t_end_us ? f->t_end_us : flt_now_us();
  int aborted = flt_client_aborted(f->conn, end);

  wf->end_us = end;
  web_lock(&wf->st_lock);
  wf->st.state = aborted ? WEB_ABORTED : f->error ? WEB_ERROR : WEB_DONE;
  if (f->error) snprintf(wf->st.error, sizeof(wf->st.error), "%s", f->error);
  wf->st.done = frozen;
  wf->st.size = size;
  if (f->has_response)
    wf->st.wire = (int64_t)(f->resp.head_bytes + f->resp_body_bytes);
  wf->st.duration = end > wf->started_us ? (double)(end - wf->started_us) / 1000.0 : 0;
  wf->st.seq = atomic_fetch_add(&s->seq, 1) + 1;
  web_unlock(&wf->st_lock);
  /* Answered after the client's EOF: did it take the answer? Known at close. */
  if (!aborted && !f->error && f->conn && f->conn->client_eof_us &&
      f->conn->client_eof_us < end && wf->conn && !wf->conn->file_mode) {
    atomic_fetch_add(&wf->refs, 1);
    wf->held_next = wf->conn->held;
    wf->conn->held = wf;
  }
  /* The upstream's address and TLS are known after the first request. */
  if (f->conn && wf->conn && !wf->conn->facts_seen) {
    web_lock(&wf->conn->lock);
    conn_facts(wf->conn, f->conn);
    web_unlock(&wf->conn->lock);
    wf->conn->facts_seen = 1;
  }
  store_changed(s);
}

static void on_flow_end(void *self, flt_flow_t *f) {
  flt_web_store_t *s = self;
  web_flow_t *wf = flow_of(s, f);

  if (wf == NULL) return;
  f->fctx[s->slot] = NULL;
  int frozen = tr_flow_freeze(wf->rec, f, wf->conn ? &wf->conn->snap : NULL) == 0;
  wf->rec->frozen = frozen ? 1 : -1;
  flow_finish(s, wf, f, frozen);
  web_flow_unref(wf);
}

/* ---- file mode ------------------------------------------------------------------ */

/* A recorded body: already decoded, so kept as it is. */
static void recorded_body(tr_flow_t *r, flt_dir_t dir, const flt_rec_body_t *b) {
  r->msg[dir].cenc[0] = '\0';
  if (b->len) tr_flow_body(r, dir, b->data, b->len);
  if (b->truncated) r->msg[dir].truncated = 1;
  if (b->decode_error)
    snprintf(r->msg[dir].decode_error, sizeof(r->msg[dir].decode_error), "%s", b->decode_error);
}

int flt_web_store_add_recorded(flt_web_store_t *s, const flt_rec_flow_t *rf) {
  flt_flow_t f = rf->flow;
  flt_conn_t c = rf->conn;
  web_conn_t *wc = conn_new(c.id ? c.id : atomic_fetch_add(&s->next_conn, 1) + 1, c.start_us);
  web_flow_t *wf;

  if (wc == NULL) return -1;
  wc->file_mode = 1;
  conn_facts(wc, &c);
  f.conn = &c;
  wf = flow_new(s, &f, wc);
  web_conn_unref(wc);
  if (wf == NULL) return -1;
  recorded_body(wf->rec, FLT_DIR_REQUEST, &rf->body[FLT_DIR_REQUEST]);
  if (f.has_response) {
    tr_flow_head(wf->rec, FLT_DIR_RESPONSE, &f.resp);
    recorded_body(wf->rec, FLT_DIR_RESPONSE, &rf->body[FLT_DIR_RESPONSE]);
    media_type(&f.resp, wf->st.type, sizeof(wf->st.type));
    wf->st.status = f.resp.status;
  }
  web_flow_unref(store_insert(s, wf));
  int frozen = tr_flow_freeze(wf->rec, &f, NULL) == 0;
  wf->rec->frozen = frozen ? 1 : -1;
  flow_finish(s, wf, &f, frozen);
  return frozen ? 0 : -1;
}

/* ---- the instance ------------------------------------------------------------------ */

flt_web_store_t *flt_web_store_new(size_t max_flows, size_t body_cap) {
  flt_web_store_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->max = max_flows ? max_flows : FLT_WEB_DEFAULT_FLOWS;
  s->ring = calloc(s->max, sizeof(*s->ring));
  if (s->ring == NULL) {
    free(s);
    return NULL;
  }
  s->slot = -1;
  s->body_cap = body_cap;
  s->first = s->next_id = 1;
  atomic_init(&s->watchers, 0);
  atomic_init(&s->seq, 0);
  atomic_init(&s->next_conn, 0);
  pthread_mutex_init(&s->mu, NULL);
  return s;
}

void flt_web_store_set_slot(void *self, int slot) {
  flt_web_store_t *s = self;
  s->slot = slot >= 0 && slot < FLT_MAX_FILTERS ? slot : -1;
}

void flt_web_store_set_notify(flt_web_store_t *s, void (*notify)(void *), void *ud) {
  s->notify = notify;
  s->notify_ud = ud;
}

void flt_web_store_watch(flt_web_store_t *s, int delta) {
  atomic_fetch_add(&s->watchers, delta);
}

void flt_web_store_free(flt_web_store_t *s) {
  if (s == NULL) return;
  for (uint64_t id = s->first; id < s->next_id; id++) web_flow_unref(s->ring[id % s->max]);
  free(s->ring);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

const flt_ops_t flt_web_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "web",
    .on_conn_open = on_conn_open,
    .on_tls_established = on_tls_established,
    .on_request_head = on_request_head,
    .on_request_body = on_request_body,
    .on_response_head = on_response_head,
    .on_response_body = on_response_body,
    .on_flow_end = on_flow_end,
    .on_conn_close = on_conn_close,
    .on_data = on_data,
    .on_tls_message = on_tls_message,
    .on_wire = on_wire,
};
