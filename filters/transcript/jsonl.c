/* jsonl.c — one JSON object per completed flow, one line each
 * (transcript.h), written with one writev(2) per flow on the writer thread so
 * that `tail -f FILE | jq` sees whole lines as flows finish. Lines come in
 * the order flows complete.
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
 *    "error": "upstream closed" or null}
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
  tr_behind_t behind;
} flt_jsonl_t;

static void add_str_or_null(cJSON *o, const char *key, const char *s) {
  if (s)
    tr_json_add_str(o, key, s);
  else
    cJSON_AddNullToObject(o, key);
}

/* The body text itself is spliced in when the line is written. */
static cJSON *jsonl_message(const flt_head_t *h, uint64_t body_bytes, const tr_body_t *b,
                            flt_dir_t dir) {
  cJSON *o = cJSON_CreateObject();
  char ver[16];

  if (o == NULL) return NULL;
  tr_http_version(h, ver, sizeof(ver));
  cJSON_AddStringToObject(o, "httpVersion", ver);
  cJSON_AddItemToObject(o, "headers", tr_json_headers(h));
  cJSON_AddNumberToObject(o, "headersSize", h->head_bytes ? (double)h->head_bytes : -1);
  cJSON_AddNumberToObject(o, "bodySize", (double)body_bytes);
  cJSON_AddItemToObject(o, "body", tr_json_body_ref(dir));
  cJSON_AddStringToObject(o, "bodyEncoding", b->base64 ? "base64" : "utf8");
  cJSON_AddBoolToObject(o, "bodyTruncated", b->truncated);
  add_str_or_null(o, "decodeError", b->decode_error);
  return o;
}

/* The head as received, when an action changed it before it was passed
 * on ("request"/"response" are as forwarded); null otherwise. */
static void jsonl_received(cJSON *obj, const char *key, const tr_flow_t *r, flt_dir_t dir) {
  const flt_head_t *h = &r->received[dir];
  cJSON *o;
  char ver[16];

  if (!r->has_received[dir]) {
    cJSON_AddNullToObject(obj, key);
    return;
  }
  o = cJSON_AddObjectToObject(obj, key);
  if (o == NULL) return;
  tr_http_version(h, ver, sizeof(ver));
  cJSON_AddStringToObject(o, "httpVersion", ver);
  cJSON_AddItemToObject(o, "headers", tr_json_headers(h));
  cJSON_AddNumberToObject(o, "headersSize", h->head_bytes ? (double)h->head_bytes : -1);
}

static void jsonl_timings(cJSON *obj, const tr_flow_t *r) {
  cJSON *o = cJSON_AddObjectToObject(obj, "timings");
  tr_timings_t t;

  if (o == NULL) return;
  tr_timings_of(r, &t);
  cJSON_AddNumberToObject(o, "dns", t.dns);
  cJSON_AddNumberToObject(o, "connect", t.connect);
  cJSON_AddNumberToObject(o, "ssl", t.ssl);
  cJSON_AddNumberToObject(o, "send", t.send);
  cJSON_AddNumberToObject(o, "wait", t.wait);
  cJSON_AddNumberToObject(o, "receive", t.receive);
  cJSON_AddNumberToObject(o, "total", t.total);
}

static void jsonl_tls(cJSON *obj, const flt_flow_t *f) {
  const flt_conn_t *c = f->conn;
  cJSON *o, *up;

  if (!c->client_tls && strcmp(f->scheme, "https") != 0) {
    cJSON_AddNullToObject(obj, "tls");
    return;
  }
  o = cJSON_AddObjectToObject(obj, "tls");
  if (o == NULL) return;
  tr_json_add_str(o, "version", c->tls_version);
  tr_json_add_str(o, "cipher", c->cipher);
  tr_json_add_str(o, "sni", c->sni);
  tr_json_add_str(o, "alpn", c->alpn);
  tr_json_add_str(o, "ja3", c->ja3);
  tr_json_add_str(o, "ja4", c->ja4);
  if (c->up_tls_version[0] == '\0') {
    cJSON_AddNullToObject(o, "upstream");
    return;
  }
  up = cJSON_AddObjectToObject(o, "upstream");
  if (up == NULL) return;
  tr_json_add_str(up, "version", c->up_tls_version);
  tr_json_add_str(up, "cipher", c->up_cipher);
  tr_json_add_str(up, "alpn", c->up_alpn);
}

