/* reader_flow.c — one JSONL object or HAR entry into a recorded flow
 * (reader.h says what a transcript can and cannot tell; jsonl.c and har.c
 * document the fields read here). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "filters/transcript/reader_internal.h"

#define RD_REQUIRED 1
#define RD_OPTIONAL 0
#define RD_MAX_BYTES 9007199254740992.0 /* 2^53: sizes and ids */
#define RD_MAX_MS 1e12                  /* timings: 30 years */

static int rd_oom(rd_ctx_t *c) {
  snprintf(c->err, c->errlen, "%sout of memory", c->prefix);
  return -1;
}

static void rd_copy(char *dst, size_t size, const char *s) {
  snprintf(dst, size, "%s", s ? s : "");
}

/* ---- heads --------------------------------------------------------------- */

/* "HTTP/1.1", "HTTP/2", "h2", "http/2.0", "h3"; "" is 0.0, other text
 * 1.1 (browsers write "unknown" and the like). */
static void rd_version(const char *v, flt_head_t *h) {
  int major = 1, minor = 1;
  if (v == NULL || v[0] == '\0') {
    major = minor = 0;
  } else if (strncasecmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9') {
    major = v[5] - '0';
    minor = v[6] == '.' && v[7] >= '0' && v[7] <= '9' ? v[7] - '0' : 0;
  } else if ((v[0] == 'h' || v[0] == 'H') && v[1] >= '2' && v[1] <= '3') {
    major = v[1] - '0';
    minor = 0;
  }
  h->http_major = major;
  h->http_minor = minor;
}

/* "headers": [{"name", "value"}] into h (missing: none). */
static int rd_headers(rd_ctx_t *c, rd_arena_t *a, const cJSON *msg, flt_head_t *h) {
  const cJSON *arr, *item;
  int i = 0;

  if (rd_array(c, msg, "headers", RD_OPTIONAL, &arr) < 0) return -1;
  h->headers = NULL;
  h->n_headers = 0;
  if (arr == NULL) return 0;
  int n = cJSON_GetArraySize(arr);
  flt_header_t *hv = rd_alloc(a, (size_t)n * sizeof(*hv));
  if (hv == NULL) return rd_oom(c);
  size_t at = rd_push_key(c, "headers");
  cJSON_ArrayForEach(item, arr) {
    const char *name, *value;
    size_t here = rd_push_index(c, i);
    if (!cJSON_IsObject(item)) return rd_fail(c, NULL, "expected an object");
    if (rd_string(c, item, "name", RD_REQUIRED, &name) < 0 ||
        rd_string(c, item, "value", RD_REQUIRED, &value) < 0)
      return -1;
    hv[i] = (flt_header_t){name, strlen(name), value, strlen(value)};
    rd_pop(c, here);
    i++;
  }
  rd_pop(c, at);
  h->headers = hv;
  h->n_headers = (size_t)i;
  return 0;
}

/* "headersSize": bytes or -1. */
static int rd_head_bytes(rd_ctx_t *c, const cJSON *msg, flt_head_t *h) {
  double v;
  if (rd_number(c, msg, "headersSize", RD_OPTIONAL, -1, RD_MAX_BYTES, 1, &v, NULL) < 0) return -1;
  h->head_bytes = v > 0 ? (size_t)v : 0;
  return 0;
}

/* A response head: status, reason (under `reason_key`), version, headers. */
static int rd_response_head(rd_ctx_t *c, rd_arena_t *a, const cJSON *msg, const char *reason_key,
                            int status_required, flt_head_t *h) {
  const char *reason, *ver;
  double status;
  if (rd_number(c, msg, "status", status_required, 0, 999, 1, &status, NULL) < 0 ||
      rd_string(c, msg, reason_key, RD_OPTIONAL, &reason) < 0 ||
      rd_string(c, msg, "httpVersion", RD_OPTIONAL, &ver) < 0 || rd_headers(c, a, msg, h) < 0 ||
      rd_head_bytes(c, msg, h) < 0)
    return -1;
  h->status = (int)status;
  h->reason = reason ? reason : "";
  rd_version(ver, h);
  return 0;
}

