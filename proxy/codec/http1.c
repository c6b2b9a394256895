/* http1.c — HTTP/1.x framing on top of http-parser.
 *
 * http-parser finds message boundaries; this file turns them into the
 * callbacks of http1.h. The parser is paused at the end of every head and
 * every message so that we know exactly which input bytes belong to the
 * head (held, then handed over whole) and which to the body (streamed).
 */
#include "proxy/codec/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { EV_NONE = 0, EV_HEAD, EV_END };

static px_http_t *from_parser(http_parser *p) { return (px_http_t *)p->data; }

static int store_append(px_http_t *h, const char *at, size_t len) {
  if (flt_strbuf_append(&h->store, at, len) != 0) {
    snprintf(h->error, sizeof(h->error), "head larger than %d KiB",
             PX_HTTP_MAX_HEAD / 1024);
    return -1;
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  px_http_t *h = from_parser(p);
  flt_strbuf_reset(&h->store);
  h->n_hdr = 0;
  h->last_was_value = 0;
  h->url_off = h->url_len = h->reason_off = h->reason_len = 0;
  h->skip_body = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  px_http_t *h = from_parser(p);
  if (h->url_len == 0) h->url_off = (uint32_t)h->store.len;
  h->url_len += (uint32_t)len;
  return store_append(h, at, len);
}

static int on_status(http_parser *p, const char *at, size_t len) {
  px_http_t *h = from_parser(p);
  if (h->reason_len == 0) h->reason_off = (uint32_t)h->store.len;
  h->reason_len += (uint32_t)len;
  return store_append(h, at, len);
}

static int grow_headers(px_http_t *h) {
  size_t n = h->hdr_alloc ? h->hdr_alloc * 2 : 16;
  px_hdr_off_t *hdr = realloc(h->hdr, n * sizeof(*hdr));
  if (hdr == NULL) goto Fail;
  h->hdr = hdr;
  flt_header_t *view = realloc(h->view_hdr, n * sizeof(*view));
  if (view == NULL) goto Fail;
  h->view_hdr = view;
  h->hdr_alloc = n;
  return 0;
Fail:
  snprintf(h->error, sizeof(h->error), "out of memory");
  return -1;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  px_http_t *h = from_parser(p);
  if (h->n_hdr == 0 || h->last_was_value) {
    if (h->n_hdr == PX_HTTP_MAX_HEADERS) {
      snprintf(h->error, sizeof(h->error), "more than %d header fields",
               PX_HTTP_MAX_HEADERS);
      return -1;
    }
    if (h->n_hdr == h->hdr_alloc && grow_headers(h) != 0) return -1;
    px_hdr_off_t *o = &h->hdr[h->n_hdr++];
    o->name_off = (uint32_t)h->store.len;
    o->name_len = 0;
    o->value_off = 0;
    o->value_len = 0;
    h->last_was_value = 0;
  }
  h->hdr[h->n_hdr - 1].name_len += (uint32_t)len;
  return store_append(h, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  px_http_t *h = from_parser(p);
  px_hdr_off_t *o = &h->hdr[h->n_hdr - 1];
  if (!h->last_was_value) {
    o->value_off = (uint32_t)h->store.len;
    h->last_was_value = 1;
  }
  o->value_len += (uint32_t)len;
  return store_append(h, at, len);
}

static int on_headers_complete(http_parser *p) {
  px_http_t *h = from_parser(p);
  h->event = EV_HEAD;
  http_parser_pause(p, 1);
  /* A response to HEAD has no body; the owner tells us in on_head, which
   * runs after this returns, so we re-check skip_body there. */
  return 0;
}

/* Checks the CRLF due after chunk data against the input at p. http-parser
 * (unless built strict) takes any two bytes there, so "5\r\nhelloXX0..."
 * would pass while a server reading it strictly sees something else. */
static int chunk_crlf(px_http_t *h, const char *p, size_t avail) {
  static const char crlf[] = "\r\n";
  for (; h->crlf_due > 0 && avail > 0; p++, avail--, h->crlf_due--) {
    if (*p != crlf[2 - h->crlf_due]) {
      snprintf(h->error, sizeof(h->error), "chunk data not followed by CRLF");
      return -1;
    }
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  px_http_t *h = from_parser(p);
  if (h->cbs->on_body) h->cbs->on_body(h->ud, at, len);
  if ((p->flags & F_CHUNKED) && p->content_length == 0) { /* this chunk's data is complete */
    h->crlf_due = 2;
    return chunk_crlf(h, at + len, (size_t)(h->in_end - (at + len)));
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  px_http_t *h = from_parser(p);
  h->event = EV_END;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void px_http_init(px_http_t *h, enum http_parser_type type,
                  const px_http_cbs_t *cbs, void *ud) {
  memset(h, 0, sizeof(*h));
  h->type = type;
  h->cbs = cbs;
  h->ud = ud;
  http_parser_init(&h->parser, type);
  h->parser.data = h;
  flt_strbuf_init(&h->raw, PX_HTTP_MAX_HEAD);
  flt_strbuf_init(&h->store, PX_HTTP_MAX_HEAD);
  flt_strbuf_init(&h->held, PX_HTTP_MAX_HELD);
  h->state = PX_HTTP_HEAD;
  h->line = PX_LINE_START;
}

void px_http_free(px_http_t *h) {
  flt_strbuf_free(&h->raw);
  flt_strbuf_free(&h->held);
  flt_strbuf_free(&h->store);
  free(h->hdr);
  free(h->view_hdr);
  h->hdr = NULL;
  h->view_hdr = NULL;
  h->hdr_alloc = h->n_hdr = 0;
}

void px_http_trim(px_http_t *h) {
  if (h->state != PX_HTTP_HEAD || h->raw.len != 0 || h->line != PX_LINE_START) return;
  px_http_free(h);
}

static int fail(px_http_t *h, const char *why) {
  if (h->error[0] == '\0' && why != h->error) snprintf(h->error, sizeof(h->error), "%s", why);
  h->state = PX_HTTP_FAILED;
  return -1;
}

/* Holds head bytes until the head is complete. */
static int hold(px_http_t *h, const char *data, size_t len) {
  if (len == 0) return 0;
  if (flt_strbuf_append(&h->raw, data, len) != 0) {
    return fail(h, "head larger than 64 KiB");
  }
  return 0;
}

/* Keeps input unparsed while held. */
static int keep(px_http_t *h, const char *data, size_t len) {
  if (len > 0 && flt_strbuf_append(&h->held, data, len) != 0)
    return fail(h, "too much input while a request waited");
  return 0;
}

/* The head is complete: hand it over, then continue with the body. */
static int deliver_head(px_http_t *h) {
  h->head_bytes = h->raw.len;
  if (h->type == HTTP_REQUEST &&
      px_http_check_request_head(h->raw.data ? h->raw.data : "", h->raw.len, h->error,
                                 sizeof(h->error)) != 0) {
    flt_strbuf_reset(&h->raw);
    return fail(h, h->error);
  }
  int rc = h->cbs->on_head(h->ud, h, h->raw.data ? h->raw.data : "", h->raw.len);
  if (rc == PX_HTTP_HOLD) {
    /* Not yet: the head is parsed again, by a fresh parser, on release. */
    flt_strbuf_reset(&h->held);
    int kept = keep(h, h->raw.data ? h->raw.data : "", h->raw.len);
    flt_strbuf_reset(&h->raw);
    if (kept != 0) return -1;
    http_parser_init(&h->parser, h->type);
    h->parser.data = h;
    h->line = PX_LINE_START;
    h->state = PX_HTTP_HELD;
    return 0;
  }
  flt_strbuf_reset(&h->raw);
  if (rc < 0) return fail(h, "rejected by the proxy");
  /* RFC 9110 §6.4.1: 1xx, 204 and 304 responses never have a body, whatever
   * Content-Length says; http-parser leaves that decision to us. */
  unsigned st = h->parser.status_code;
  if (h->type == HTTP_RESPONSE && ((st >= 100 && st < 200) || st == 204 || st == 304)) rc = 1;
  if (rc == 1) {
    /* No body (response to HEAD): tell http-parser so it does not wait for
     * Content-Length bytes. Safe: it reads F_SKIPBODY when it resumes. */
    h->parser.flags |= F_SKIPBODY;
  }
  h->state = PX_HTTP_BODY;
  return 0;
}

static void deliver_end(px_http_t *h) {
  h->state = PX_HTTP_HEAD;
  h->line = PX_LINE_START;
  h->leading_eol = 0;
  flt_strbuf_free(&h->raw); /* an idle keep-alive connection keeps nothing */
  if (h->raw_next) {
    h->raw_next = 0;
    h->upgraded = 1;
    h->state = PX_HTTP_RAW;
  } else if (h->parser.upgrade && h->type == HTTP_RESPONSE) {
    h->upgraded = 1; /* 101 with Upgrade: the server switched */
    h->state = PX_HTTP_RAW;
  } else if (h->parser.upgrade) {
    /* A request with Upgrade (or CONNECT): whether what follows is HTTP
     * depends on the answer. Relaying it raw before then would let a
     * request the server never upgrades carry hidden requests past the
     * proxy, so it is kept unparsed until the owner's verdict. */
    flt_strbuf_reset(&h->held);
    h->await_verdict = 1;
    h->state = PX_HTTP_HELD;
  }
  if (h->cbs->on_end) h->cbs->on_end(h->ud, h);
}

/* http-parser knows a fixed list of methods. */
static int known_method(const char *m) {
#define XX(num, name, string) \
  if (strcmp(m, #string) == 0) return 1;
  HTTP_METHOD_MAP(XX)
#undef XX
  return 0;
}

/* The start of a request line, before http-parser sees it: skips empty
 * lines (RFC 9112 §2.2; they are not passed on) and reads the method into
 * h->method. Returns the bytes consumed (the method's SP included), or -1. */
static long scan_method(px_http_t *h, const char *p, size_t n) {
  size_t i = 0;
  if (h->line == PX_LINE_START) {
    /* Counted in bytes (CR and LF), as px_http_sniff counts them. */
    for (; i < n && (p[i] == '\r' || p[i] == '\n'); i++) {
      if (++h->leading_eol > 2 * PX_HTTP_MAX_LEADING_EOL)
        return fail(h, "too many empty lines before the request line");
    }
    if (i == n) return (long)i;
    h->line = PX_LINE_METHOD;
    h->method_len = 0;
  }
  for (; i < n && p[i] != ' '; i++) {
    if (!px_http_is_tchar((unsigned char)p[i]))
      return fail(h, "invalid character in the method (RFC 9110 allows a token)");
    if (h->method_len == PX_HTTP_MAX_METHOD) return fail(h, "method longer than 32 bytes");
    h->method[h->method_len++] = p[i];
  }
  if (i == n) return (long)i;
  if (h->method_len == 0) return fail(h, "request line starts with a space");
  h->method[h->method_len] = '\0';
  h->line = PX_LINE_REST;
  return (long)i + 1;
}

/* The method is read: it goes into the held head as it came, and to
 * http-parser as itself when it knows it. Any other token method (RFC 9110
 * §9.1) is given to http-parser as POST, a method it frames by
 * Content-Length and Transfer-Encoding alone, which is what RFC 9112 §6.3
 * says for every method but CONNECT (and HEAD, for the response). The real
 * method stays in h->method for the flow and the rebuilt head. */
static int start_request_line(px_http_t *h) {
  const char *fed = known_method(h->method) ? h->method : "POST";
  if (hold(h, h->method, h->method_len) != 0 || hold(h, " ", 1) != 0) return -1;
  h->in_end = NULL;
  http_parser_execute(&h->parser, &settings, fed, strlen(fed));
  http_parser_execute(&h->parser, &settings, " ", 1);
  enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
  if (err != HPE_OK) {
    snprintf(h->error, sizeof(h->error), "%s (%s)", http_errno_description(err),
             http_errno_name(err));
    return fail(h, h->error);
  }
  return 0;
}

int px_http_feed(px_http_t *h, const char *data, size_t len) {
  size_t pos = 0, sent = 0;

  if (h->state == PX_HTTP_FAILED) return -1;
  if (h->state == PX_HTTP_HELD) return keep(h, data, len);
  while (pos < len) {
    if (h->state == PX_HTTP_RAW) {
      h->cbs->forward(h->ud, data + sent, len - sent);
      return 0;
    }
    if (h->state == PX_HTTP_HELD) return keep(h, data + pos, len - pos); /* awaiting a verdict */
    if (h->type == HTTP_REQUEST && h->state == PX_HTTP_HEAD && h->line != PX_LINE_REST) {
      /* Nothing of this request went to http-parser yet: sent == pos. */
      long used = scan_method(h, data + pos, len - pos);
      if (used < 0) return -1;
      pos = sent = pos + (size_t)used;
      if (h->line == PX_LINE_REST && start_request_line(h) != 0) return -1;
      continue;
    }
    if (h->crlf_due > 0 && chunk_crlf(h, data + pos, len - pos) != 0) return fail(h, h->error);
    h->in_end = data + len;
    size_t n = http_parser_execute(&h->parser, &settings, data + pos, len - pos);
    enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
    size_t end = pos + n;

    if (err == HPE_PAUSED) {
      int ev = h->event;
      h->event = EV_NONE;
      http_parser_pause(&h->parser, 0);
      if (ev == EV_HEAD) {
        /* Paused on the head's final LF, which is not yet consumed. */
        size_t head_end = end + 1 <= len ? end + 1 : len;
        if (hold(h, data + sent, head_end - sent) != 0) return -1;
        sent = head_end;
        if (deliver_head(h) != 0) return -1;
        if (h->state == PX_HTTP_HELD) return keep(h, data + sent, len - sent);
      } else if (ev == EV_END) {
        if (end > sent) {
          h->cbs->forward(h->ud, data + sent, end - sent);
          sent = end;
        }
        deliver_end(h);
        if (h->state == PX_HTTP_FAILED) return -1;
      }
      pos = end;
      continue;
    }
    if (err != HPE_OK) {
      if (h->error[0] == '\0')
        snprintf(h->error, sizeof(h->error), "%s (%s)", http_errno_description(err),
                 http_errno_name(err));
      h->state = PX_HTTP_FAILED;
      return -1;
    }
    pos = end;
    if (n == 0) break; /* should not happen without an error */
  }
  if (sent < len) {
    if (h->state == PX_HTTP_HEAD) {
      if (hold(h, data + sent, len - sent) != 0) return -1;
    } else if (h->state == PX_HTTP_BODY || h->state == PX_HTTP_RAW) {
      h->cbs->forward(h->ud, data + sent, len - sent);
    }
  }
  return 0;
}

int px_http_eof(px_http_t *h) {
  if (h->state == PX_HTTP_FAILED || h->state == PX_HTTP_RAW || h->state == PX_HTTP_HELD) return 0;
  if (h->type == HTTP_REQUEST && h->line == PX_LINE_METHOD)
    return fail(h, "connection closed in the middle of a head");
  h->in_end = NULL;
  int had_head = h->state == PX_HTTP_BODY;
  http_parser_execute(&h->parser, &settings, NULL, 0);
  enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
  if (err == HPE_PAUSED) {
    http_parser_pause(&h->parser, 0);
    if (h->event == EV_END) {
      h->event = EV_NONE;
      deliver_end(h);
    }
    return 0;
  }
  if (err != HPE_OK || (had_head && h->state == PX_HTTP_BODY)) {
    return fail(h, "connection closed in the middle of a message");
  }
  if (h->raw.len > 0) return fail(h, "connection closed in the middle of a head");
  return 0;
}

int px_http_release(px_http_t *h) {
  if (h->state != PX_HTTP_HELD) return 0;
  flt_strbuf_t held = h->held;
  flt_strbuf_init(&h->held, PX_HTTP_MAX_HELD);
  h->state = PX_HTTP_HEAD;
  int rc = px_http_feed(h, held.data ? held.data : "", held.len);
  flt_strbuf_free(&held);
  return rc;
}

int px_http_resume_http(px_http_t *h) {
  int kept = h->state == PX_HTTP_HELD && h->await_verdict;
  h->upgraded = h->await_verdict = h->raw_next = 0;
  h->state = PX_HTTP_HEAD;
  h->line = PX_LINE_START;
  h->leading_eol = 0;
  h->crlf_due = 0;
  http_parser_init(&h->parser, h->type);
  h->parser.data = h;
  if (!kept) return 0;
  flt_strbuf_t held = h->held;
  flt_strbuf_init(&h->held, PX_HTTP_MAX_HELD);
  int rc = px_http_feed(h, held.data ? held.data : "", held.len);
  flt_strbuf_free(&held);
  return rc;
}

void px_http_set_raw(px_http_t *h) {
  int between = h->state == PX_HTTP_HELD || h->state == PX_HTTP_RAW ||
                (h->state == PX_HTTP_HEAD && h->line == PX_LINE_START && h->raw.len == 0);
  if (!between) { /* during a message: at its end */
    h->raw_next = 1;
    return;
  }
  h->upgraded = 1;
  h->await_verdict = 0;
  h->state = PX_HTTP_RAW;
  if (h->held.len > 0) {
    flt_strbuf_t held = h->held;
    flt_strbuf_init(&h->held, PX_HTTP_MAX_HELD);
    h->cbs->forward(h->ud, held.data, held.len);
    flt_strbuf_free(&held);
  }
}

void px_http_head_view(px_http_t *h, flt_head_t *out) {
  const char *s = h->store.data ? h->store.data : "";
  memset(out, 0, sizeof(*out));
  out->http_major = h->parser.http_major;
  out->http_minor = h->parser.http_minor;
  for (size_t i = 0; i < h->n_hdr; i++) {
    h->view_hdr[i].name = s + h->hdr[i].name_off;
    h->view_hdr[i].name_len = h->hdr[i].name_len;
    h->view_hdr[i].value = s + h->hdr[i].value_off;
    h->view_hdr[i].value_len = h->hdr[i].value_len;
  }
  out->headers = h->view_hdr;
  out->n_headers = h->n_hdr;
  out->head_bytes = h->head_bytes;
  if (h->type == HTTP_REQUEST) {
    out->method = h->method;
    out->url = NULL; /* not NUL-terminated in store: see px_head_copy */
  } else {
    out->status = (int)h->parser.status_code;
  }
}

/* Builds a NUL-terminated copy of the head in one allocation:
 * [flt_head_t][headers[]][strings]. */
static flt_head_t *copy_parts(const flt_head_t *src, const char *url,
                              size_t url_len, const char *reason,
                              size_t reason_len) {
  size_t strings = url_len + 1 + reason_len + 1 + (src->method ? strlen(src->method) : 0) + 1;
  for (size_t i = 0; i < src->n_headers; i++)
    strings += src->headers[i].name_len + src->headers[i].value_len + 2;
  size_t size = sizeof(flt_head_t) + src->n_headers * sizeof(flt_header_t) + strings;
  flt_head_t *dst = malloc(size);
  if (dst == NULL) return NULL;
  flt_header_t *hv = (flt_header_t *)(dst + 1);
  char *p = (char *)(hv + src->n_headers);

  *dst = *src;
  dst->headers = hv;
#define COPY_STR(field, s, n)   \
  do {                          \
    memcpy(p, (s), (n));        \
    p[(n)] = '\0';              \
    field = p;                  \
    p += (n) + 1;               \
  } while (0)
  COPY_STR(dst->method, src->method ? src->method : "", src->method ? strlen(src->method) : 0);
  COPY_STR(dst->url, url ? url : "", url_len);
  COPY_STR(dst->reason, reason ? reason : "", reason_len);
  for (size_t i = 0; i < src->n_headers; i++) {
    COPY_STR(hv[i].name, src->headers[i].name, src->headers[i].name_len);
    hv[i].name_len = src->headers[i].name_len;
    COPY_STR(hv[i].value, src->headers[i].value, src->headers[i].value_len);
    hv[i].value_len = src->headers[i].value_len;
  }
#undef COPY_STR
  return dst;
}

flt_head_t *px_head_copy(const flt_head_t *src) {
  return copy_parts(src, src->url, src->url ? strlen(src->url) : 0, src->reason,
                    src->reason ? strlen(src->reason) : 0);
}

/* The framer's own head, copied with its url/reason (which live unterminated
 * in the store). Used by the session through px_http_copy_head(). */
flt_head_t *px_http_copy_head(px_http_t *h);
flt_head_t *px_http_copy_head(px_http_t *h) {
  flt_head_t view;
  const char *s = h->store.data ? h->store.data : "";
  px_http_head_view(h, &view);
  return copy_parts(&view, s + h->url_off, h->url_len, s + h->reason_off,
                    h->reason_len);
}

static int name_in(const char *name, size_t len, const char *const *list, int n) {
  for (int i = 0; i < n; i++)
    if (strlen(list[i]) == len && strncasecmp(list[i], name, len) == 0) return i;
  return -1;
}

static const char *const hop_names[] = {"connection", "proxy-connection", "keep-alive",
                                        "te", "upgrade", "proxy-authorization"};

int px_http_has_hop_by_hop(px_http_t *h) {
  const char *s = h->store.data ? h->store.data : "";
  for (size_t i = 0; i < h->n_hdr; i++)
    if (name_in(s + h->hdr[i].name_off, h->hdr[i].name_len, hop_names, 6) >= 0) return 1;
  return 0;
}

/* --set-header on one field that --remove-header kept: 1 to send it, with
 * *value replaced when a set names it (the first such field carries the
 * new value, later ones are dropped: one header replaces them all); 0 to
 * drop it. px_http_head_build and px_head_edited share it, so what the
 * views show is what goes out. */
static int edit_set(const px_head_edit_t *e, const char *name, size_t len, int *done,
                    const char **value, size_t *vlen) {
  int k = name_in(name, len, e->set_name, e->n_set);
  if (k < 0) return 1;
  if (done[k]) return 0;
  done[k] = 1;
  *value = e->set_value[k];
  *vlen = strlen(*value);
  return 1;
}

flt_head_t *px_head_edited(const flt_head_t *src, const px_head_edit_t *e) {
  int done[PX_HEAD_MAX_EDITS] = {0};
  flt_header_t *hv = malloc((src->n_headers + (size_t)e->n_set + 1) * sizeof(*hv));
  size_t n = 0;
  if (hv == NULL) return NULL;
  for (size_t i = 0; i < src->n_headers; i++) {
    flt_header_t f = src->headers[i];
    if (name_in(f.name, f.name_len, e->remove, e->n_remove) >= 0) continue;
    if (edit_set(e, f.name, f.name_len, done, &f.value, &f.value_len)) hv[n++] = f;
  }
  for (int k = 0; k < e->n_set; k++) {
    if (done[k]) continue;
    hv[n++] = (flt_header_t){e->set_name[k], strlen(e->set_name[k]), e->set_value[k],
                             strlen(e->set_value[k])};
  }
  flt_head_t tmp = *src;
  tmp.headers = hv;
  tmp.n_headers = n;
  tmp.head_bytes = px_head_wire_size(&tmp);
  flt_head_t *out = px_head_copy(&tmp);
  free(hv);
  return out;
}

size_t px_head_wire_size(const flt_head_t *h) {
  /* "HTTP/1.1" and the status code: 8 and 3 bytes; SP and CRLF between.
   * Copies of response heads carry method "" (px_head_copy). */
  int request = h->method && h->method[0];
  size_t n = request ? strlen(h->method) + 1 + (h->url ? strlen(h->url) : 0) + 1 + 8 + 2
                     : 8 + 1 + 3 + 1 + (h->reason ? strlen(h->reason) : 0) + 2;
  for (size_t i = 0; i < h->n_headers; i++)
    n += h->headers[i].name_len + 2 + h->headers[i].value_len + 2;
  return n + 2;
}

int px_http_head_build(px_http_t *h, const px_head_edit_t *e, flt_strbuf_t *out) {
  const char *s = h->store.data ? h->store.data : "";
  int done[PX_HEAD_MAX_EDITS] = {0};
  int rc = 0, host_seen = 0;
  flt_head_t view;
  px_http_head_view(h, &view);
  if (h->type == HTTP_REQUEST) {
    rc |= flt_strbuf_appendf(out, "%s ", h->method);
    if (e->url)
      rc |= flt_strbuf_append(out, e->url, strlen(e->url));
    else
      rc |= flt_strbuf_append(out, s + h->url_off, h->url_len);
    rc |= flt_strbuf_appendf(out, " HTTP/%d.%d\r\n", h->parser.http_major, h->parser.http_minor);
  } else {
    rc |= flt_strbuf_appendf(out, "HTTP/%d.%d %d ", h->parser.http_major, h->parser.http_minor,
                             h->parser.status_code);
    rc |= flt_strbuf_append(out, s + h->reason_off, h->reason_len);
    rc |= flt_strbuf_append(out, "\r\n", 2);
  }
  for (size_t i = 0; i < h->n_hdr; i++) {
    const px_hdr_off_t *o = &h->hdr[i];
    const char *name = s + o->name_off;
    const char *value = s + o->value_off;
    size_t vlen = o->value_len;
    if (name_in(name, o->name_len, e->remove, e->n_remove) >= 0) continue;
    if (o->name_len == 4 && strncasecmp(name, "host", 4) == 0) host_seen = 1;
    if (e->strip_hop && px_hop_by_hop_drop(&view, i)) continue;
    if (!edit_set(e, name, o->name_len, done, &value, &vlen)) continue;
    if (e->host && o->name_len == 4 && strncasecmp(name, "host", 4) == 0 &&
        name_in(name, o->name_len, e->set_name, e->n_set) < 0) {
      value = e->host;
      vlen = strlen(value);
    }
    rc |= flt_strbuf_append(out, name, o->name_len);
    rc |= flt_strbuf_append(out, ": ", 2);
    rc |= flt_strbuf_append(out, value, vlen);
    rc |= flt_strbuf_append(out, "\r\n", 2);
  }
  for (int k = 0; k < e->n_set; k++) {
    if (done[k]) continue;
    rc |= flt_strbuf_appendf(out, "%s: %s\r\n", e->set_name[k], e->set_value[k]);
  }
  if (e->host && !host_seen) rc |= flt_strbuf_appendf(out, "Host: %s\r\n", e->host);
  char conn[64];
  if (e->strip_hop && px_hop_by_hop_connection(&view, conn, sizeof(conn)))
    rc |= flt_strbuf_appendf(out, "Connection: %s\r\n", conn);
  rc |= flt_strbuf_append(out, "\r\n", 2);
  return rc ? -1 : 0;
}

int px_http_head_rewrite(px_http_t *h, const char *url, const char *host, flt_strbuf_t *out) {
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  e.url = url;
  e.host = host;
  return px_http_head_build(h, &e, out);
}
