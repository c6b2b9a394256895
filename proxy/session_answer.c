/* session_answer.c — tlspeek's own answers that keep the connection
 * (session_answer.h): the engine (px_answer_flow: wait for the request's
 * end and the flows before it, send the head, the body from memory or a
 * file read with uv_fs_read under backpressure, end the flow, parse the
 * held requests on) and the two actions that use it, --map-local and
 * --serve-from. */
#include "proxy/session_answer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/answer_local.h"
#include "proxy/answer_serve.h"
#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

#define ANSWER_CHUNK (64 * 1024) /* bytes of a file read at a time */

struct px_answer {
  px_session_t *s;      /* NULL once the session let go: a read in flight frees it */
  px_flow_t *flow;
  int req_done;         /* its request has fully arrived */
  int started;          /* the head is sent */
  int held;             /* a later request head waits in the client codec */
  int close_after;      /* the client asked to close after this answer */
  int head_only;        /* a HEAD request: no body */
  int decide_at_end;    /* --serve-match url+body: chosen at the request's end */
  uint64_t body_hash;   /* of the request body, for decide_at_end */
  flt_strbuf_t kept;    /* decide_at_end: the request as it would go upstream */
  int kept_over;        /* ... past PX_ANSWER_KEEP_MAX: not kept */
  flt_head_t *resp;     /* the response head for the events (px_head_copy) */
  flt_strbuf_t head;    /* the response head as sent */
  uint8_t *body;        /* the body in memory, or NULL */
  size_t body_len;
  int fd;               /* the file streamed, or -1 */
  uint64_t left;        /* file bytes still to send */
  int reading;          /* a uv_fs_read is in flight */
  uv_fs_t req;
  char buf[ANSWER_CHUNK];
};

static const flt_chain_t *chain_of(px_session_t *s) { return &s->w->shared->chain; }

static const char *reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : "Error";
  }
}

static void answer_free(px_answer_t *a) {
  if (a->fd >= 0) close(a->fd);
  free(a->resp);
  free(a->body);
  flt_strbuf_free(&a->head);
  flt_strbuf_free(&a->kept);
  free(a);
}

/* ---- the request: what the client asked for ---------------------------------- */

/* Does the client want the connection closed after this answer? */
static int client_closes(const flt_head_t *req, int *keep_alive_10) {
  const flt_header_t *c = flt_head_find(req, "connection");
  char v[128] = "";
  if (c) snprintf(v, sizeof(v), "%.*s", (int)c->value_len, c->value);
  *keep_alive_10 = req->http_minor == 0 && strcasestr(v, "keep-alive") != NULL;
  if (strcasestr(v, "close")) return 1;
  return req->http_major == 1 && req->http_minor == 0 && !*keep_alive_10;
}

/* The head: status line, the reply's fields, Content-Length, Connection. */
static int build_head(px_answer_t *a, const px_reply_t *r, uint64_t len, int keep_alive_10) {
  const char *reason = r->reason ? r->reason : reason_of(r->status);
  char line[160], cl[32];
  flt_header_t hs[64];
  size_t n = 0;
  snprintf(cl, sizeof(cl), "%llu", (unsigned long long)len);
  snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", r->status, reason);
  if (flt_strbuf_append(&a->head, line, strlen(line)) != 0) return -1;
  for (size_t i = 0; i < r->n_headers && n < 60; i++) hs[n++] = r->headers[i];
  /* 204 and 304 have no body and (204: must not) no length (RFC 9110 §8.6). */
  if (r->status == 204 || r->status == 304) a->head_only = 1;
  else hs[n++] = (flt_header_t){"Content-Length", 14, cl, strlen(cl)};
  if (a->close_after) hs[n++] = (flt_header_t){"Connection", 10, "close", 5};
  else if (keep_alive_10) hs[n++] = (flt_header_t){"Connection", 10, "keep-alive", 10};
  for (size_t i = 0; i < n; i++) {
    if (flt_strbuf_append(&a->head, hs[i].name, hs[i].name_len) != 0 ||
        flt_strbuf_append(&a->head, ": ", 2) != 0 ||
        flt_strbuf_append(&a->head, hs[i].value, hs[i].value_len) != 0 ||
        flt_strbuf_append(&a->head, "\r\n", 2) != 0)
      return -1;
  }
  if (flt_strbuf_append(&a->head, "\r\n", 2) != 0) return -1;
  flt_head_t h = {.http_major = 1, .http_minor = 1, .status = r->status, .reason = reason,
                  .headers = hs, .n_headers = n, .head_bytes = a->head.len};
  a->resp = px_head_copy(&h);
  return a->resp ? 0 : -1;
}