/* [{"status", "reason", "httpVersion", "headers"}]: the 1xx responses. */
static int rd_interim(rd_ctx_t *c, rd_arena_t *a, const cJSON *arr, rd_flow_t *f) {
  const cJSON *item;
  int i = 0;
  cJSON_ArrayForEach(item, arr) {
    size_t here = rd_push_index(c, i);
    if (!cJSON_IsObject(item)) return rd_fail(c, NULL, "expected an object");
    if (i < FLT_MAX_INTERIM) { /* the core keeps no more either */
      if (rd_response_head(c, a, item, "reason", RD_REQUIRED, &f->interim[i]) < 0) return -1;
      f->interim_ptr[i] = &f->interim[i];
    }
    rd_pop(c, here);
    i++;
  }
  f->rec.flow.interim = f->interim_ptr;
  f->rec.flow.n_interim = i < FLT_MAX_INTERIM ? (size_t)i : FLT_MAX_INTERIM;
  return 0;
}

static int rd_interim_at(rd_ctx_t *c, rd_arena_t *a, const cJSON *obj, const char *key,
                         rd_flow_t *f) {
  const cJSON *arr;
  if (rd_array(c, obj, key, RD_OPTIONAL, &arr) < 0) return -1;
  if (arr == NULL) return 0;
  size_t at = rd_push_key(c, key);
  if (rd_interim(c, a, arr, f) < 0) return -1;
  rd_pop(c, at);
  return 0;
}

/* ---- the URL ------------------------------------------------------------- */

/* Scheme, host and port of the connection, and the request target: the
 * URL itself when `absolute`, else its path and query. */
static int rd_url(rd_ctx_t *c, rd_arena_t *a, const char *url, int absolute, rd_flow_t *f) {
  flt_conn_t *conn = &f->rec.conn;
  const char *p = strstr(url, "://");
  int https = strncasecmp(url, "https://", 8) == 0;

  rd_copy(f->rec.flow.scheme, sizeof(f->rec.flow.scheme), https ? "https" : "http");
  conn->kind = https ? FLT_CONN_HTTPS : FLT_CONN_HTTP;
  conn->client_tls = conn->upstream_tls = https;
  conn->server_port = https ? 443 : 80;
  const char *auth = p ? p + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memchr(auth, '@', alen); /* user info is not the host */
  if (at) {
    alen -= (size_t)(at + 1 - auth);
    auth = at + 1;
  }
  const char *host = auth, *colon = NULL;
  size_t hlen = alen;
  if (auth[0] == '[') {
    const char *rb = memchr(auth, ']', alen);
    host = auth + 1;
    hlen = rb ? (size_t)(rb - host) : alen - 1;
    colon = rb && rb + 1 < auth + alen && rb[1] == ':' ? rb + 1 : NULL;
  } else {
    colon = memchr(auth, ':', alen);
    if (colon) hlen = (size_t)(colon - auth);
  }
  if (colon) {
    long port = strtol(colon + 1, NULL, 10);
    if (port > 0 && port < 65536) conn->server_port = (uint16_t)port;
  }
  snprintf(conn->server_host, sizeof(conn->server_host), "%.*s", (int)hlen, host);
  const char *rest = auth + alen;
  char *target = rd_alloc(a, strlen(rest) + 2);
  if (target == NULL) return rd_oom(c);
  snprintf(target, strlen(rest) + 2, "%s%s", rest[0] == '/' ? "" : "/", rest);
  f->fwd[0].url = absolute ? url : target;
  f->rec.flow.url = (char *)url;
  return 0;
}

/* ---- times --------------------------------------------------------------- */

/* "2024-05-01T12:00:00.123Z" or "...+02:00"; 0 when it does not parse
 * (the start time is not shown; durations come from the timings). */
static uint64_t rd_iso_time(const char *s) {
  struct tm tm = {0};
  int y, mo, d, h, mi, n = 0;
  double sec;
  if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
      y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      sec < 0 || sec >= 61)
    return 0;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  int64_t t = (int64_t)timegm(&tm);
  int oh, om;
  const char *z = s + n;
  if ((z[0] == '+' || z[0] == '-') && sscanf(z + 1, "%2d:%2d", &oh, &om) == 2)
    t -= (z[0] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
  if (t < 0) return 0;
  return (uint64_t)t * 1000000u + (uint64_t)(sec * 1e6 + 0.5);
}

