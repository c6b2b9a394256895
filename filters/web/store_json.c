/* store_json.c — the flow store's JSON (store.h): SUMMARY, DETAIL with the
 * flow's RECORD (the --jsonl writer's object) and its connection's CONN:
 * both legs' TLS messages described by the dissector (filters/tls/), the
 * certificates, the fingerprints and the wire records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/web/store_internal.h"

static const char *const state_names[] = {"pending", "done", "error", "aborted"};

static void num_or_null(tr_jw_t *w, const char *key, double v, int present) {
  if (present)
    tr_jw_num(w, key, v);
  else
    tr_jw_lit(w, key, "null");
}

void web_json_summary(tr_jw_t *w, const char *key, const web_flow_t *f, const web_state_t *st) {
  tr_jw_open(w, key, '{');
  tr_jw_num(w, "id", (double)f->id);
  tr_jw_num(w, "seq", (double)st->seq);
  tr_jw_num(w, "conn", (double)(f->conn ? f->conn->id : 0));
  tr_jw_str(w, "method", f->rec->msg[0].head.method);
  tr_jw_str(w, "scheme", f->scheme);
  tr_jw_str(w, "host", f->host);
  tr_jw_num(w, "port", f->port);
  tr_jw_str(w, "path", f->path);
  tr_jw_str(w, "url", f->url);
  tr_jw_str(w, "state", state_names[st->state]);
  num_or_null(w, "status", st->status, st->status > 0);
  tr_jw_str_or_null(w, "error", st->error[0] ? st->error : NULL);
  tr_jw_str_or_null(w, "type", st->type[0] ? st->type : NULL);
  num_or_null(w, "size", (double)st->size, st->size >= 0);
  num_or_null(w, "wire", (double)st->wire, st->wire >= 0);
  num_or_null(w, "duration", st->duration, st->duration >= 0);
  tr_jw_str(w, "proto", st->proto);
  tr_jw_str_or_null(w, "tls", st->tls[0] ? st->tls : NULL);
  tr_jw_num(w, "started", (double)(f->started_us / 1000));
  tr_jw_close(w, '}');
}

/* What is known of a flow still in flight: its request head. */
static void pending_record(tr_jw_t *w, const web_flow_t *f, const char *client) {
  const flt_head_t *h = &f->rec->msg[0].head;
  char ver[16], iso[TR_ISO_LEN];

  tr_http_version(h, ver, sizeof(ver));
  tr_iso_time(f->started_us, iso, sizeof(iso));
  tr_jw_open(w, "record", '{');
  tr_jw_num(w, "id", (double)f->core_id);
  tr_jw_num(w, "conn", (double)(f->conn ? f->conn->id : 0));
  tr_jw_str(w, "client", client);
  tr_jw_str(w, "started", iso);
  tr_jw_str(w, "url", f->url);
  tr_jw_str(w, "method", h->method);
  tr_jw_open(w, "request", '{');
  tr_jw_str(w, "httpVersion", ver);
  tr_jw_headers(w, "headers", h);
  tr_jw_num(w, "headersSize", h->head_bytes ? (double)h->head_bytes : -1);
  tr_jw_lit(w, "body", "null");
  tr_jw_close(w, '}');
  tr_jw_lit(w, "response", "null");
  tr_jw_lit(w, "error", "null");
  tr_jw_close(w, '}');
}

/* ---- the connection ---------------------------------------------------------- */

/* The counts and facts of a connection, copied under the lock. */
typedef struct conn_view {
  char client[64], server[300], sni[256], ja3[33], ja4[48], ja3s[33];
  char version[2][16], cipher[2][64], alpn[2][32];
  int tls[2], file_mode;
  size_t n_msgs, n_wire;
  uint64_t wire_dropped;
} conn_view_t;

static void conn_view(flt_web_store_t *s, web_conn_t *c, conn_view_t *v) {
  (void)s;
  web_lock(&c->lock);
  memcpy(v->client, c->client, sizeof(v->client));
  memcpy(v->server, c->server, sizeof(v->server));
  memcpy(v->sni, c->sni, sizeof(v->sni));
  memcpy(v->ja3, c->ja3, sizeof(v->ja3));
  memcpy(v->ja4, c->ja4, sizeof(v->ja4));
  memcpy(v->ja3s, c->ja3s, sizeof(v->ja3s));
  memcpy(v->version, c->version, sizeof(v->version));
  memcpy(v->cipher, c->cipher, sizeof(v->cipher));
  memcpy(v->alpn, c->alpn, sizeof(v->alpn));
  memcpy(v->tls, c->tls, sizeof(v->tls));
  v->file_mode = c->file_mode;
  web_unlock(&c->lock);
  v->n_msgs = atomic_load_explicit(&c->n_msgs, memory_order_acquire);
  v->n_wire = atomic_load_explicit(&c->n_wire, memory_order_acquire);
  v->wire_dropped = atomic_load_explicit(&c->wire_dropped, memory_order_relaxed);
}

