/* jsonl.c — one JSON object per completed flow, one line each
 * (transcript.h), written on the writer thread with one tr_out_write for all
 * the flows it found queued, so that `tail -f FILE | jq` sees whole lines as
 * flows finish. Lines come in the order flows complete.
 *
 * The shape (every key always present; null where it does not apply):
 *   {"id": 7, "conn": 3, "client": "127.0.0.1:51234",
 *    "server": "93.184.216.34:443"   (upstream address; "host:port" asked
 *                                     for when never connected),
 *    "started": "2024-05-01T12:00:00.123Z", "url": "https://...",
 *    "method": "GET", "status": 200 (0 without a response), "reason": "OK",
 *    "request":  MESSAGE   (as forwarded upstream: with the changes of
 *                           --set-header / --remove-header),
 *    "response": MESSAGE or null   (as passed on to the client, the same),
 *    "interim": [{"status": 100, "reason": "Continue", "httpVersion",
 *                 "headers"}]   (1xx responses relayed before the final
 *                               one, in order; [] when none),
 *    "trailers": [{"name", "value"}]   (the response's HTTP/2 trailers,
 *                                       gRPC's grpc-status; only when any),
 *    "requestReceived":  {"httpVersion", "headers", "headersSize"} or null
 *                        (the head as the client sent it, when an action
 *                        changed it; null when forwarded as received),
 *    "responseReceived": the same for the response, or null,
 *    "timings": {"dns", "connect", "ssl", "send", "wait", "receive",
 *                "total"}      (ms; same rules as HAR: -1 = n/a, dns/connect/
 *                               ssl only on a connection's first flow
 *                               and the first after a reconnection,
 *                               connect includes ssl),
 *    "tls": {"version", "cipher", "sni", "alpn",
 *            "upstream": {"version", "cipher", "alpn"} or null} or null,
 *    "error": "upstream closed" or null,
 *    "tags": "blocked" or null,
 *    "websocket": [WSMESSAGE]   (only on a WebSocket upgrade answered by 101;
 *                                the one key not always present)}
 *   WSMESSAGE = {"type": "send" (client to server) or "receive",
 *                "time": epoch seconds (ms precision), "opcode": 1 text,
 *                2 binary, 8 close, 9 ping, 10 pong, "data": the message
 *                (unmasked, inflated; a close's reason), "encoding": "utf8"
 *                or "base64", "size": bytes, "closeCode" and
 *                "closeReason" on a close with a code, "truncated": true
 *                when --body-cap cut the data}; then "websocketDropped":
 *                N when more than 100000 messages were not listed
 *   MESSAGE = {"httpVersion": "HTTP/1.1", "headers": [{"name","value"}],
 *              "headersSize": bytes or -1, "bodySize": bytes received
 *              (de-chunked, still content-encoded), "body": the body with
 *              Content-Encoding removed, "bodyEncoding": "utf8" or "base64",
 *              "bodyTruncated": bool (body_cap cut "body"),
 *              "decodeError": null, or why decoding failed (then "body" is
 *              the body as received)}
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "filters/transcript/transcript.h"
#include "filters/transcript/transcript_internal.h"

typedef struct flt_jsonl {
  tr_recorder_t rec; /* first: the shared handlers cast self to it */
  int fd;
  char path[512];
  off_t size; /* bytes written (writer thread) */
  tr_out_t out;
  tr_jw_t jw; /* the batch being written */
} flt_jsonl_t;

/* The body text is written from where it is (tr_jw_body). */
static void jsonl_message(tr_jw_t *w, const char *key, const flt_head_t *h, uint64_t body_bytes,
                          const tr_body_t *b) {
  char ver[16];

  tr_http_version(h, ver, sizeof(ver));
  tr_jw_open(w, key, '{');
  tr_jw_str(w, "httpVersion", ver);
  tr_jw_headers(w, "headers", h);
  tr_jw_num(w, "headersSize", h->head_bytes ? (double)h->head_bytes : -1);
  tr_jw_num(w, "bodySize", (double)body_bytes);
  tr_jw_body(w, "body", b);
  tr_jw_str(w, "bodyEncoding", b->base64 ? "base64" : "utf8");
  tr_jw_bool(w, "bodyTruncated", b->truncated);
  tr_jw_str_or_null(w, "decodeError", b->decode_error);
  tr_jw_close(w, '}');
}