/* send, wait and receive (ms; -1 or absent: 0) after the start. */
static int rd_timings(rd_ctx_t *c, const cJSON *obj, flt_flow_t *fl) {
  static const char *const keys[3] = {"send", "wait", "receive"};
  uint64_t *stamps[3] = {&fl->t_req_end_us, &fl->t_resp_head_us, &fl->t_end_us};
  const cJSON *t;
  uint64_t at = fl->t_start_us;

  if (rd_object(c, obj, "timings", RD_OPTIONAL, &t) < 0) return -1;
  size_t here = rd_push_key(c, "timings");
  for (int i = 0; i < 3; i++) {
    double ms = 0;
    if (t && rd_number(c, t, keys[i], RD_OPTIONAL, -1, RD_MAX_MS, 0, &ms, NULL) < 0) return -1;
    at += ms > 0 ? (uint64_t)(ms * 1000.0 + 0.5) : 0;
    *stamps[i] = at;
  }
  rd_pop(c, here);
  return 0;
}

/* ---- TLS facts ------------------------------------------------------------- */

static int rd_tls(rd_ctx_t *c, const cJSON *obj, const char *key, flt_conn_t *conn) {
  const cJSON *t, *up = NULL;
  const char *v[7] = {0}, *u[4] = {0};
  static const char *const names[7] = {"version", "cipher", "sni", "alpn", "ja3", "ja4", NULL};
  static const char *const up_names[4] = {"version", "cipher", "alpn", "verify"};

  if (rd_object(c, obj, key, RD_OPTIONAL, &t) < 0) return -1;
  if (t == NULL) return 0;
  size_t here = rd_push_key(c, key);
  for (int i = 0; names[i]; i++)
    if (rd_string(c, t, names[i], RD_OPTIONAL, &v[i]) < 0) return -1;
  if (rd_object(c, t, "upstream", RD_OPTIONAL, &up) < 0) return -1;
  size_t uhere = rd_push_key(c, "upstream");
  for (int i = 0; up && i < 4; i++)
    if (rd_string(c, up, up_names[i], RD_OPTIONAL, &u[i]) < 0) return -1;
  rd_pop(c, uhere);
  rd_pop(c, here);
  conn->client_tls = 1;
  rd_copy(conn->tls_version, sizeof(conn->tls_version), v[0]);
  rd_copy(conn->cipher, sizeof(conn->cipher), v[1]);
  rd_copy(conn->sni, sizeof(conn->sni), v[2]);
  rd_copy(conn->alpn, sizeof(conn->alpn), v[3]);
  rd_copy(conn->ja3, sizeof(conn->ja3), v[4]);
  rd_copy(conn->ja4, sizeof(conn->ja4), v[5]);
  conn->upstream_tls = up != NULL;
  rd_copy(conn->up_tls_version, sizeof(conn->up_tls_version), u[0]);
  rd_copy(conn->up_cipher, sizeof(conn->up_cipher), u[1]);
  rd_copy(conn->up_alpn, sizeof(conn->up_alpn), u[2]);
  rd_copy(conn->up_verify, sizeof(conn->up_verify), u[3]);
  return 0;
}

/* ---- bodies ---------------------------------------------------------------- */

/* `text` (base64 when `b64`) into body; the wire size from `wire`
 * (negative: unknown, then the recorded length). */
static int rd_body(rd_ctx_t *c, rd_arena_t *a, const char *key, const char *text, int b64,
                   double wire, flt_rec_body_t *body) {
  uint8_t *data = (uint8_t *)text;
  size_t len = text ? strlen(text) : 0;
  int rc = b64 && text ? rd_base64(a, text, &data, &len) : 0;
  if (rc == -2) return rd_oom(c);
  if (rc < 0) return rd_fail(c, key, "invalid base64");
  body->present = text != NULL;
  body->data = data;
  body->len = len;
  body->wire_bytes = wire >= 0 ? (uint64_t)wire : len;
  return 0;
}

