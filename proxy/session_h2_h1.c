/* session_h2_h1.c — the flows of an HTTP/2 client leg (session_h2.h), and
 * its requests translated for an HTTP/1.1 upstream leg.
 *
 * The requests of the client's streams form a line (s->h2_line): the first
 * is on the upstream connection, head and body as they come (chunked when
 * the client gave no content-length); the others wait, their bodies kept
 * within their stream's HTTP/2 window (it is given back only as the bytes
 * go upstream). When the response to the first has ended, the next one
 * goes. Responses are de-framed by the HTTP/1 codec and sent on the
 * client's stream as HTTP/2 (session_h2.c says why one connection). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/util/log.h"
#include "proxy/codec/h2.h"
#include "proxy/session.h"
#include "proxy/session_h2.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

static const flt_chain_t *chain_of(px_session_t *s) {
  return &s->w->shared->chain;
}

/* ---- flows of the client leg ------------------------------------------------------------ */

void px_session_h2_end_flow(px_session_t *s, px_flow_t *f, const char *error) {
  px_flows_finish(&s->flows, f, chain_of(s), error);
  if (s->flows.head == NULL) {
    /* Idle: give back the grown TLS buffers; the deadlines count from here. */
    px_tls_trim(&s->client.tls);
    px_tls_trim(&s->upstream.tls);
    px_session_timer_rearm(s);
    px_session_timer_deadline_update(s);
  }
  if (s->end >= PX_END_DRAINING && s->flows.head == NULL && s->state != PX_S_CLOSING) {
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
  }
}

px_flow_t *px_session_h2_flow(px_session_t *s, uint32_t client_stream) {
  for (px_flow_t *f = s->flows.head; f; f = f->next)
    if (f->client_stream == client_stream) return f;
  return NULL;
}

void px_session_h2_upstream_gone(px_session_t *s, const char *why) {
  while (s->flows.head) {
    px_flow_t *f = s->flows.head;
    uint32_t client = f->client_stream;
    px_session_h2_end_flow(s, f, why); /* first: the reset closes the stream */
    px_h2_reset(s->client.codec, client, PX_H2_INTERNAL_ERROR);
  }
  px_h2_goaway(s->client.codec, PX_H2_NO_ERROR);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
  px_maybe_finish(s);
}

/* ---- the line of requests ---------------------------------------------------------------- */

typedef struct h2_line_req {
  uint32_t stream;     /* the client's stream */
  flt_strbuf_t wait;   /* head and body bytes not yet sent upstream */
  size_t body_waiting; /* of which body bytes (consumed once sent) */
  int chunked;         /* the body goes chunked */
  int ended;           /* the request's end is in `wait` (or sent) */
  int head_only;       /* HEAD: the response has no body */
  int status;          /* the last response head's status */
  struct h2_line_req *next;
} h2_line_req_t;

struct px_h2_line {
  h2_line_req_t *first, *last; /* first: on the upstream connection */
};

static void req_free(h2_line_req_t *r) {
  flt_strbuf_free(&r->wait);
  free(r);
}

void px_session_h2_h1_free(px_session_t *s) {
  if (s->h2_line == NULL) return;
  while (s->h2_line->first) {
    h2_line_req_t *r = s->h2_line->first;
    s->h2_line->first = r->next;
    req_free(r);
  }
  free(s->h2_line);
  s->h2_line = NULL;
}

/* Sends what the first request has waiting. */
static void send_first(px_session_t *s) {
  h2_line_req_t *r = s->h2_line ? s->h2_line->first : NULL;
  if (r == NULL || r->wait.len == 0) return;
  flt_strbuf_t out = r->wait;
  size_t body = r->body_waiting;
  flt_strbuf_init(&r->wait, 0);
  r->body_waiting = 0;
  px_send_upstream(s, out.data, out.len);
  flt_strbuf_free(&out);
  if (body) px_h2_consume(s->client.codec, r->stream, body);
}

size_t px_session_h2_h1_queued(const px_session_t *s) {
  if (s->h2_line == NULL || s->h2_line->first == NULL || !px_codec_is_h2(s->client.codec)) return 0;
  return px_h2_queued(s->client.codec, s->h2_line->first->stream);
}

