/* replay_load.c — a transcript's flows into the requests to send again
 * (replay.h says what is sent and why), and the replay's lifetime. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "filters/expr/expr.h"
#include "filters/transcript/reader.h"
#include "proxy/replay/replay_internal.h"

#define REPLAY_MAX_REQUEST (1u << 30) /* a serialised request (head and body) */

void px_replay_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  for (unsigned int i = 0; i < n && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void px_replay_item_fail(px_replay_item_t *it, const char *fmt, ...) {
  char buf[600];
  va_list ap;
  if (it->error) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  it->error = strdup(buf);
}

/* Is `name` one of the fields the Connection header `conn` lists? */
static int named_by_connection(const flt_header_t *conn, const char *name, size_t len) {
  if (conn == NULL) return 0;
  const char *p = conn->value, *end = conn->value + conn->value_len;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
    const char *tok = p;
    while (p < end && *p != ',' && *p != ' ' && *p != '\t') p++;
    if ((size_t)(p - tok) == len && strncasecmp(tok, name, len) == 0) return 1;
  }
  return 0;
}

/* Fields that are not sent again: hop-by-hop ones, what is rebuilt (Host,
 * Content-Length), HTTP/2 pseudo-headers, Expect (the body follows the
 * head at once), and Content-Encoding when the body kept in the
 * transcript is decoded. */
static int dropped(const flt_header_t *h, const flt_header_t *conn, int body_decoded) {
  static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                      "proxy-authorization", "proxy-authenticate", "te",
                                      "trailer", "transfer-encoding", "upgrade", "content-length",
                                      "host", "http2-settings", "expect"};
  if (h->name_len == 0 || h->name[0] == ':') return 1;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strlen(names[i]) == h->name_len && strncasecmp(h->name, names[i], h->name_len) == 0)
      return 1;
  if (body_decoded && h->name_len == 16 && strncasecmp(h->name, "content-encoding", 16) == 0)
    return 1;
  return named_by_connection(conn, h->name, h->name_len);
}

/* scheme://authority/path of `url` into the item; the path (with its
 * query) in *path. 0, or -1 with a reason. */
static int split_url(px_replay_item_t *it, const char *url, const char **path, const char **why) {
  const char *a;
  *why = "its URL is not an absolute http:// or https:// URL";
  if (strncasecmp(url, "https://", 8) == 0) it->tls = 1, a = url + 8;
  else if (strncasecmp(url, "http://", 7) == 0) it->tls = 0, a = url + 7;
  else return -1;
  size_t n = strcspn(a, "/?#");
  if (n == 0 || n >= sizeof(it->authority) || strpbrk(url, " \r\n\t")) return -1;
  snprintf(it->authority, sizeof(it->authority), "%.*s", (int)n, a);
  *path = a + n; /* "/x?q", "?q" (the path is then "/"), "#f" or "" */
  const char *hb = it->authority, *colon;
  size_t hl;
  if (hb[0] == '[') {
    const char *rb = strchr(hb, ']');
    if (rb == NULL) return -1;
    hb++;
    hl = (size_t)(rb - hb);
    colon = rb[1] == ':' ? rb + 1 : NULL;
  } else {
    colon = strrchr(hb, ':');
    hl = colon ? (size_t)(colon - hb) : strlen(hb);
  }
  if (hl == 0 || hl >= sizeof(it->host)) return -1;
  snprintf(it->host, sizeof(it->host), "%.*s", (int)hl, hb);
  snprintf(it->port, sizeof(it->port), "%s", colon ? colon + 1 : it->tls ? "443" : "80");
  *why = "its URL has a bad port";
  return it->port[0] && strspn(it->port, "0123456789") == strlen(it->port) ? 0 : -1;
}

/* The request line, head and body to send for a recorded flow. */
static int build_request(px_replay_item_t *it, const flt_rec_flow_t *rf, const char **why) {
  const flt_head_t *req = &rf->flow.req;
  const flt_rec_body_t *b = &rf->body[FLT_DIR_REQUEST];
  const char *path;
  flt_strbuf_t s;

  if (split_url(it, it->url, &path, why) < 0) return -1;
  *why = "its method is not a token";
  if (it->method[0] == '\0' || strpbrk(it->method, " \r\n\t")) return -1;
  *why = "its request body was cut by --body-cap when it was recorded";
  if (b->truncated) return -1;
  const flt_header_t *conn = flt_head_find(req, "connection");
  int decoded = b->present && b->decode_error == NULL;
  flt_strbuf_init(&s, REPLAY_MAX_REQUEST);
  /* http:// goes to the proxy in absolute form, https:// inside the tunnel. */
  if (it->tls)
    flt_strbuf_appendf(&s, "%s %s%.*s HTTP/1.1\r\n", it->method, path[0] == '/' ? "" : "/",
                       (int)strcspn(path, "#"), path);
  else
    flt_strbuf_appendf(&s, "%s %.*s HTTP/1.1\r\n", it->method, (int)strcspn(it->url, "#"),
                       it->url);
  flt_strbuf_appendf(&s, "Host: %s\r\n", it->authority);
  for (size_t i = 0; i < req->n_headers; i++) {
    const flt_header_t *h = &req->headers[i];
    if (dropped(h, conn, decoded) || memchr(h->value, '\n', h->value_len) ||
        memchr(h->value, '\r', h->value_len))
      continue;
    flt_strbuf_appendf(&s, "%.*s: %.*s\r\n", (int)h->name_len, h->name, (int)h->value_len,
                       h->value);
  }
  size_t blen = b->present ? b->len : 0;
  if (blen || flt_head_find(req, "content-length") || flt_head_find(req, "transfer-encoding"))
    flt_strbuf_appendf(&s, "Content-Length: %zu\r\n", blen);
  flt_strbuf_append(&s, "Connection: close\r\n\r\n", 21);
  if (blen) flt_strbuf_append(&s, b->data, blen);
  *why = "out of memory, or larger than 1 GiB";
  if (s.truncated || s.data == NULL) {
    flt_strbuf_free(&s);
    return -1;
  }
  it->request = flt_strbuf_detach(&s, &it->request_len);
  return 0;
}