/* A JSONL MESSAGE: head and body (jsonl.c). */
static int rd_jsonl_message(rd_ctx_t *c, rd_arena_t *a, const cJSON *m, flt_dir_t dir,
                            rd_flow_t *f) {
  flt_head_t *h = &f->fwd[dir];
  flt_rec_body_t *b = &f->rec.body[dir];
  const char *ver, *body, *enc, *derr;
  double wire;
  if (rd_string(c, m, "httpVersion", RD_OPTIONAL, &ver) < 0 || rd_headers(c, a, m, h) < 0 ||
      rd_head_bytes(c, m, h) < 0 ||
      rd_number(c, m, "bodySize", RD_OPTIONAL, -1, RD_MAX_BYTES, 1, &wire, NULL) < 0 ||
      rd_string(c, m, "body", RD_OPTIONAL, &body) < 0 ||
      rd_string(c, m, "bodyEncoding", RD_OPTIONAL, &enc) < 0 ||
      rd_bool(c, m, "bodyTruncated", &b->truncated) < 0 ||
      rd_string(c, m, "decodeError", RD_OPTIONAL, &derr) < 0)
    return -1;
  if (enc && strcmp(enc, "utf8") != 0 && strcmp(enc, "base64") != 0)
    return rd_fail(c, "bodyEncoding", "expected \"utf8\" or \"base64\"");
  rd_version(ver, h);
  b->decode_error = derr;
  if (rd_body(c, a, "body", body, enc && strcmp(enc, "base64") == 0, wire, b) < 0) return -1;
  if (dir == FLT_DIR_REQUEST)
    f->rec.flow.req_body_bytes = b->wire_bytes;
  else
    f->rec.flow.resp_body_bytes = b->wire_bytes;
  return 0;
}

static int rd_jsonl_message_at(rd_ctx_t *c, rd_arena_t *a, const cJSON *obj, const char *key,
                               flt_dir_t dir, rd_flow_t *f) {
  const cJSON *m;
  if (rd_object(c, obj, key, dir == FLT_DIR_REQUEST, &m) < 0) return -1;
  if (m == NULL) return 0;
  size_t here = rd_push_key(c, key);
  if (rd_jsonl_message(c, a, m, dir, f) < 0) return -1;
  rd_pop(c, here);
  if (dir == FLT_DIR_RESPONSE) f->rec.flow.has_response = 1;
  return 0;
}

/* requestReceived / responseReceived: the head as received, when an
 * action changed it; flow.req/resp then point there, *_sent at fwd[]. */
static int rd_jsonl_received(rd_ctx_t *c, rd_arena_t *a, const cJSON *obj, const char *key,
                             flt_dir_t dir, rd_flow_t *f) {
  const cJSON *m;
  const char *ver;
  if (rd_object(c, obj, key, RD_OPTIONAL, &m) < 0) return -1;
  if (m == NULL || (dir == FLT_DIR_RESPONSE && !f->rec.flow.has_response)) return 0;
  size_t here = rd_push_key(c, key);
  flt_head_t *h = &f->rcv[dir];
  *h = f->fwd[dir]; /* request line and status line are not edited */
  if (rd_string(c, m, "httpVersion", RD_OPTIONAL, &ver) < 0 || rd_headers(c, a, m, h) < 0 ||
      rd_head_bytes(c, m, h) < 0)
    return -1;
  rd_version(ver, h);
  rd_pop(c, here);
  if (dir == FLT_DIR_REQUEST)
    f->rec.flow.req_sent = &f->fwd[dir];
  else
    f->rec.flow.resp_sent = &f->fwd[dir];
  return 0;
}

/* Flow-level facts both formats share: error, tags. */
static void rd_error_tags(rd_flow_t *f, const char *error, const char *tags) {
  f->rec.flow.error = error;
  rd_copy(f->rec.flow.tags, sizeof(f->rec.flow.tags), tags);
}

/* The heads into the flow: as received when recorded, else as forwarded. */
static void rd_finish(rd_flow_t *f) {
  flt_flow_t *fl = &f->rec.flow;
  fl->conn = &f->rec.conn;
  fl->req = fl->req_sent ? f->rcv[0] : f->fwd[0];
  fl->resp = fl->resp_sent ? f->rcv[1] : f->fwd[1];
  if (!fl->has_response) memset(&fl->resp, 0, sizeof(fl->resp));
}

/* ---- JSONL ------------------------------------------------------------------- */

