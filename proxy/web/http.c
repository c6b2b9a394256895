/* http.c — the web server's requests and responses (web_internal.h):
 * http-parser fills a px_web_req_t within PX_WEB_MAX_HEAD bytes of head
 * and PX_WEB_MAX_BODY of body; responses get the security headers of
 * README.md ("Flow browser") every time. No sockets here. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/web/web_internal.h"

#define CSP                                                                                  \
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " \
  "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "            \
  "frame-ancestors 'none'"

static px_web_req_t *req_of(http_parser *p) {
  return p->data;
}

static int head_add(px_web_req_t *r, size_t n) {
  r->head_bytes += n;
  if (r->head_bytes <= PX_WEB_MAX_HEAD) return 0;
  r->error = 431;
  r->why = "request head too large";
  return -1;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  px_web_req_t *r = req_of(p);
  if (head_add(r, n) < 0) return -1;
  flt_strbuf_append(&r->url, at, n);
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  px_web_req_t *r = req_of(p);
  if (head_add(r, n) < 0) return -1;
  if (r->in_value || r->n_headers == 0) {
    if (r->n_headers == PX_WEB_MAX_HEADERS) {
      r->error = 431;
      r->why = "too many header fields";
      return -1;
    }
    r->n_headers++;
    r->in_value = 0;
  }
  flt_strbuf_append(&r->names[r->n_headers - 1], at, n);
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  px_web_req_t *r = req_of(p);
  if (head_add(r, n) < 0) return -1;
  if (r->n_headers == 0) return -1;
  r->in_value = 1;
  flt_strbuf_append(&r->values[r->n_headers - 1], at, n);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  px_web_req_t *r = req_of(p);
  if (r->body.len + n > PX_WEB_MAX_BODY) {
    r->error = 413;
    r->why = "request body over 1 MiB";
    return -1;
  }
  flt_strbuf_append(&r->body, at, n);
  return 0;
}

static int on_headers_complete(http_parser *p) {
  px_web_req_t *r = req_of(p);
  if (p->content_length != ULLONG_MAX && p->content_length > PX_WEB_MAX_BODY) {
    r->error = 413;
    r->why = "request body over 1 MiB";
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  px_web_req_t *r = req_of(p);
  r->complete = 1;
  r->method = http_method_str((enum http_method)p->method);
  r->keep_alive = http_should_keep_alive(p);
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void px_web_req_init(px_web_req_t *r) {
  memset(r, 0, sizeof(*r));
  flt_strbuf_init(&r->url, PX_WEB_MAX_HEAD);
  for (int i = 0; i < PX_WEB_MAX_HEADERS; i++) {
    flt_strbuf_init(&r->names[i], PX_WEB_MAX_HEAD);
    flt_strbuf_init(&r->values[i], PX_WEB_MAX_HEAD);
  }
  flt_strbuf_init(&r->body, PX_WEB_MAX_BODY);
  http_parser_init(&r->parser, HTTP_REQUEST);
  r->parser.data = r;
}

void px_web_req_free(px_web_req_t *r) {
  flt_strbuf_free(&r->url);
  for (int i = 0; i < PX_WEB_MAX_HEADERS; i++) {
    flt_strbuf_free(&r->names[i]);
    flt_strbuf_free(&r->values[i]);
  }
  flt_strbuf_free(&r->body);
}

void px_web_req_reset(px_web_req_t *r) {
  flt_strbuf_reset(&r->url);
  for (int i = 0; i < r->n_headers; i++) {
    flt_strbuf_reset(&r->names[i]);
    flt_strbuf_reset(&r->values[i]);
  }
  flt_strbuf_reset(&r->body);
  r->n_headers = r->in_value = r->complete = r->error = r->keep_alive = 0;
  r->head_bytes = 0;
  r->why = NULL;
  r->method = NULL;
  if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED) {
    http_parser_pause(&r->parser, 0);
  } else if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) {
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
  }
}

size_t px_web_req_feed(px_web_req_t *r, const char *data, size_t len) {
  if (r->complete || r->error) return 0;
  size_t used = http_parser_execute(&r->parser, &settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
  if (r->complete) return used;
  if (!r->error && e != HPE_OK) {
    r->error = 400;
    r->why = http_errno_description(e);
  }
  if (!r->error && (r->url.truncated || r->body.truncated)) {
    r->error = 431;
    r->why = "request too large";
  }
  return used;
}

const char *px_web_req_header(const px_web_req_t *r, const char *name) {
  for (int i = 0; i < r->n_headers; i++)
    if (r->names[i].data && strcasecmp(r->names[i].data, name) == 0)
      return r->values[i].data ? r->values[i].data : "";
  return NULL;
}

void px_web_req_path(const px_web_req_t *r, char *buf, size_t size) {
  const char *u = r->url.data ? r->url.data : "";
  size_t n = strcspn(u, "?#");
  snprintf(buf, size, "%.*s", (int)n, u);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void pct_decode(flt_strbuf_t *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    }
    flt_strbuf_append(out, &c, 1);
  }
}

int px_web_req_query(const px_web_req_t *r, const char *key, flt_strbuf_t *out) {
  const char *u = r->url.data ? r->url.data : "";
  const char *q = strchr(u, '?');
  size_t klen = strlen(key);

  flt_strbuf_reset(out);
  if (q == NULL) return 0;
  for (const char *p = q + 1; *p && *p != '#';) {
    size_t n = strcspn(p, "&#");
    const char *eq = memchr(p, '=', n);
    size_t kn = eq ? (size_t)(eq - p) : n;
    if (kn == klen && memcmp(p, key, klen) == 0) {
      if (eq) pct_decode(out, eq + 1, n - kn - 1);
      return 1;
    }
    p += n;
    if (*p == '&') p++;
  }
  return 0;
}

/* ---- responses --------------------------------------------------------------- */