static int leg_is13(const web_conn_t *c, size_t n, int leg) {
  flt_tls_hello_t h;
  for (size_t i = 0; i < n; i++) {
    const flt_tls_msg_t *m = &c->msgs[i];
    if (m->leg == leg && m->data && m->len > 0 && m->content_type == FLT_TLS_CT_HANDSHAKE &&
        m->data[0] == FLT_TLS_HS_SERVER_HELLO && flt_tls_hello_parse(m->data, m->len, &h) == 0)
      return flt_tls_hello_version(&h) == 0x0304;
  }
  return 0;
}

/* A strbuf's text as a string value ("" when empty), then emptied. */
static void put_text(tr_jw_t *w, const char *key, flt_strbuf_t *b) {
  size_t n = b->len;
  while (n > 0 && b->data[n - 1] == '\n') n--;
  tr_jw_bytes(w, key, b->data ? b->data : "", n);
  flt_strbuf_reset(b);
}

static void json_msg(tr_jw_t *w, const flt_tls_msg_t *m, size_t i, int tls13, flt_strbuf_t *b) {
  int step = flt_tls_msg_step(m);
  tr_jw_open(w, NULL, '{');
  tr_jw_num(w, "i", (double)i);
  num_or_null(w, "step", step, step > 0);
  tr_jw_str(w, "dir", m->sent ? "out" : "in");
  tr_jw_str(w, "type", flt_tls_msg_name(m));
  tr_jw_num(w, "content_type", m->content_type);
  tr_jw_num(w, "len", (double)m->len);
  flt_tls_msg_summary(b, m, tls13);
  put_text(w, "summary", b);
  tr_jw_str_or_null(w, "explain", flt_tls_explain_text(step, tls13));
  flt_tls_message_body_render(b, m, tls13, 0);
  put_text(w, "detail", b);
  tr_jw_close(w, '}');
}

static void json_cert(tr_jw_t *w, const flt_tls_cert_info_t *ci) {
  tr_jw_open(w, NULL, '{');
  tr_jw_str(w, "subject", ci->subject);
  tr_jw_str(w, "issuer", ci->issuer);
  tr_jw_str(w, "not_before", ci->not_before);
  tr_jw_str(w, "not_after", ci->not_after);
  tr_jw_open(w, "san", '[');
  for (const char *p = ci->sans; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    tr_jw_bytes(w, NULL, p, n);
    p += n + (nl != NULL);
  }
  tr_jw_close(w, ']');
  tr_jw_str(w, "sha256", ci->sha256);
  tr_jw_close(w, '}');
}

/* Client leg: the leaf tlspeek sent; upstream leg: the chain it received. */
static void json_certs(tr_jw_t *w, const web_conn_t *c, size_t n, int leg, int tls13) {
  flt_tls_cert_info_t ci;
  tr_jw_open(w, "certs", '[');
  for (size_t i = 0; i < n; i++) {
    const flt_tls_msg_t *m = &c->msgs[i];
    flt_tls_cur_t list;
    const uint8_t *der;
    size_t der_len, k = 0;
    if (m->leg != leg || m->sent != (leg == 0) || m->data == NULL || m->len < 1 ||
        m->content_type != FLT_TLS_CT_HANDSHAKE || m->data[0] != FLT_TLS_HS_CERTIFICATE)
      continue;
    int f13 = flt_tls_cert_list(m->data, m->len, tls13, &list) == 0 ? tls13 : !tls13;
    if (flt_tls_cert_list(m->data, m->len, f13, &list) < 0) continue;
    while (k++ < 10 && flt_tls_cert_next(&list, f13, &der, &der_len) == 1)
      if (flt_tls_cert_info(der, der_len, &ci) == 0) json_cert(w, &ci);
    break;
  }
  tr_jw_close(w, ']');
}

