/* h2_head.c — HTTP/2 heads (h2.h): a received header list as a flt_head_t,
 * a flt_head_t as nghttp2's name/value list, an HTTP/2 request as an
 * HTTP/1.1 head.
 *
 * The views list an HTTP/2 head's pseudo-headers (:method, :scheme,
 * :authority, :path, :status) first among its headers, as Chrome's HAR
 * export does; method, url and status carry them too. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/codec/h2_internal.h"

void px_h2_head_from_list(h2_stream_t *st, int request, flt_header_t *fields, flt_head_t *out) {
  memset(out, 0, sizeof(*out));
  out->http_major = 2;
  out->headers = fields;
  const char *p = st->hbuf.data, *end = p ? p + st->hbuf.len : NULL;
  size_t n = 0;
  while (p && p < end && n < st->n_fields) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    fields[n] = (flt_header_t){p, nl, v, vl};
    if (request && strcmp(p, ":method") == 0) out->method = v;
    if (request && strcmp(p, ":path") == 0) out->url = v;
    if (!request && strcmp(p, ":status") == 0) out->status = atoi(v);
    out->head_bytes += nl + vl + 32;
    n++;
    p = v + vl + 1;
  }
  out->n_headers = n;
  if (request && out->method == NULL) out->method = "";
  if (request && out->url == NULL) out->url = "";
  if (!request) out->reason = "";
}

/* RFC 9113 §8.2.2: fields that only mean something on one HTTP/1 connection. */
static int connection_specific(const flt_header_t *f) {
  static const char *const names[] = {"connection",        "keep-alive", "proxy-connection",
                                      "transfer-encoding", "upgrade",    "host"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (f->name_len == strlen(names[i]) && strncasecmp(f->name, names[i], f->name_len) == 0)
      return 1;
  if (f->name_len == 2 && strncasecmp(f->name, "te", 2) == 0)
    return !(f->value_len == 8 && strncasecmp(f->value, "trailers", 8) == 0);
  return 0;
}

static const flt_header_t *field(const flt_head_t *h, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < h->n_headers; i++)
    if (h->headers[i].name_len == nl && strncasecmp(h->headers[i].name, name, nl) == 0)
      return &h->headers[i];
  return NULL;
}

typedef struct nvb {
  nghttp2_nv *nva;
  size_t n, cap;
  char *bytes; /* names and values, copied */
  size_t used, size;
} nvb_t;

static void nv_add(nvb_t *b, const char *name, size_t nl, const char *value, size_t vl) {
  if (b->n >= b->cap || b->used + nl + vl > b->size) return; /* sized for all: cannot happen */
  char *n = b->bytes + b->used;
  for (size_t i = 0; i < nl; i++)
    n[i] = (char)tolower((unsigned char)name[i]);
  memcpy(n + nl, value, vl);
  b->used += nl + vl;
  b->nva[b->n++] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)n + nl, nl, vl, NGHTTP2_NV_FLAG_NONE};
}

static void nv_pseudo(nvb_t *b, const flt_head_t *h, const px_head_edit_t *e, const char *authority,
                      const char *scheme) {
  if (h->status <= 0 && (h->method == NULL || h->method[0] == '\0')) return; /* trailers */
  if (h->status > 0) { /* a response (copies keep method "") */
    char status[8];
    int len = snprintf(status, sizeof(status), "%d", h->status % 1000);
    nv_add(b, ":status", 7, status, (size_t)len);
    return;
  }
  const flt_header_t *a = field(h, ":authority"), *host = field(h, "host");
  const flt_header_t *sch = field(h, ":scheme");
  nv_add(b, ":method", 7, h->method, strlen(h->method));
  if (e && e->host) {
    nv_add(b, ":authority", 10, e->host, strlen(e->host));
  } else if (a || host) {
    nv_add(b, ":authority", 10, (a ? a : host)->value, (a ? a : host)->value_len);
  } else if (authority) {
    nv_add(b, ":authority", 10, authority, strlen(authority));
  }
  if (strcmp(h->method, "CONNECT") == 0) return;
  if (sch)
    nv_add(b, ":scheme", 7, sch->value, sch->value_len);
  else
    nv_add(b, ":scheme", 7, scheme ? scheme : "https", strlen(scheme ? scheme : "https"));
  const char *path = e && e->url ? e->url : h->url && h->url[0] ? h->url : "/";
  nv_add(b, ":path", 5, path, strlen(path));
}