void px_web_resp_init(px_web_resp_t *p) {
  memset(p, 0, sizeof(*p));
  flt_strbuf_init(&p->head, 4096);
}

void px_web_resp_free(px_web_resp_t *p) {
  flt_strbuf_free(&p->head);
  free(p->body);
  p->body = NULL;
}

void px_web_resp_json(px_web_resp_t *p, int status, const char *json, size_t len) {
  free(p->body);
  p->status = status;
  p->type = "application/json";
  p->body = malloc(len ? len : 1);
  p->body_len = p->body ? len : 0;
  if (p->body) memcpy(p->body, json, len);
}

void px_web_resp_error(px_web_resp_t *p, int status, const char *msg) {
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  flt_strbuf_append(&b, "{\"error\":", 9);
  px_web_json_string(&b, msg);
  flt_strbuf_append(&b, "}", 1);
  px_web_resp_json(p, status, b.data ? b.data : "{}", b.data ? b.len : 2);
  flt_strbuf_free(&b);
}

void px_web_json_string(flt_strbuf_t *b, const char *s) {
  flt_strbuf_append(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      flt_strbuf_appendf(b, "\\%c", *p);
    else if (*p < 0x20)
      flt_strbuf_appendf(b, "\\u%04x", *p);
    else
      flt_strbuf_append(b, p, 1);
  }
  flt_strbuf_append(b, "\"", 1);
}

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

char *px_web_resp_bytes(const px_web_resp_t *p, size_t *len) {
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  flt_strbuf_appendf(&b,
                     "HTTP/1.1 %d %s\r\nContent-Security-Policy: " CSP
                     "\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
                     "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\n",
                     p->status, reason(p->status));
  if (p->head.len) flt_strbuf_append(&b, p->head.data, p->head.len);
  if (p->sse) {
    flt_strbuf_appendf(&b, "Content-Type: text/event-stream\r\nConnection: keep-alive\r\n\r\n");
  } else {
    flt_strbuf_appendf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                       p->type ? p->type : "application/json", p->body_len,
                       p->close ? "Connection: close\r\n" : "");
    if (p->body_len) flt_strbuf_append(&b, p->body, p->body_len);
  }
  return flt_strbuf_detach(&b, len);
}

void px_web_shell_quote(flt_strbuf_t *out, const char *s, size_t len) {
  flt_strbuf_append(out, "'", 1);
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\'')
      flt_strbuf_append(out, "'\\''", 4);
    else
      flt_strbuf_append(out, &s[i], 1);
  }
  flt_strbuf_append(out, "'", 1);
}