/* The head as received, when an action changed it before it was passed
 * on ("request"/"response" are as forwarded); null otherwise. */
static void jsonl_received(tr_jw_t *w, const char *key, const tr_flow_t *r, flt_dir_t dir) {
  const flt_head_t *h = &r->received[dir];
  char ver[16];

  if (!r->has_received[dir]) {
    tr_jw_lit(w, key, "null");
    return;
  }
  tr_http_version(h, ver, sizeof(ver));
  tr_jw_open(w, key, '{');
  tr_jw_str(w, "httpVersion", ver);
  tr_jw_headers(w, "headers", h);
  tr_jw_num(w, "headersSize", h->head_bytes ? (double)h->head_bytes : -1);
  tr_jw_close(w, '}');
}

static void jsonl_timings(tr_jw_t *w, const tr_flow_t *r) {
  tr_timings_t t;

  tr_timings_of(r, &t);
  tr_jw_open(w, "timings", '{');
  tr_jw_num(w, "dns", t.dns);
  tr_jw_num(w, "connect", t.connect);
  tr_jw_num(w, "ssl", t.ssl);
  tr_jw_num(w, "send", t.send);
  tr_jw_num(w, "wait", t.wait);
  tr_jw_num(w, "receive", t.receive);
  tr_jw_num(w, "total", t.total);
  tr_jw_close(w, '}');
}

/* The value of "tls": the connection's facts only (tr_jw_kcached). */
static void tls_value(tr_jw_t *w, const void *arg) {
  const flt_conn_t *c = arg;

  tr_jw_raw(w, "{", 1);
  tr_jw_str(w, "version", c->tls_version);
  tr_jw_str(w, "cipher", c->cipher);
  tr_jw_str(w, "sni", c->sni);
  tr_jw_str(w, "alpn", c->alpn);
  tr_jw_str(w, "ja3", c->ja3);
  tr_jw_str(w, "ja4", c->ja4);
  if (c->up_tls_version[0] == '\0') {
    tr_jw_lit(w, "upstream", "null");
  } else {
    tr_jw_open(w, "upstream", '{');
    tr_jw_str(w, "version", c->up_tls_version);
    tr_jw_str(w, "cipher", c->up_cipher);
    tr_jw_str(w, "alpn", c->up_alpn);
    tr_jw_close(w, '}');
  }
  tr_jw_close(w, '}');
}

static void jsonl_tls(tr_jw_t *w, const tr_flow_t *r) {
  const flt_flow_t *f = &r->flow;

  if (!f->conn->client_tls && strcmp(f->scheme, "https") != 0) {
    tr_jw_lit(w, "tls", "null");
    return;
  }
  tr_jw_kcached(w, "tls", 3, r->conn, TR_FRAG_JSONL_TLS, tls_value, f->conn);
}

/* "ip:port" of the upstream, or the "host:port" the client asked for. */
static void jsonl_server(tr_jw_t *w, const flt_conn_t *c) {
  char buf[300];
  int v6 = strchr(c->server_host, ':') != NULL && c->server_host[0] != '[';

  if (c->server_addr[0]) {
    tr_jw_str(w, "server", c->server_addr);
    return;
  }
  snprintf(buf, sizeof(buf), "%s%s%s:%u", v6 ? "[" : "", c->server_host, v6 ? "]" : "",
           (unsigned)c->server_port);
  tr_jw_str(w, "server", buf);
}

void tr_jsonl_object(tr_jw_t *w, const char *key, tr_flow_t *r, const tr_body_t bodies[2]) {
  const flt_flow_t *f = &r->flow;
  char iso[TR_ISO_LEN];

  tr_iso_time(f->t_start_us, iso, sizeof(iso));
  tr_jw_open(w, key, '{');
  tr_jw_num(w, "id", (double)f->id);
  tr_jw_num(w, "conn", (double)f->conn->id);
  tr_jw_str(w, "client", f->conn->client);
  jsonl_server(w, f->conn);
  tr_jw_str(w, "started", iso);
  tr_jw_str(w, "url", f->url);
  tr_jw_str(w, "method", f->req.method);
  tr_jw_num(w, "status", f->has_response ? f->resp.status : 0);
  tr_jw_str(w, "reason", f->has_response ? f->resp.reason : "");
  jsonl_message(w, "request", &f->req, f->req_body_bytes, &bodies[0]);
  if (f->has_response)
    jsonl_message(w, "response", &f->resp, f->resp_body_bytes, &bodies[1]);
  else
    tr_jw_lit(w, "response", "null");
  tr_jw_interim(w, "interim", r);
  if (r->has_trailers) tr_jw_headers(w, "trailers", &r->trailers);
  jsonl_received(w, "requestReceived", r, FLT_DIR_REQUEST);
  jsonl_received(w, "responseReceived", r, FLT_DIR_RESPONSE);
  jsonl_timings(w, r);
  jsonl_tls(w, r);
  tr_jw_str_or_null(w, "error", f->error);
  tr_jw_str_or_null(w, "tags", f->tags[0] ? f->tags : NULL);
  if (f->actions) tr_jw_actions(w, "actions", f->actions);
  tr_ws_log_write(w, "websocket", r, 1);
  tr_jw_close(w, '}');
}