int px_h2_nv_build(const flt_head_t *h0, const px_head_edit_t *e, const char *authority,
                   const char *scheme, nghttp2_nv **nva, size_t *n, void **store) {
  flt_head_t *edited = NULL;
  const flt_head_t *h = h0;
  if (e && (e->n_set > 0 || e->n_remove > 0)) {
    edited = px_head_edited(h0, e);
    if (edited == NULL) return -1;
    h = edited;
  }
  size_t cap = h->n_headers + 6, size = 64;
  for (size_t i = 0; i < h->n_headers; i++)
    size += h->headers[i].name_len + h->headers[i].value_len;
  size += (h->method ? strlen(h->method) : 0) + (h->url ? strlen(h->url) : 1) +
          (authority ? strlen(authority) : 0) + (e && e->host ? strlen(e->host) : 0) +
          (e && e->url ? strlen(e->url) : 0) + 64;
  void *mem = malloc(cap * sizeof(nghttp2_nv) + size);
  if (mem == NULL) {
    free(edited);
    return -1;
  }
  nvb_t b = {mem, 0, cap, (char *)mem + cap * sizeof(nghttp2_nv), 0, size};
  nv_pseudo(&b, h, e, authority, scheme);
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *f = &h->headers[i];
    if (f->name_len == 0 || f->name[0] == ':' || connection_specific(f)) continue;
    nv_add(&b, f->name, f->name_len, f->value, f->value_len);
  }
  free(edited);
  *nva = b.nva;
  *n = b.n;
  *store = mem;
  return 0;
}

static int put(flt_strbuf_t *out, const char *s, size_t len) {
  return flt_strbuf_append(out, s, len);
}

static int put_str(flt_strbuf_t *out, const char *s) {
  return put(out, s, strlen(s));
}

/* Every cookie field as one (RFC 9113 §8.2.3: HTTP/1.1 has one). */
static int put_cookies(flt_strbuf_t *out, const flt_head_t *h) {
  int first = 1, r = 0;
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *f = &h->headers[i];
    if (f->name_len != 6 || strncasecmp(f->name, "cookie", 6) != 0) continue;
    r |= put_str(out, first ? "cookie: " : "; ");
    r |= put(out, f->value, f->value_len);
    first = 0;
  }
  if (!first) r |= put_str(out, "\r\n");
  return r;
}

int px_h2_head_to_http1(const flt_head_t *h0, const px_head_edit_t *e, int may_have_body,
                        flt_strbuf_t *out) {
  flt_head_t *edited = NULL;
  const flt_head_t *h = h0;
  int r = 0;
  if (e && (e->n_set > 0 || e->n_remove > 0)) {
    edited = px_head_edited(h0, e);
    if (edited == NULL) return -1;
    h = edited;
  }
  const flt_header_t *a = field(h, ":authority"), *host = field(h, "host");
  const char *path = e && e->url ? e->url : h->url && h->url[0] ? h->url : "/";
  r |= put_str(out, h->method ? h->method : "GET");
  r |= put_str(out, " ");
  r |= put_str(out, path);
  r |= put_str(out, " HTTP/1.1\r\nhost: ");
  if (e && e->host)
    r |= put_str(out, e->host);
  else if (a || host)
    r |= put(out, (a ? a : host)->value, (a ? a : host)->value_len);
  r |= put_str(out, "\r\n");
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *f = &h->headers[i];
    if (f->name_len == 0 || f->name[0] == ':' || connection_specific(f)) continue;
    if (f->name_len == 6 && strncasecmp(f->name, "cookie", 6) == 0) continue;
    if (f->name_len == 2 && strncasecmp(f->name, "te", 2) == 0) continue;
    r |= put(out, f->name, f->name_len);
    r |= put_str(out, ": ");
    r |= put(out, f->value, f->value_len);
    r |= put_str(out, "\r\n");
  }
  r |= put_cookies(out, h);
  if (may_have_body && field(h, "content-length") == NULL)
    r |= put_str(out, "transfer-encoding: chunked\r\n");
  r |= put_str(out, "\r\n");
  free(edited);
  return r ? -1 : 0;
}