/* ---- sending --------------------------------------------------------------------- */

static void start(px_answer_t *a);
static void read_next(px_answer_t *a);

/* The answer is out: the flow ends, what the client sent after it is
 * parsed on (or the connection closes, when the client asked). */
static void done(px_answer_t *a) {
  px_session_t *s = a->s;
  int held = a->held, close_after = a->close_after;
  s->answer = NULL;
  answer_free(a);
  s->ops->flow_finish(s, NULL);
  if (s->state == PX_S_CLOSING) return;
  if (close_after) {
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    s->ops->maybe_finish(s);
    return;
  }
  if (held && (s->reading & PX_READ_HELD)) {
    px_session_set_reading(s, PX_READ_HELD, 0);
    px_batch_begin(s, 1);
    px_codec_release(s->client.codec);
    px_batch_end(s, 1);
  }
  px_update_reading(s);
  px_session_timer_deadline_update(s);
}

static void on_read(uv_fs_t *req) {
  px_answer_t *a = req->data;
  ssize_t got = req->result;
  uv_fs_req_cleanup(req);
  a->reading = 0;
  px_session_t *s = a->s;
  if (s == NULL) { /* the session let go meanwhile */
    answer_free(a);
    return;
  }
  if (got <= 0) {
    char why[300];
    snprintf(why, sizeof(why), "--map-local: reading the file failed: %s",
             got == 0 ? "it is shorter than when it was opened" : uv_strerror((int)got));
    px_session_close(s, why); /* the head promised more bytes: cut the connection */
    return;
  }
  if ((uint64_t)got > a->left) got = (ssize_t)a->left;
  a->left -= (uint64_t)got;
  a->flow->flow.resp_body_bytes += (uint64_t)got;
  flt_emit_response_body(chain_of(s), &a->flow->flow, (const uint8_t *)a->buf, (size_t)got);
  px_send_client(s, a->buf, (size_t)got);
  if (s->state == PX_S_CLOSING) return;
  if (a->left == 0) {
    done(a);
    return;
  }
  if (px_leg_queued(&s->client) < PX_HIGH_WATER) read_next(a);
}

static void read_next(px_answer_t *a) {
  size_t want = a->left < ANSWER_CHUNK ? (size_t)a->left : ANSWER_CHUNK;
  uv_buf_t b = uv_buf_init(a->buf, (unsigned)want);
  a->req.data = a;
  int rc = uv_fs_read(a->s->timer.loop, &a->req, a->fd, &b, 1, -1, on_read);
  if (rc != 0) {
    char why[200];
    snprintf(why, sizeof(why), "--map-local: cannot read the file: %s", uv_strerror(rc));
    px_session_close(a->s, why);
    return;
  }
  a->reading = 1;
}

static void start(px_answer_t *a) {
  px_session_t *s = a->s;
  px_flow_t *n = a->flow;
  a->started = 1;
  n->resp_copy = a->resp; /* the flow owns it from here: its views outlive `a` */
  a->resp = NULL;
  n->flow.resp = *n->resp_copy;
  n->flow.has_response = 1;
  n->flow.t_resp_head_us = flt_now_us();
  flt_emit_response_head(chain_of(s), &n->flow);
  px_send_client(s, a->head.data, a->head.len);
  if (s->state == PX_S_CLOSING) return;
  if (a->fd >= 0 && a->left > 0 && !a->head_only) {
    read_next(a);
    return;
  }
  if (a->body_len > 0 && !a->head_only) {
    n->flow.resp_body_bytes = a->body_len;
    flt_emit_response_body(chain_of(s), &n->flow, a->body, a->body_len);
    px_send_client(s, a->body, a->body_len);
    if (s->state == PX_S_CLOSING) return;
  }
  done(a);
}

