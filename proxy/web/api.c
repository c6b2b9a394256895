/* api.c — px_web_route (web_internal.h): the Host and token checks, the
 * page's files, and the /api routes of README.md ("Flow browser") over the
 * flow store. No sockets: server.c sends what this answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "filters/expr/expr.h"
#include "filters/transcript/transcript_internal.h"
#include "proxy/web/web_internal.h"

/* ---- helpers ------------------------------------------------------------------ */

/* What w holds (its holes filled) as the response's JSON body. */
static void resp_jw(px_web_resp_t *p, int status, tr_jw_t *w) {
  struct iovec *iov;
  int n = w->oom ? -1 : tr_jw_iov(w, 0, &iov);
  size_t total = w->len + w->hole_bytes, off = 0;
  char *buf = n >= 0 ? malloc(total ? total : 1) : NULL;

  if (buf == NULL) {
    px_web_resp_error(p, 500, "out of memory");
    return;
  }
  for (int i = 0; i < n; i++) {
    memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  free(p->body);
  p->status = status;
  p->type = "application/json";
  p->body = buf;
  p->body_len = off;
}

static void resp_text(px_web_resp_t *p, int status, flt_strbuf_t *b) {
  px_web_resp_json(p, status, b->data ? b->data : "", b->len);
}

/* "column 8: ..." of the expression compiler as a 0-based byte offset. */
static long error_pos(const char *text, const char *err) {
  long col;
  if (sscanf(err, "column %ld", &col) != 1 || col < 1) return -1;
  const unsigned char *p = (const unsigned char *)text;
  long chars = 1, off = 0;
  while (p[off] && chars < col) {
    off++;
    while ((p[off] & 0xC0) == 0x80) off++;
    chars++;
  }
  return off;
}

/* Compiles `text` ("" is no filter: *e NULL). 0, or -1 with the error
 * object {"error","pos"} in b (with `prefix` before it). */
static int compile(const char *text, struct flt_expr **e, flt_strbuf_t *b, const char *prefix) {
  char err[1024];
  *e = NULL;
  if (text == NULL || text[strspn(text, " \t")] == '\0') return 0;
  if ((*e = flt_expr_compile(text, FLT_EXPR_ALL_TERMS, err, sizeof(err))) != NULL) return 0;
  err[strcspn(err, "\n")] = '\0';
  flt_strbuf_appendf(b, "{%s\"error\":", prefix);
  px_web_json_string(b, err);
  flt_strbuf_appendf(b, ",\"pos\":%ld}", error_pos(text, err));
  return -1;
}

static int token_ok(const px_web_ctx_t *ctx, const px_web_req_t *req) {
  flt_strbuf_t q;
  const char *t = px_web_req_header(req, "X-Tlspeek-Token");
  int ok = 0;
  flt_strbuf_init(&q, 256);
  if (t == NULL && px_web_req_query(req, "token", &q)) t = q.data ? q.data : "";
  if (t && strlen(t) == 32) ok = CRYPTO_memcmp(t, ctx->token, 32) == 0;
  flt_strbuf_free(&q);
  return ok;
}

static int host_ok(const px_web_ctx_t *ctx, const char *host) {
  char buf[320];
  const char *names[] = {"127.0.0.1", "localhost", "[::1]"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(buf, sizeof(buf), "%s:%u", names[i], (unsigned)ctx->port);
    if (strcasecmp(host, buf) == 0) return 1;
  }
  return strcasecmp(host, ctx->bound) == 0;
}

static uint64_t query_u64(const px_web_req_t *req, const char *key, flt_strbuf_t *q) {
  if (!px_web_req_query(req, key, q) || q->data == NULL) return 0;
  return strtoull(q->data, NULL, 10);
}

/* ---- routes -------------------------------------------------------------------- */

static void api_info(px_web_ctx_t *ctx, px_web_resp_t *p) {
  flt_web_counts_t c;
  flt_strbuf_t b;
  flt_web_store_counts(ctx->o.store, &c);
  flt_strbuf_init(&b, 0);
  flt_strbuf_append(&b, "{\"version\":", 11);
  px_web_json_string(&b, ctx->o.version ? ctx->o.version : "");
  flt_strbuf_appendf(&b, ",\"mode\":\"%s\",\"file\":", ctx->o.file ? "file" : "live");
  if (ctx->o.file) px_web_json_string(&b, ctx->o.file);
  else flt_strbuf_append(&b, "null", 4);
  flt_strbuf_append(&b, ",\"proxy\":", 9);
  if (!ctx->o.file && ctx->o.proxy[0]) px_web_json_string(&b, ctx->o.proxy);
  else flt_strbuf_append(&b, "null", 4);
  flt_strbuf_append(&b, ",\"ca\":", 6);
  if (!ctx->o.file && ctx->o.ca) px_web_json_string(&b, ctx->o.ca);
  else flt_strbuf_append(&b, "null", 4);
  flt_strbuf_appendf(&b, ",\"max_flows\":%llu,\"dropped\":%llu,\"count\":%llu}",
                     (unsigned long long)c.max, (unsigned long long)c.dropped,
                     (unsigned long long)c.count);
  resp_text(p, 200, &b);
  flt_strbuf_free(&b);
}

/* The `filter` query of /api/flows and /api/events, compiled into *e (into
 * `q`, which the caller frees); a bad one is answered with 400 and -1. */
static int query_filter(const px_web_req_t *req, flt_strbuf_t *q, struct flt_expr **e,
                        px_web_resp_t *p) {
  flt_strbuf_t b;
  int rc = 0;
  flt_strbuf_init(&b, 0);
  px_web_req_query(req, "filter", q);
  if (compile(q->data, e, &b, "") < 0) {
    resp_text(p, 400, &b);
    rc = -1;
  }
  flt_strbuf_free(&b);
  return rc;
}

static void api_flows(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *p) {
  flt_strbuf_t q;
  struct flt_expr *e;
  tr_jw_t w;
  uint64_t seq;
  flt_web_counts_t c;

  flt_strbuf_init(&q, 0);
  if (query_filter(req, &q, &e, p) == 0) {
    uint64_t after = query_u64(req, "after", &q);
    tr_jw_init(&w);
    tr_jw_open(&w, NULL, '{');
    tr_jw_open(&w, "flows", '[');
    flt_web_store_summaries(ctx->o.store, &w, e, after, &seq);
    tr_jw_close(&w, ']');
    flt_web_store_counts(ctx->o.store, &c);
    tr_jw_num(&w, "seq", (double)seq);
    tr_jw_num(&w, "dropped", (double)c.dropped);
    tr_jw_close(&w, '}');
    resp_jw(p, 200, &w);
    tr_jw_free(&w);
    flt_expr_free(e);
  }
  flt_strbuf_free(&q);
}

static void api_events(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *p) {
  flt_strbuf_t q;
  struct flt_expr *e;
  const char *last = px_web_req_header(req, "Last-Event-ID");

  flt_strbuf_init(&q, 0);
  if (query_filter(req, &q, &e, p) == 0) {
    p->status = 200;
    p->sse = 1;
    ctx->sse_filter = e;
    ctx->sse_after = last ? strtoull(last, NULL, 10) : query_u64(req, "after", &q);
  }
  flt_strbuf_free(&q);
}

static void api_filter(const px_web_req_t *req, px_web_resp_t *p) {
  flt_strbuf_t b;
  struct flt_expr *e;
  char *text = strndup(req->body.data ? req->body.data : "", req->body.len);

  flt_strbuf_init(&b, 0);
  if (text && strlen(text) != req->body.len) {
    px_web_resp_json(p, 200, "{\"ok\":false,\"error\":\"the expression holds a NUL byte\",\"pos\":-1}",
                     63);
  } else if (compile(text, &e, &b, "\"ok\":false,") < 0) {
    resp_text(p, 200, &b);
  } else {
    flt_expr_free(e);
    px_web_resp_json(p, 200, "{\"ok\":true}", 11);
  }
  free(text);
  flt_strbuf_free(&b);
}

static void api_detail(px_web_ctx_t *ctx, uint64_t id, px_web_resp_t *p) {
  tr_jw_t w;
  tr_jw_init(&w);
  if (flt_web_store_detail(ctx->o.store, id, &w) < 0) {
    char msg[96];
    snprintf(msg, sizeof(msg), "no flow %llu (dropped or never seen)", (unsigned long long)id);
    px_web_resp_error(p, 404, msg);
  } else {
    resp_jw(p, 200, &w);
  }
  tr_jw_free(&w);
}

/* The image types a page may show with <img>: served as themselves. */
static const char *image_type(const char *type) {
  static const char *const t[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    if (strcmp(type, t[i]) == 0) return t[i];
  return NULL;
}

static const char *known_ext(const char *type) {
  static const char *const t[][2] = {
      {"image/png", "png"},         {"image/jpeg", "jpg"},          {"image/gif", "gif"},
      {"image/webp", "webp"},       {"application/json", "json"},   {"text/html", "html"},
      {"text/plain", "txt"},        {"text/css", "css"},            {"text/javascript", "js"},
      {"application/javascript", "js"}, {"application/xml", "xml"}, {"text/xml", "xml"}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    if (strcmp(type, t[i][0]) == 0) return t[i][1];
  return "bin";
}

static void api_body(px_web_ctx_t *ctx, const px_web_req_t *req, uint64_t id, flt_dir_t dir,
                     px_web_resp_t *p) {
  flt_strbuf_t q;
  char type[96], *data;
  size_t len;

  flt_strbuf_init(&q, 64);
  int raw = px_web_req_query(req, "raw", &q) && q.data && strcmp(q.data, "1") == 0;
  int download = px_web_req_query(req, "download", &q) && q.data && strcmp(q.data, "1") == 0;
  flt_strbuf_free(&q);
  int rc = flt_web_store_body(ctx->o.store, id, dir, raw, &data, &len, type, sizeof(type));
  if (rc < 0) {
    px_web_resp_error(p, 404, rc == -1 ? "no such flow (dropped or never seen)"
                                       : "no body (none, not yet complete, or not kept)");
    return;
  }
  free(p->body);
  p->status = 200;
  p->body = data;
  p->body_len = len;
  p->type = !raw && image_type(type) ? image_type(type) : "application/octet-stream";
  if (download)
    flt_strbuf_appendf(&p->head,
                       "Content-Disposition: attachment; filename=\"flow-%llu-%s.%s\"\r\n",
                       (unsigned long long)id, dir ? "response" : "request",
                       raw ? "bin" : known_ext(type));
}

/* Hop-by-hop fields and the ones curl computes itself. */
static int curl_skips(const char *name) {
  static const char *const skip[] = {"connection", "keep-alive",     "proxy-connection",
                                     "proxy-authorization", "te",    "trailer",
                                     "transfer-encoding",   "upgrade", "content-length"};
  for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
    if (strcasecmp(name, skip[i]) == 0) return 1;
  return 0;
}

static int has_header(const flt_web_request_t *r, const char *name) {
  for (size_t i = 0; i < r->n_headers; i++)
    if (strcasecmp(r->names[i], name) == 0) return 1;
  return 0;
}

static void curl_arg(flt_strbuf_t *b, const char *opt, const char *val) {
  flt_strbuf_appendf(b, " %s ", opt);
  px_web_shell_quote(b, val, strlen(val));
}

/* The command line; returns whether it reproduces the whole request. */
static int curl_command(const px_web_ctx_t *ctx, const flt_web_request_t *r, flt_strbuf_t *b) {
  int complete = r->complete;
  flt_strbuf_append(b, "curl --http1.1 --path-as-is", 27);
  if (!ctx->o.file && ctx->o.proxy[0]) {
    char proxy[320];
    snprintf(proxy, sizeof(proxy), "http://%s", ctx->o.proxy);
    curl_arg(b, "-x", proxy);
    if (ctx->o.ca) curl_arg(b, "--cacert", ctx->o.ca);
  }
  if (strcmp(r->method, "HEAD") == 0)
    flt_strbuf_append(b, " --head", 7);
  else
    curl_arg(b, "-X", r->method);
  /* What curl would add on its own, removed when the client did not send it. */
  static const char *const own[] = {"User-Agent", "Accept"};
  for (size_t i = 0; i < 2; i++)
    if (!has_header(r, own[i])) flt_strbuf_appendf(b, " -H '%s:'", own[i]);
  for (size_t i = 0; i < r->n_headers; i++) {
    if (curl_skips(r->names[i])) continue;
    flt_strbuf_append(b, " -H ", 4);
    size_t n = strlen(r->names[i]), v = strlen(r->values[i]);
    char *line = malloc(n + v + 3);
    if (line == NULL) continue;
    snprintf(line, n + v + 3, "%s: %s", r->names[i], r->values[i]);
    /* An empty value would make curl remove the field: "Name;" sends it empty. */
    if (v == 0) snprintf(line, n + 2, "%s;", r->names[i]);
    px_web_shell_quote(b, line, strlen(line));
    free(line);
  }
  if (r->has_body) {
    if (!has_header(r, "Content-Type")) flt_strbuf_append(b, " -H 'Content-Type:'", 19);
    if (!has_header(r, "Expect")) flt_strbuf_append(b, " -H 'Expect:'", 13);
    if (complete && tr_utf8_valid((const uint8_t *)r->body, r->body_len)) {
      flt_strbuf_append(b, " --data-binary ", 15);
      px_web_shell_quote(b, r->body, r->body_len);
    } else {
      flt_strbuf_append(b, " --data-binary @-", 17);
      complete = 0;
    }
  }
  flt_strbuf_append(b, " ", 1);
  px_web_shell_quote(b, r->url, strlen(r->url));
  return complete;
}

static void api_curl(px_web_ctx_t *ctx, uint64_t id, px_web_resp_t *p) {
  flt_web_request_t r;
  flt_strbuf_t cmd, b;
  if (flt_web_store_request(ctx->o.store, id, &r) < 0) {
    px_web_resp_error(p, 404, "no such flow (dropped or never seen)");
    return;
  }
  flt_strbuf_init(&cmd, 0);
  flt_strbuf_init(&b, 0);
  int complete = curl_command(ctx, &r, &cmd);
  flt_strbuf_append(&b, "{\"command\":", 11);
  px_web_json_string(&b, cmd.data ? cmd.data : "");
  flt_strbuf_appendf(&b, ",\"complete\":%s}", complete ? "true" : "false");
  resp_text(p, 200, &b);
  flt_strbuf_free(&cmd);
  flt_strbuf_free(&b);
  flt_web_request_free(&r);
}

static void api_har(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *p) {
  flt_strbuf_t q;
  uint64_t *ids = NULL;
  size_t n = 0;
  tr_jw_t w;

  flt_strbuf_init(&q, 64 * 1024);
  if (px_web_req_query(req, "ids", &q) && q.data && q.len) {
    ids = calloc(q.len / 2 + 1, sizeof(*ids));
    for (char *s = q.data, *end; ids && *s; s = *end ? end + 1 : end) {
      ids[n] = strtoull(s, &end, 10);
      if (end == s) break;
      n++;
    }
  }
  tr_jw_init(&w);
  if (q.len && ids == NULL)
    px_web_resp_error(p, 500, "out of memory");
  else if (flt_web_store_har(ctx->o.store, ids, n, ctx->o.version, &w) < 0)
    px_web_resp_error(p, 500, "out of memory");
  else
    resp_jw(p, 200, &w);
  flt_strbuf_append(&p->head, "Content-Disposition: attachment; filename=\"tlspeek.har\"\r\n", 57);
  tr_jw_free(&w);
  free(ids);
  flt_strbuf_free(&q);
}

static void api_resend(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *p) {
  char err[256];
  flt_web_request_t r;
  cJSON *j = cJSON_ParseWithLength(req->body.data ? req->body.data : "", req->body.len);
  cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  flt_strbuf_t b;

  flt_strbuf_init(&b, 0);
  if (ctx->o.file || !ctx->o.proxy[0]) {
    snprintf(err, sizeof(err), "%s", ctx->o.file ? "resend needs the live proxy: this page shows a transcript"
                                                 : "resend needs an explicit-mode listener");
  } else if (!cJSON_IsNumber(id) || id->valuedouble < 1) {
    snprintf(err, sizeof(err), "the body must be JSON with a numeric \"id\"");
  } else if (flt_web_store_request(ctx->o.store, (uint64_t)id->valuedouble, &r) < 0) {
    snprintf(err, sizeof(err), "no flow %.0f (dropped or never seen)", id->valuedouble);
  } else {
    ctx->resend = px_web_resend_new(&ctx->o, &r, req->body.data, req->body.len, err, sizeof(err));
    flt_web_request_free(&r);
    if (ctx->resend) {
      p->status = 200;
      p->resend = 1;
    }
  }
  if (!p->resend) {
    flt_strbuf_append(&b, "{\"ok\":false,\"error\":", 20);
    px_web_json_string(&b, err);
    flt_strbuf_append(&b, "}", 1);
    resp_text(p, 200, &b);
  }
  flt_strbuf_free(&b);
  cJSON_Delete(j);
}

/* /api/flows/ID[/body/request|/body/response|/curl] */
static void api_flow(px_web_ctx_t *ctx, const px_web_req_t *req, const char *rest,
                     px_web_resp_t *p) {
  char *end;
  uint64_t id = strtoull(rest, &end, 10);
  if (end == rest || (*end && *end != '/')) {
    px_web_resp_error(p, 404, "no such route");
  } else if (*end == '\0') {
    api_detail(ctx, id, p);
  } else if (strcmp(end, "/body/request") == 0 || strcmp(end, "/body/response") == 0) {
    api_body(ctx, req, id, strcmp(end, "/body/response") == 0 ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST, p);
  } else if (strcmp(end, "/curl") == 0) {
    api_curl(ctx, id, p);
  } else {
    px_web_resp_error(p, 404, "no such route");
  }
}

static void api_dispatch(px_web_ctx_t *ctx, const px_web_req_t *req, const char *path, int post,
                         px_web_resp_t *p) {
  static const char *const posts[] = {"/api/filter", "/api/clear", "/api/resend"};
  int wants_post = 0;
  for (size_t i = 0; i < 3; i++) wants_post |= strcmp(path, posts[i]) == 0;
  if (px_web_icpt_route(ctx, req, path, post, p)) return;
  if (wants_post != post) {
    px_web_resp_error(p, 405, wants_post ? "use POST" : "use GET");
    flt_strbuf_appendf(&p->head, "Allow: %s\r\n", wants_post ? "POST" : "GET");
  } else if (strcmp(path, "/api/info") == 0) {
    api_info(ctx, p);
  } else if (strcmp(path, "/api/flows") == 0) {
    api_flows(ctx, req, p);
  } else if (strncmp(path, "/api/flows/", 11) == 0) {
    api_flow(ctx, req, path + 11, p);
  } else if (strcmp(path, "/api/events") == 0) {
    api_events(ctx, req, p);
  } else if (strcmp(path, "/api/har") == 0) {
    api_har(ctx, req, p);
  } else if (strcmp(path, "/api/filter") == 0) {
    api_filter(req, p);
  } else if (strcmp(path, "/api/clear") == 0) {
    flt_web_store_clear(ctx->o.store);
    px_web_resp_json(p, 200, "{\"ok\":true}", 11);
  } else if (strcmp(path, "/api/resend") == 0) {
    api_resend(ctx, req, p);
  } else {
    px_web_resp_error(p, 404, "no such route");
  }
}

static void serve_asset(const char *path, px_web_resp_t *p) {
  const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
  for (size_t i = 0; i < px_web_n_assets; i++) {
    if (strcmp(px_web_assets[i].name, name) != 0) continue;
    px_web_resp_json(p, 200, (const char *)px_web_assets[i].data, px_web_assets[i].len);
    p->type = px_web_assets[i].type;
    return;
  }
  px_web_resp_error(p, 404, "no such file");
}

void px_web_route(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *p) {
  char path[1024];
  const char *host = px_web_req_header(req, "Host");
  int post = req->method && strcmp(req->method, "POST") == 0;

  if (req->method == NULL || (!post && strcmp(req->method, "GET") != 0)) {
    px_web_resp_error(p, 405, "only GET and POST");
    flt_strbuf_append(&p->head, "Allow: GET, POST\r\n", 18);
    return;
  }
  if (host == NULL) {
    px_web_resp_error(p, 400, "missing Host header");
    return;
  }
  if (!host_ok(ctx, host)) {
    px_web_resp_error(p, 403, "Host not allowed");
    return;
  }
  px_web_req_path(req, path, sizeof(path));
  if (strncmp(path, "/api/", 5) != 0) {
    if (post)
      px_web_resp_error(p, 405, "use GET");
    else
      serve_asset(path, p);
    return;
  }
  if (!token_ok(ctx, req)) {
    px_web_resp_error(p, 403, "missing or wrong token");
    return;
  }
  api_dispatch(ctx, req, path, post, p);
}

void px_web_sse_events(px_web_ctx_t *ctx, const struct flt_expr *filter, px_web_sse_pos_t *pos,
                       flt_strbuf_t *out) {
  flt_web_counts_t c;
  tr_jw_t w;
  uint64_t seq;

  flt_web_store_counts(ctx->o.store, &c);
  if (c.cleared != pos->cleared) {
    flt_strbuf_append(out, "event: clear\ndata: {}\n\n", 23);
    pos->cleared = c.cleared;
  }
  if (c.dropped != pos->dropped) {
    flt_strbuf_appendf(out, "event: dropped\ndata: {\"dropped\":%llu}\n\n",
                       (unsigned long long)c.dropped);
    pos->dropped = c.dropped;
  }
  px_web_icpt_events(ctx, &pos->intercepts, out);
  if (c.seq <= pos->after) return;
  tr_jw_init(&w);
  tr_jw_open(&w, NULL, '[');
  long n = flt_web_store_summaries(ctx->o.store, &w, filter, pos->after, &seq);
  tr_jw_close(&w, ']');
  if (n > 0 && !w.oom) {
    flt_strbuf_appendf(out, "id: %llu\nevent: flows\ndata: ", (unsigned long long)seq);
    flt_strbuf_append(out, w.buf, w.len); /* summaries hold no bodies: no holes */
    flt_strbuf_append(out, "\n\n", 2);
  }
  if (n >= 0) pos->after = seq;
  tr_jw_free(&w);
}