static h2_line_req_t *find(px_session_t *s, uint32_t stream) {
  for (h2_line_req_t *r = s->h2_line ? s->h2_line->first : NULL; r; r = r->next)
    if (r->stream == stream) return r;
  return NULL;
}

static int append(px_session_t *s, h2_line_req_t *r, const char *data, size_t len) {
  if (flt_strbuf_append(&r->wait, data, len) == 0) return 0;
  px_session_close(s, "out of memory");
  return -1;
}

void px_session_h2_h1_request(px_session_t *s, px_codec_t *c, px_flow_t *f,
                              const px_head_edit_t *edit, const px_codec_head_t *hd) {
  flt_head_t view;
  px_codec_head_view(c, hd->stream, &view);
  if (s->h2_line == NULL) s->h2_line = calloc(1, sizeof(*s->h2_line));
  h2_line_req_t *r = s->h2_line ? calloc(1, sizeof(*r)) : NULL;
  if (r == NULL) {
    px_session_close(s, "out of memory");
    return;
  }
  int ended = px_h2_ended_with_head(c, hd->stream);
  flt_strbuf_init(&r->wait, 0);
  r->stream = hd->stream;
  r->ended = ended;
  r->head_only = f->head_only;
  r->chunked = !ended && flt_head_find(&view, "content-length") == NULL;
  if (px_h2_head_to_http1(&view, edit, !ended, &r->wait) != 0) {
    req_free(r);
    px_session_close(s, "out of memory");
    return;
  }
  f->upstream_stream = PX_H2_NO_STREAM;
  if (s->h2_line->last)
    s->h2_line->last->next = r;
  else
    s->h2_line->first = r;
  s->h2_line->last = r;
  if (s->h2_line->first != r) return; /* waits for the responses before it */
  f->upstream_stream = PX_CODEC_STREAM0;
  if (px_upstream_unconnected(s)) px_upstream_start(s);
  if (s->state != PX_S_CLOSING) send_first(s);
}

void px_session_h2_h1_body(px_session_t *s, px_flow_t *f, const char *data, size_t len) {
  h2_line_req_t *r = find(s, f->client_stream);
  if (r == NULL || r->ended) {
    px_h2_consume(s->client.codec, f->client_stream, len);
    return;
  }
  char size[24];
  if (r->chunked) {
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    if (append(s, r, size, (size_t)n) != 0) return;
  }
  if (append(s, r, data, len) != 0 || (r->chunked && append(s, r, "\r\n", 2) != 0)) return;
  r->body_waiting += len;
  if (r == s->h2_line->first) send_first(s);
}

void px_session_h2_h1_end(px_session_t *s, px_flow_t *f, const flt_head_t *trailers) {
  h2_line_req_t *r = find(s, f->client_stream);
  if (r == NULL || r->ended) return;
  r->ended = 1;
  if (r->chunked) {
    if (append(s, r, "0\r\n", 3) != 0) return;
    for (size_t i = 0; trailers && i < trailers->n_headers; i++) {
      const flt_header_t *t = &trailers->headers[i];
      if (append(s, r, t->name, t->name_len) != 0 || append(s, r, ": ", 2) != 0 ||
          append(s, r, t->value, t->value_len) != 0 || append(s, r, "\r\n", 2) != 0)
        return;
    }
    if (append(s, r, "\r\n", 2) != 0) return;
  }
  if (r == s->h2_line->first) send_first(s);
}

/* The next request in line goes upstream. */
static void next_request(px_session_t *s) {
  h2_line_req_t *r = s->h2_line->first;
  s->h2_line->first = r->next;
  if (s->h2_line->last == r) s->h2_line->last = NULL;
  req_free(r);
  r = s->h2_line->first;
  if (r == NULL) return;
  px_flow_t *f = px_session_h2_flow(s, r->stream);
  if (f) f->upstream_stream = PX_CODEC_STREAM0;
  send_first(s);
}