/* Sends the answer once its request is complete and it is the oldest flow. */
static void maybe_start(px_session_t *s) {
  px_answer_t *a = s->answer;
  if (a && !a->started && !a->decide_at_end && a->req_done && s->flows.head == a->flow &&
      s->state != PX_S_CLOSING && s->end < PX_END_FLUSHING)
    start(a);
}

static px_answer_t *answer_new(px_session_t *s, px_flow_t *n) {
  px_answer_t *a = calloc(1, sizeof(*a));
  if (a == NULL) return NULL;
  a->s = s;
  a->flow = n;
  a->fd = -1;
  a->req_done = s->flows.req != n; /* its request has arrived already */
  a->head_only = strcmp(n->flow.req.method, "HEAD") == 0;
  flt_strbuf_init(&a->head, PX_HTTP_MAX_HEAD + 8192);
  flt_strbuf_init(&a->kept, PX_ANSWER_KEEP_MAX);
  return a;
}

/* Fills `a` (new, or waiting for its decision) with `r`. */
static int answer_set(px_answer_t *a, const px_reply_t *r) {
  int ka10 = 0;
  a->close_after = client_closes(&a->flow->flow.req, &ka10);
  uint64_t len = r->fd >= 0 ? r->file_len : r->body_len;
  a->fd = r->fd;
  a->left = r->fd >= 0 ? r->file_len : 0;
  if (r->fd < 0 && r->body_len > 0) {
    a->body = malloc(r->body_len);
    if (a->body == NULL) return -1;
    memcpy(a->body, r->body, r->body_len);
    a->body_len = r->body_len;
  }
  return build_head(a, r, len, ka10);
}

int px_answer_flow(px_session_t *s, px_flow_t *n, const px_reply_t *r) {
  px_answer_t *a = s->answer && s->answer->flow == n ? s->answer : answer_new(s, n);
  if (a == NULL) {
    if (r->fd >= 0) close(r->fd);
    return -1;
  }
  a->decide_at_end = 0;
  if (answer_set(a, r) != 0) {
    if (s->answer == a) s->answer = NULL;
    answer_free(a);
    return -1;
  }
  s->answer = a;
  maybe_start(s);
  return 0;
}

/* ---- the session's calls ------------------------------------------------------------ */

int px_answer_busy(const px_session_t *s) { return s->answer != NULL; }

/* The client's leaf normally mirrors the upstream's certificate, so the
 * upstream is connected before the client's handshake finishes. A flow
 * answered here must not need the upstream (offline, or the server
 * stopped): with --map-local or --serve-from the leaf is minted from the
 * SNI (or the CONNECT host) alone, and a forwarded request connects. */
int px_answer_mints_alone(const px_session_t *s) {
  const px_config_t *cfg = s->w->shared->cfg;
  return cfg->n_map_local > 0 || cfg->serve != NULL;
}

int px_answer_hold(px_session_t *s) {
  s->answer->held = 1;
  px_session_set_reading(s, PX_READ_HELD, 1);
  px_update_reading(s);
  return PX_CODEC_HOLD;
}

int px_answer_keeps_request(const px_session_t *s) {
  return s->answer && s->answer->decide_at_end && s->flows.req == s->answer->flow;
}

void px_answer_keep(px_session_t *s, const char *data, size_t len) {
  px_answer_t *a = s->answer;
  if (a->kept_over) return;
  if (flt_strbuf_append(&a->kept, data, len) != 0) {
    a->kept_over = 1; /* past PX_ANSWER_KEEP_MAX (or out of memory) */
    flt_strbuf_free(&a->kept);
  }
}

int px_answer_take_body(px_session_t *s, const char *data, size_t len) {
  if (s->answer == NULL || s->flows.req != s->answer->flow) return 0;
  if (s->answer->decide_at_end) px_answer_keep(s, data, len);
  return 1;
}