/* What the recording says the answer was. */
static void note_recorded(px_replay_item_t *it, const flt_rec_flow_t *rf) {
  const flt_rec_body_t *b = &rf->body[FLT_DIR_RESPONSE];
  it->rec_status = rf->flow.has_response ? rf->flow.resp.status : 0;
  it->rec_len = b->present ? b->len : 0;
  /* A body cut, kept undecoded, or left out (wire bytes but no text)
   * cannot be compared. */
  it->rec_hashed = it->rec_status && !b->truncated && b->decode_error == NULL &&
                   (b->present || b->wire_bytes == 0);
  px_replay_sha256_hex(b->present ? b->data : (const uint8_t *)"", it->rec_len, it->rec_sha);
}

static int add_item(px_replay_t *r, const flt_rec_flow_t *rf, size_t entry) {
  if ((r->n_items & (r->n_items - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
    size_t cap = r->n_items ? r->n_items * 2 : 16;
    px_replay_item_t *n = realloc(r->items, cap * sizeof(*n));
    if (n == NULL) return -1;
    r->items = n;
  }
  px_replay_item_t *it = &r->items[r->n_items];
  memset(it, 0, sizeof(*it));
  it->entry = entry;
  it->method = strdup(rf->flow.req.method ? rf->flow.req.method : "");
  it->url = strdup(rf->flow.url ? rf->flow.url : "");
  r->n_items++;
  if (it->method == NULL || it->url == NULL) return -1;
  const char *why = NULL;
  if (build_request(it, rf, &why) < 0 && (it->not_sent = strdup(why)) == NULL) return -1;
  note_recorded(it, rf);
  return 0;
}

static int load_items(px_replay_t *r, flt_reader_t *rd, const struct flt_expr *select, char *err,
                      size_t errlen) {
  flt_rec_flow_t *rf;
  size_t entry = 0;
  int rc;
  while ((rc = flt_reader_next(rd, &rf, err, errlen)) == 1) {
    entry++;
    flt_expr_bodies_t bodies = {rf->body[0].data, rf->body[0].len,
                                rf->flow.has_response ? rf->body[1].data : NULL,
                                rf->flow.has_response ? rf->body[1].len : 0};
    if (select && !flt_expr_match_flow(select, &rf->flow, &bodies)) continue;
    if (add_item(r, rf, entry) < 0) {
      snprintf(err, errlen, "%s: out of memory", rf->where);
      return -1;
    }
  }
  return rc;
}

px_replay_t *px_replay_load_reader(flt_reader_t *rd, const char *name,
                                   const struct flt_expr *select, int concurrency, char *err,
                                   size_t errlen) {
  px_replay_t *r = calloc(1, sizeof(*r));
  if (r == NULL || (r->file = strdup(name)) == NULL) {
    snprintf(err, errlen, "out of memory");
    free(r);
    return NULL;
  }
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->concurrency = concurrency < 1 ? 1 : concurrency;
  r->slot = -1;
  if (load_items(r, rd, select, err, errlen) < 0) {
    px_replay_free(r);
    return NULL;
  }
  return r;
}

px_replay_t *px_replay_load(const char *path, const struct flt_expr *select, int concurrency,
                            char *err, size_t errlen) {
  flt_reader_t *rd = flt_reader_open(path, err, errlen);
  if (rd == NULL) return NULL;
  px_replay_t *r = px_replay_load_reader(rd, path, select, concurrency, err, errlen);
  flt_reader_free(rd);
  return r;
}

size_t px_replay_count(const px_replay_t *r) { return r->n_items; }

void px_replay_free(px_replay_t *r) {
  if (r == NULL) return;
  for (int i = 0; i < r->n_threads; i++) pthread_join(r->threads[i], NULL);
  r->n_threads = 0;
  for (size_t i = 0; i < r->n_items; i++) {
    px_replay_item_t *it = &r->items[i];
    free(it->method);
    free(it->url);
    free(it->request);
    free(it->not_sent);
    free(it->error);
    EVP_MD_CTX_free(it->md);
    flt_decoder_free(it->dec);
    flt_strbuf_free(&it->decoded);
  }
  free(r->items);
  free(r->proxyauth_b64);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r->file);
  free(r);
}