void px_session_h2_h1_cancel(px_session_t *s, px_flow_t *f, const char *why) {
  h2_line_req_t *r = find(s, f->client_stream);
  int cut = r && r == s->h2_line->first && !r->ended;
  px_session_h2_end_flow(s, f,
                         cut ? "the client reset the HTTP/2 stream during its request body" : why);
  if (r == NULL) return;
  if (r != s->h2_line->first) {
    h2_line_req_t **p = &s->h2_line->first, *prev = NULL;
    while (*p != r)
      prev = *p, p = &(*p)->next;
    *p = r->next;
    if (s->h2_line->last == r) s->h2_line->last = prev;
    req_free(r);
    return;
  }
  /* On the upstream connection: its response is read and dropped; a
   * request cut in its body leaves the connection unusable. */
  if (cut)
    px_session_h2_upstream_gone(s, "the client reset a stream whose request was going upstream");
}

/* ---- responses from the HTTP/1 upstream ------------------------------------------------ */

static px_flow_t *first_flow(px_session_t *s, h2_line_req_t **out) {
  h2_line_req_t *r = s->h2_line ? s->h2_line->first : NULL;
  *out = r;
  return r ? px_session_h2_flow(s, r->stream) : NULL;
}

static int on_resp_head(void *owner, px_codec_t *c, const px_codec_head_t *hd) {
  px_session_t *s = owner;
  h2_line_req_t *r;
  px_flow_t *f = first_flow(s, &r);
  if (r == NULL) {
    px_codec_refuse(c, hd->stream, "a response when no request was waiting for one");
    return -1;
  }
  r->status = hd->status;
  if (hd->status == 101) {
    px_codec_refuse(c, hd->stream, "101 Switching Protocols to a request from an HTTP/2 client");
    return -1;
  }
  if (f == NULL) return r->head_only ? 1 : 0; /* the client reset it: dropped */
  if (hd->status >= 100 && hd->status < 200) {
    px_session_http_interim(s, f, c, hd->stream);
    return 0; /* 1xx are not passed on: the final response follows */
  }
  flt_head_t view;
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  px_codec_head_view(c, hd->stream, &view);
  px_session_http_response_begin(s, f, c, hd->stream, &edit);
  px_h2_response(s->client.codec, f->client_stream, &view, &edit);
  return r->head_only ? 1 : 0;
}

static void on_resp_body(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                         size_t len) {
  px_session_t *s = owner;
  h2_line_req_t *r;
  (void)c, (void)stream;
  px_flow_t *f = first_flow(s, &r);
  if (f == NULL || !f->flow.has_response) return;
  f->flow.resp_body_bytes += len;
  flt_emit_response_body(chain_of(s), &f->flow, (const uint8_t *)data, len);
  px_h2_data(s->client.codec, f->client_stream, data, len);
}

static void on_resp_forward(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                            size_t len) {
  (void)owner, (void)c, (void)stream, (void)data, (void)len; /* framing: rebuilt as HTTP/2 */
}

static void on_resp_end(void *owner, px_codec_t *c, uint32_t stream) {
  px_session_t *s = owner;
  h2_line_req_t *r;
  (void)c, (void)stream;
  px_flow_t *f = first_flow(s, &r);
  if (r == NULL || (r->status >= 100 && r->status < 200)) return;
  if (f) {
    uint32_t client = f->client_stream;
    px_session_h2_end_flow(s, f, NULL); /* first: the end may close the client's stream */
    px_h2_end(s->client.codec, client, NULL);
  }
  next_request(s);
}

static void on_resp_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  char text[600];
  (void)c, (void)stream;
  if (s->state == PX_S_CLOSING) return;
  snprintf(text, sizeof(text), "upstream %s:%u sent a malformed HTTP response: %s", s->up_host,
           (unsigned)s->up_port, why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_KEEP);
  px_session_h2_upstream_gone(s, text);
}

static const px_codec_sink_t line_sink = {on_resp_head, on_resp_body,  on_resp_forward,
                                          on_resp_end,  on_resp_error, NULL};

px_codec_t *px_session_h2_h1_codec(px_session_t *s) {
  return px_codec_http1_new(0, &line_sink, s);
}