static int rd_jsonl_conn(rd_ctx_t *c, const cJSON *obj, rd_flow_t *f) {
  const char *client, *server;
  double id, conn_id;
  if (rd_number(c, obj, "id", RD_OPTIONAL, 0, RD_MAX_BYTES, 1, &id, NULL) < 0 ||
      rd_number(c, obj, "conn", RD_OPTIONAL, 0, RD_MAX_BYTES, 1, &conn_id, NULL) < 0 ||
      rd_string(c, obj, "client", RD_OPTIONAL, &client) < 0 ||
      rd_string(c, obj, "server", RD_OPTIONAL, &server) < 0)
    return -1;
  f->rec.flow.id = (uint64_t)id;
  f->rec.conn.id = (uint64_t)conn_id;
  rd_copy(f->rec.conn.client, sizeof(f->rec.conn.client), client ? client : "-");
  rd_copy(f->rec.conn.server_addr, sizeof(f->rec.conn.server_addr), server);
  return 0;
}

int rd_flow_from_jsonl(rd_flow_t *f, rd_arena_t *a, const cJSON *obj, rd_ctx_t *c) {
  const char *url, *method, *reason, *started, *error, *tags;
  double status;

  memset(f, 0, sizeof(*f));
  if (!cJSON_IsObject(obj)) return rd_fail(c, NULL, "expected a JSON object (one flow)");
  if (rd_string(c, obj, "url", RD_REQUIRED, &url) < 0 ||
      rd_string(c, obj, "method", RD_REQUIRED, &method) < 0 ||
      rd_string(c, obj, "started", RD_OPTIONAL, &started) < 0 ||
      rd_number(c, obj, "status", RD_OPTIONAL, 0, 999, 1, &status, NULL) < 0 ||
      rd_string(c, obj, "reason", RD_OPTIONAL, &reason) < 0 ||
      rd_string(c, obj, "error", RD_OPTIONAL, &error) < 0 ||
      rd_string(c, obj, "tags", RD_OPTIONAL, &tags) < 0 || rd_jsonl_conn(c, obj, f) < 0 ||
      rd_url(c, a, url, strncasecmp(url, "http://", 7) == 0, f) < 0)
    return -1;
  /* Set before the heads as received copy the request and status lines. */
  f->fwd[0].method = method;
  f->fwd[1].status = (int)status;
  f->fwd[1].reason = reason ? reason : "";
  if (rd_jsonl_message_at(c, a, obj, "request", FLT_DIR_REQUEST, f) < 0 ||
      rd_jsonl_message_at(c, a, obj, "response", FLT_DIR_RESPONSE, f) < 0 ||
      rd_interim_at(c, a, obj, "interim", f) < 0 ||
      rd_jsonl_received(c, a, obj, "requestReceived", FLT_DIR_REQUEST, f) < 0 ||
      rd_jsonl_received(c, a, obj, "responseReceived", FLT_DIR_RESPONSE, f) < 0 ||
      rd_tls(c, obj, "tls", &f->rec.conn) < 0 ||
      rd_ws_messages(c, a, obj, "websocket", 0, &f->rec) < 0)
    return -1;
  f->rec.flow.t_start_us = rd_iso_time(started);
  if (rd_timings(c, obj, &f->rec.flow) < 0) return -1;
  rd_error_tags(f, error, tags);
  rd_finish(f);
  return 0;
}

/* ---- HAR ---------------------------------------------------------------------- */

/* request.postData / response.content: text, encoding, _decodeError. */
static int rd_har_body(rd_ctx_t *c, rd_arena_t *a, const cJSON *msg, const char *key,
                       const char *size_key, flt_dir_t dir, rd_flow_t *f) {
  const cJSON *o;
  const char *text = NULL, *enc = NULL, *derr = NULL;
  double wire;
  int known;
  flt_rec_body_t *b = &f->rec.body[dir];

  if (rd_object(c, msg, key, RD_OPTIONAL, &o) < 0 ||
      rd_number(c, msg, size_key, RD_OPTIONAL, -1, RD_MAX_BYTES, 1, &wire, &known) < 0 ||
      rd_bool(c, msg, "_bodyTruncated", &b->truncated) < 0)
    return -1;
  size_t here = rd_push_key(c, key);
  if (o && (rd_string(c, o, "text", RD_OPTIONAL, &text) < 0 ||
            rd_string(c, o, "encoding", RD_OPTIONAL, &enc) < 0 ||
            rd_string(c, o, "_decodeError", RD_OPTIONAL, &derr) < 0))
    return -1;
  if (rd_body(c, a, "text", text, enc && strcasecmp(enc, "base64") == 0, known ? wire : -1, b) < 0)
    return -1;
  rd_pop(c, here);
  b->decode_error = derr;
  return 0;
}