int px_answer_take_kept(px_session_t *s, flt_strbuf_t *out) {
  px_answer_t *a = s->answer;
  if (a == NULL || !a->decide_at_end || a->kept_over) return -1;
  *out = a->kept;
  flt_strbuf_init(&a->kept, 0);
  s->answer = NULL;
  answer_free(a);
  return 0;
}

void px_answer_request_body(px_session_t *s, const char *data, size_t len) {
  if (px_answer_keeps_request(s))
    s->answer->body_hash = px_serve_hash(s->answer->body_hash, data, len);
}

void px_answer_next(px_session_t *s) { maybe_start(s); }

void px_answer_drained(px_session_t *s) {
  px_answer_t *a = s->answer;
  if (a && a->started && a->fd >= 0 && !a->reading && a->left > 0 &&
      px_leg_queued(&s->client) < PX_LOW_WATER)
    read_next(a);
}

void px_answer_forget(px_session_t *s, const px_flow_t *n) {
  px_answer_t *a = s->answer;
  if (a == NULL || (n != NULL && a->flow != n)) return;
  s->answer = NULL;
  if (a->reading) {
    a->s = NULL; /* on_read frees it */
    return;
  }
  answer_free(a);
}

/* ---- --map-local ------------------------------------------------------------------ */

/* tlspeek's own short text answer (404, 403) for flow `n`. */
static void answer_text(px_session_t *s, px_flow_t *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void answer_text(px_session_t *s, px_flow_t *n, int status, const char *fmt, ...) {
  char text[5000];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(text, sizeof(text) - 1, fmt, ap);
  va_end(ap);
  if (len < 0) len = 0;
  if ((size_t)len > sizeof(text) - 2) len = (int)sizeof(text) - 2;
  text[len++] = '\n';
  flt_header_t ct = {"Content-Type", 12, "text/plain; charset=utf-8", 25};
  px_reply_t r = {.status = status, .headers = &ct, .n_headers = 1,
                  .body = (const uint8_t *)text, .body_len = (size_t)len, .fd = -1};
  if (px_answer_flow(s, n, &r) != 0) px_session_close(s, "out of memory");
}

static int map_local(px_session_t *s, px_flow_t *n) {
  const px_config_t *cfg = s->w->shared->cfg;
  for (int i = 0; i < cfg->n_map_local; i++) {
    const px_map_local_t *m = &cfg->map_local[i];
    if (!flt_expr_match_flow(m->expr, &n->flow, NULL)) continue;
    px_local_file_t lf;
    px_map_local_resolve(m, n->flow.url, &lf);
    if (lf.status == 404) {
      flt_flow_action(&n->flow, "map-local", "no file %s, answered 404", lf.path);
      answer_text(s, n, 404, "tlspeek: --map-local has no file for this request: %s (%s)",
                  lf.path, lf.why);
    } else if (lf.status == 403) {
      flt_flow_action(&n->flow, "map-local", "refused path %s (%s), answered 403", lf.path,
                      lf.why);
      answer_text(s, n, 403, "tlspeek: --map-local refused the path %s: %s (only files inside "
                  "%s are served)", lf.path, lf.why, m->root);
    } else {
      flt_flow_action(&n->flow, "map-local", "answered from %s (%s, %llu byte%s)", lf.path,
                      lf.type, (unsigned long long)lf.size, lf.size == 1 ? "" : "s");
      flt_header_t ct = {"Content-Type", 12, lf.type, strlen(lf.type)};
      px_reply_t r = {.status = 200, .headers = &ct, .n_headers = 1, .fd = lf.fd,
                      .file_len = lf.size};
      if (px_answer_flow(s, n, &r) != 0) px_session_close(s, "out of memory");
    }
    return 1;
  }
  return 0;
}

/* ---- --serve-from ------------------------------------------------------------------ */

/* Does the request carry a body (Content-Length above 0, or chunked)? */
static int has_body(const flt_head_t *req) {
  const flt_header_t *cl = flt_head_find(req, "content-length");
  if (flt_head_find(req, "transfer-encoding")) return 1;
  return cl && !(cl->value_len == 1 && cl->value[0] == '0');
}

/* Answers flow `n` from the recording: 1 when answered (a response, or a
 * miss with --serve-miss 404), 0 to forward it. */
static int serve_pick(px_session_t *s, px_flow_t *n, uint64_t hash) {
  const px_config_t *cfg = s->w->shared->cfg;
  const char *method = n->flow.req.method, *url = n->flow.url;
  const char *with = cfg->serve_match_body ? " with this request body" : "";
  unsigned nth = 0, of = 0;
  const px_served_t *r = px_serve_pick(cfg->serve, method, url, hash, &nth, &of);
  if (r == NULL && !cfg->serve_miss_404) return 0;
  if (r == NULL) {
    flt_flow_action(&n->flow, "served", "no recorded response for %s %s%s, answered 404 "
                    "(--serve-miss 404)", method, url, with);
    answer_text(s, n, 404, "tlspeek: no recorded response for %s %s%s in %s (--serve-from, "
                "--serve-miss 404)", method, url, with, cfg->serve_from);
    return 1;
  }
  flt_flow_action(&n->flow, "served", "%d from %s of %s (response %u of %u for this request, "
                  "%zu byte%s%s%s%s%s)", r->status, r->where, cfg->serve_from, nth, of,
                  r->body_len, r->body_len == 1 ? "" : "s",
                  r->dropped_encoding[0] ? "; recorded decoded, Content-Encoding " : "",
                  r->dropped_encoding, r->dropped_encoding[0] ? " dropped" : "",
                  r->truncated ? "; the body as cut by the recording's --body-cap" : "");
  px_reply_t rep = {.status = r->status, .reason = r->reason && r->reason[0] ? r->reason : NULL,
                    .headers = r->headers, .n_headers = r->n_headers, .body = r->body,
                    .body_len = r->body_len, .fd = -1};
  if (px_answer_flow(s, n, &rep) != 0) px_session_close(s, "out of memory");
  return 1;
}

static int serve(px_session_t *s, px_flow_t *n) {
  const px_config_t *cfg = s->w->shared->cfg;
  if (cfg->serve == NULL) return 0;
  if (cfg->serve_match_body && has_body(&n->flow.req) &&
      px_serve_has(cfg->serve, n->flow.req.method, n->flow.url)) {
    /* Chosen by the body's hash at the request's end. */
    px_answer_t *a = answer_new(s, n);
    if (a == NULL) {
      px_session_close(s, "out of memory");
      return 1;
    }
    a->decide_at_end = 1;
    a->body_hash = PX_SERVE_HASH_INIT;
    s->answer = a;
    return 2;
  }
  return serve_pick(s, n, PX_SERVE_HASH_INIT);
}

void px_answer_continue(px_session_t *s, px_flow_t *n) {
  const flt_header_t *e = flt_head_find(&n->flow.req, "expect");
  if (e && s->answer && s->answer->flow == n && !s->answer->req_done &&
      s->flows.head == n && e->value_len == 12 && strncasecmp(e->value, "100-continue", 12) == 0)
    px_send_client(s, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

int px_answer_request_head(px_session_t *s, px_flow_t *n) {
  int local = map_local(s, n) ? 1 : serve(s, n);
  if (local != 0) px_answer_continue(s, n);
  return local;
}

int px_answer_request_end(px_session_t *s, const px_flow_t *f) {
  px_answer_t *a = s->answer;
  if (a == NULL || a->flow != f) return 0;
  a->req_done = 1;
  if (!a->decide_at_end) {
    maybe_start(s);
    return 0;
  }
  /* A response: px_answer_flow fills `a` and starts it. */
  if (serve_pick(s, a->flow, a->body_hash)) return 0;
  if (!a->kept_over) return 1; /* no recorded body matched: upstream after all */
  flt_flow_action(&a->flow->flow, "served", "no recorded response for this request body, and "
                  "the request (over %u MiB) was not kept to forward: answered 413",
                  PX_ANSWER_KEEP_MAX >> 20);
  answer_text(s, a->flow, 413, "tlspeek: --serve-match url+body found no recorded response for "
              "this request body, and the request is too large (over %u MiB) to have been kept "
              "for forwarding", PX_ANSWER_KEEP_MAX >> 20);
  return 0;
}