static void json_leg(tr_jw_t *w, const web_conn_t *c, const conn_view_t *v, int leg) {
  const char *key = leg ? "upstream" : "client";
  int any = 0, tls13 = leg_is13(c, v->n_msgs, leg);
  flt_strbuf_t b;

  for (size_t i = 0; i < v->n_msgs; i++) any |= c->msgs[i].leg == leg;
  if (!any && !v->version[leg][0]) {
    tr_jw_lit(w, key, "null");
    return;
  }
  flt_strbuf_init(&b, 256 * 1024);
  tr_jw_open(w, key, '{');
  tr_jw_str_or_null(w, "version", v->version[leg][0] ? v->version[leg] : NULL);
  tr_jw_str_or_null(w, "cipher", v->cipher[leg][0] ? v->cipher[leg] : NULL);
  tr_jw_str_or_null(w, "alpn", v->alpn[leg][0] ? v->alpn[leg] : NULL);
  tr_jw_open(w, "handshake", '[');
  for (size_t i = 0; i < v->n_msgs; i++)
    if (c->msgs[i].leg == leg) json_msg(w, &c->msgs[i], i, tls13, &b);
  tr_jw_close(w, ']');
  json_certs(w, c, v->n_msgs, leg, tls13);
  tr_jw_close(w, '}');
  flt_strbuf_free(&b);
}

static const char *wire_kind(int kind) {
  switch (kind) {
    case FLT_TLS_CT_HANDSHAKE: return "Handshake";
    case FLT_TLS_CT_CHANGE_CIPHER_SPEC: return "ChangeCipherSpec";
    case FLT_TLS_CT_ALERT: return "Alert";
    case WEB_KIND_PLAIN: return "plain";
    case WEB_KIND_UNPARSED: return "unparsed";
    default: return "ApplicationData";
  }
}

static void json_wire_one(tr_jw_t *w, const web_wire_t *r, flt_strbuf_t *b) {
  char hex[2 * FLT_WEB_WIRE_HEX + 1];
  const char *plain = atomic_load(&r->plain);

  for (size_t i = 0; i < r->head_len; i++) snprintf(hex + 2 * i, 3, "%02x", r->head[i]);
  hex[2 * r->head_len] = '\0';
  tr_jw_open(w, NULL, '{');
  tr_jw_num(w, "t", (double)(r->t_us / 1000));
  tr_jw_str(w, "leg", r->leg ? "upstream" : "client");
  tr_jw_str(w, "dir", r->sent ? "out" : "in");
  tr_jw_num(w, "len", r->len);
  tr_jw_str(w, "kind", wire_kind(r->kind));
  tr_jw_str(w, "hex", hex);
  if (plain) {
    flt_tls_put_escaped(b, (const uint8_t *)plain, r->plain_len);
    tr_jw_bytes(w, "plain", b->data ? b->data : "", b->len);
    flt_strbuf_reset(b);
  } else {
    tr_jw_lit(w, "plain", "null");
  }
  tr_jw_close(w, '}');
}

static void json_conn(flt_web_store_t *s, tr_jw_t *w, web_conn_t *c) {
  conn_view_t v;
  flt_strbuf_t b;

  if (c == NULL) {
    tr_jw_lit(w, "conn", "null");
    return;
  }
  conn_view(s, c, &v);
  tr_jw_open(w, "conn", '{');
  tr_jw_num(w, "id", (double)c->id);
  tr_jw_str(w, "client", v.client);
  tr_jw_str(w, "server", v.server);
  tr_jw_str_or_null(w, "sni", v.sni[0] ? v.sni : NULL);
  tr_jw_str_or_null(w, "ja3", v.ja3[0] ? v.ja3 : NULL);
  tr_jw_str_or_null(w, "ja4", v.ja4[0] ? v.ja4 : NULL);
  tr_jw_str_or_null(w, "ja3s", v.ja3s[0] ? v.ja3s : NULL);
  tr_jw_bool(w, "recorded", !v.file_mode);
  tr_jw_open(w, "legs", '{');
  json_leg(w, c, &v, 0);
  json_leg(w, c, &v, 1);
  tr_jw_close(w, '}');
  flt_strbuf_init(&b, 4 * FLT_WEB_WIRE_PLAIN + 16);
  tr_jw_open(w, "wire", '[');
  for (size_t i = 0; i < v.n_wire; i++)
    json_wire_one(w, &c->wire[i / WEB_WIRE_CHUNK][i % WEB_WIRE_CHUNK], &b);
  tr_jw_close(w, ']');
  flt_strbuf_free(&b);
  tr_jw_num(w, "wire_dropped", (double)v.wire_dropped);
  tr_jw_close(w, '}');
}

void web_json_detail(flt_web_store_t *s, tr_jw_t *w, web_flow_t *f) {
  web_state_t st;
  flt_conn_t facts;
  const tr_body_t *bodies;

  web_state_of(s, f, &st);
  web_conn_for_expr(s, f->conn, &facts);
  const char *client = facts.client;
  tr_jw_open(w, NULL, '{');
  web_json_summary(w, "summary", f, &st);
  if (st.done && tr_flow_bodies(f->rec, &bodies) == 0)
    tr_jsonl_object(w, "record", f->rec, bodies);
  else
    pending_record(w, f, client);
  json_conn(s, w, f->conn);
  tr_jw_close(w, '}');
}