/* Appends what w holds with one tr_out_write. */
static int jsonl_append(flt_jsonl_t *jl) {
  struct iovec *iov;
  off_t bytes = (off_t)(jl->jw.len + jl->jw.hole_bytes);
  int n = tr_jw_iov(&jl->jw, 0, &iov), rc;

  if (n < 0) return ENOMEM;
  rc = tr_out_write(&jl->out, iov, n, jl->size, jl->size + bytes);
  if (rc) return rc;
  jl->size += bytes;
  return 0;
}

static void jsonl_batch_entry(void *sink, tr_jw_t *w, tr_flow_t *r, const tr_body_t *bodies,
                              int n) {
  (void)sink;
  (void)n;
  tr_jsonl_object(w, NULL, r, bodies);
  /* Every newline inside strings is escaped: this is one line. */
  tr_jw_raw(w, "\n", 1);
}

static int jsonl_batch_append(void *sink, int n) {
  (void)n;
  return jsonl_append(sink);
}

static const tr_batch_ops_t jsonl_batch = {jsonl_batch_entry, jsonl_batch_append, "JSONL file"};

/* Whole lines, one write per batch. */
static int jsonl_write_list(void *sink, tr_job_t *list) {
  flt_jsonl_t *jl = sink;
  return tr_jw_write_list(jl, &jl->jw, list, jl->path, &jsonl_batch);
}

static const tr_sink_ops_t jsonl_sink = {
    .write_list = jsonl_write_list,
    .free_job = tr_flow_job_free,
};

void *flt_jsonl_new(const char *path, size_t body_cap, char *err, size_t errlen) {
  flt_jsonl_t *jl = calloc(1, sizeof(*jl));

  if (jl == NULL) {
    snprintf(err, errlen, "JSONL file %s: out of memory", path);
    return NULL;
  }
  jl->rec.slot = -1;
  jl->rec.body_cap = body_cap;
  snprintf(jl->path, sizeof(jl->path), "%s", path);
  jl->fd = tr_open("JSONL file", path, O_WRONLY | O_TRUNC, 0600, err, errlen);
  if (jl->fd < 0) {
    free(jl);
    return NULL;
  }
  tr_out_init(&jl->out, jl->fd, 0);
  jl->rec.w = tr_writer_new("JSONL file", path, &jsonl_sink, jl, err, errlen);
  if (jl->rec.w == NULL) {
    tr_out_free(&jl->out);
    close(jl->fd);
    free(jl);
    return NULL;
  }
  return jl;
}

void flt_jsonl_set_slot(void *self, int slot) {
  flt_jsonl_t *jl = self;
  tr_rec_set_slot(&jl->rec, slot);
}

void flt_jsonl_free(void *self) {
  flt_jsonl_t *jl = self;

  if (jl == NULL) return;
  tr_writer_free(jl->rec.w);
  tr_jw_free(&jl->jw);
  tr_out_free(&jl->out);
  if (close(jl->fd) < 0) flt_log_warn("JSONL file %s: close: %s", jl->path, strerror(errno));
  free(jl);
}

const flt_ops_t flt_jsonl_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "jsonl",
    .on_request_head = tr_rec_on_request_head,
    .on_request_body = tr_rec_on_request_body,
    .on_response_head = tr_rec_on_response_head,
    .on_response_body = tr_rec_on_response_body,
    .on_flow_end = tr_rec_on_flow_end,
    .on_conn_close = tr_rec_on_conn_close,
    .on_shutdown = tr_rec_on_shutdown,
    .on_ws_message = tr_rec_on_ws_message,
};