/* "ip:port" of the upstream, or the "host:port" the client asked for. */
static void jsonl_server(cJSON *obj, const flt_conn_t *c) {
  char buf[300];
  int v6 = strchr(c->server_host, ':') != NULL && c->server_host[0] != '[';

  if (c->server_addr[0]) {
    tr_json_add_str(obj, "server", c->server_addr);
    return;
  }
  snprintf(buf, sizeof(buf), "%s%s%s:%u", v6 ? "[" : "", c->server_host, v6 ? "]" : "",
           (unsigned)c->server_port);
  tr_json_add_str(obj, "server", buf);
}

static cJSON *jsonl_object(tr_flow_t *r, const tr_body_t bodies[2]) {
  const flt_flow_t *f = &r->flow;
  cJSON *o = cJSON_CreateObject();
  char iso[TR_ISO_LEN];

  if (o == NULL) return NULL;
  cJSON_AddNumberToObject(o, "id", (double)f->id);
  cJSON_AddNumberToObject(o, "conn", (double)f->conn->id);
  tr_json_add_str(o, "client", f->conn->client);
  jsonl_server(o, f->conn);
  tr_iso_time(f->t_start_us, iso, sizeof(iso));
  cJSON_AddStringToObject(o, "started", iso);
  tr_json_add_str(o, "url", f->url);
  tr_json_add_str(o, "method", f->req.method);
  cJSON_AddNumberToObject(o, "status", f->has_response ? f->resp.status : 0);
  tr_json_add_str(o, "reason", f->has_response ? f->resp.reason : "");
  cJSON_AddItemToObject(o, "request",
                        jsonl_message(&f->req, f->req_body_bytes, &bodies[0], FLT_DIR_REQUEST));
  if (f->has_response)
    cJSON_AddItemToObject(o, "response", jsonl_message(&f->resp, f->resp_body_bytes, &bodies[1],
                                                       FLT_DIR_RESPONSE));
  else
    cJSON_AddNullToObject(o, "response");
  cJSON_AddItemToObject(o, "interim", tr_json_interim(r));
  jsonl_received(o, "requestReceived", r, FLT_DIR_REQUEST);
  jsonl_received(o, "responseReceived", r, FLT_DIR_RESPONSE);
  jsonl_timings(o, r);
  jsonl_tls(o, f);
  add_str_or_null(o, "error", f->error);
  add_str_or_null(o, "tags", f->tags[0] ? f->tags : NULL);
  return o;
}

static int jsonl_write(void *sink, tr_job_t *job) {
  flt_jsonl_t *jl = sink;
  tr_flow_t *r = ((tr_flow_job_t *)job)->rec;
  const tr_body_t *bodies;
  struct iovec iov[TR_SPLICE_IOV + 1];
  cJSON *obj = NULL;
  char *text = NULL;
  int rc = 0;

  if (tr_flow_bodies(r, &bodies) == 0 && (obj = jsonl_object(r, bodies)) != NULL)
    text = cJSON_PrintUnformatted(obj);
  if (text) {
    /* cJSON escapes every newline inside strings, and so does the body
     * splice: this is one line, written with one writev(2). */
    int n = tr_json_splice(text, strlen(text), bodies, iov);
    iov[n].iov_base = (void *)"\n";
    iov[n].iov_len = 1;
    for (int i = 0; i <= n; i++)
      jl->size += (off_t)iov[i].iov_len;
    rc = tr_writev_all(jl->fd, iov, n + 1, -1);
    if (rc == 0) tr_behind_advance(&jl->behind, jl->fd, jl->size);
  } else {
    flt_log_error("JSONL file %s: out of memory; flow %llu not recorded", jl->path,
                  (unsigned long long)r->flow.id);
  }
  free(text);
  cJSON_Delete(obj);
  return rc;
}

static const tr_sink_ops_t jsonl_sink = {
    .write = jsonl_write,
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
  tr_behind_init(&jl->behind, jl->fd, 0);
  jl->rec.w = tr_writer_new("JSONL file", path, &jsonl_sink, jl, err, errlen);
  if (jl->rec.w == NULL) {
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
};