static int rd_har_request(rd_ctx_t *c, rd_arena_t *a, const cJSON *e, int absolute_http,
                          rd_flow_t *f) {
  const cJSON *q;
  const char *method, *url, *ver;
  if (rd_object(c, e, "request", RD_REQUIRED, &q) < 0) return -1;
  size_t here = rd_push_key(c, "request");
  if (rd_string(c, q, "method", RD_REQUIRED, &method) < 0 ||
      rd_string(c, q, "url", RD_REQUIRED, &url) < 0 ||
      rd_string(c, q, "httpVersion", RD_OPTIONAL, &ver) < 0 ||
      rd_headers(c, a, q, &f->fwd[0]) < 0 || rd_head_bytes(c, q, &f->fwd[0]) < 0 ||
      rd_url(c, a, url, absolute_http && strncasecmp(url, "http://", 7) == 0, f) < 0 ||
      rd_har_body(c, a, q, "postData", "bodySize", FLT_DIR_REQUEST, f) < 0)
    return -1;
  rd_pop(c, here);
  f->fwd[0].method = method;
  rd_version(ver, &f->fwd[0]);
  f->rec.flow.req_body_bytes = f->rec.body[0].wire_bytes;
  return 0;
}

static int rd_har_response(rd_ctx_t *c, rd_arena_t *a, const cJSON *e, rd_flow_t *f,
                           const char **error) {
  const cJSON *r;
  if (rd_object(c, e, "response", RD_REQUIRED, &r) < 0) return -1;
  size_t here = rd_push_key(c, "response");
  if (rd_response_head(c, a, r, "statusText", RD_REQUIRED, &f->fwd[1]) < 0 ||
      rd_har_body(c, a, r, "content", "bodySize", FLT_DIR_RESPONSE, f) < 0 ||
      rd_interim_at(c, a, r, "_interimResponses", f) < 0 ||
      rd_string(c, r, "_error", RD_OPTIONAL, error) < 0) /* browsers: a failed request */
    return -1;
  rd_pop(c, here);
  f->rec.flow.has_response = f->fwd[1].status != 0;
  f->rec.flow.resp_body_bytes = f->rec.body[1].wire_bytes;
  return 0;
}

/* serverIPAddress and the URL's port: "ip:port" as the core has it. */
static void rd_har_server(flt_conn_t *conn, const char *ip) {
  if (ip == NULL || ip[0] == '\0') return;
  snprintf(conn->server_addr, sizeof(conn->server_addr), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip,
           (unsigned)conn->server_port);
}

int rd_flow_from_har(rd_flow_t *f, rd_arena_t *a, const cJSON *e, int tlspeek_har, rd_ctx_t *c) {
  const char *started, *ip, *conn_id, *error, *resp_error = NULL, *tags;

  memset(f, 0, sizeof(*f));
  if (!cJSON_IsObject(e)) return rd_fail(c, NULL, "expected an object (one entry)");
  if (rd_string(c, e, "startedDateTime", RD_OPTIONAL, &started) < 0 ||
      rd_string(c, e, "serverIPAddress", RD_OPTIONAL, &ip) < 0 ||
      rd_string(c, e, "connection", RD_OPTIONAL, &conn_id) < 0 ||
      rd_string(c, e, "_error", RD_OPTIONAL, &error) < 0 ||
      rd_string(c, e, "_tags", RD_OPTIONAL, &tags) < 0 ||
      rd_har_request(c, a, e, tlspeek_har, f) < 0 || rd_har_response(c, a, e, f, &resp_error) < 0 ||
      rd_tls(c, e, "_tls", &f->rec.conn) < 0 ||
      rd_ws_messages(c, a, e, "_webSocketMessages", 1, &f->rec) < 0)
    return -1;
  rd_copy(f->rec.conn.client, sizeof(f->rec.conn.client), "-"); /* not in a HAR */
  rd_har_server(&f->rec.conn, ip);
  if (conn_id) f->rec.conn.id = strtoull(conn_id, NULL, 10);
  f->rec.flow.t_start_us = rd_iso_time(started);
  if (rd_timings(c, e, &f->rec.flow) < 0) return -1;
  rd_error_tags(f, error ? error : resp_error, tags);
  rd_finish(f);
  return 0;
}
