/* Unit tests of the h2 codec (proxy/codec/h2.c, h2_send.c, h2_head.c): an
 * upstream-side codec and a client-side codec wired back to back through
 * queues, as two legs of HTTP/2 would be, each with a recording sink; and
 * the head conversions on their own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/h2.h"

typedef struct side {
  px_codec_t *codec;
  flt_strbuf_t out; /* frames it sent, not yet given to the peer */
  flt_strbuf_t log; /* "head ...|body N|trailers k=v|end|close code|error|" */
  flt_strbuf_t body;
} side_t;

static int on_head(void *o, px_codec_t *c, const px_codec_head_t *h) {
  side_t *s = o;
  flt_head_t v;
  px_codec_head_view(c, h->stream, &v);
  if (h->request) {
    const flt_header_t *x = flt_head_find(&v, "x-set");
    flt_strbuf_appendf(&s->log, "head %s %s s=%u x=%.*s cookie=%d|", v.method, v.url, h->stream,
                       x ? (int)x->value_len : 0, x ? x->value : "",
                       flt_head_find(&v, "cookie") != NULL);
  } else {
    flt_strbuf_appendf(&s->log, "head %d s=%u|", h->status, h->stream);
  }
  return 0;
}
static void on_body(void *o, px_codec_t *c, uint32_t st, const char *d, size_t n) {
  side_t *s = o;
  flt_strbuf_append(&s->body, d, n);
  px_h2_consume(c, st, n);
}
static void on_fwd(void *o, px_codec_t *c, uint32_t st, const char *d, size_t n) {
  (void)o, (void)c, (void)st, (void)d, (void)n;
}
static void on_end(void *o, px_codec_t *c, uint32_t st) {
  (void)c;
  flt_strbuf_appendf(&((side_t *)o)->log, "end s=%u|", st);
}
static void on_error(void *o, px_codec_t *c, uint32_t st, const char *why) {
  (void)c, (void)st, (void)why;
  flt_strbuf_appendf(&((side_t *)o)->log, "error|");
}
static void io_send(void *o, px_codec_t *c, const char *d, size_t n) {
  (void)c;
  flt_strbuf_append(&((side_t *)o)->out, d, n);
}
static void io_sent(void *o, px_codec_t *c, uint32_t st, size_t n) {
  (void)o, (void)c, (void)st, (void)n;
}
static void io_trailers(void *o, px_codec_t *c, uint32_t st, const flt_head_t *t) {
  (void)c, (void)st;
  for (size_t i = 0; i < t->n_headers; i++)
    flt_strbuf_appendf(&((side_t *)o)->log, "trailer %.*s=%.*s|", (int)t->headers[i].name_len,
                       t->headers[i].name, (int)t->headers[i].value_len, t->headers[i].value);
}
static void io_close(void *o, px_codec_t *c, uint32_t st, uint32_t code) {
  (void)c;
  flt_strbuf_appendf(&((side_t *)o)->log, "close s=%u code=%u|", st, code);
}

static const px_codec_sink_t sink = {on_head, on_body, on_fwd, on_end, on_error, NULL};
static const px_h2_io_t io = {io_send, io_sent, io_trailers, io_close, NULL, NULL};

static void side_init(side_t *s, int server) {
  memset(s, 0, sizeof(*s));
  flt_strbuf_init(&s->out, 0);
  flt_strbuf_init(&s->log, 0);
  flt_strbuf_init(&s->body, 0);
  s->codec = px_codec_h2_new(server, &sink, &io, s);
  assert_non_null(s->codec);
  px_h2_flush_codec(s->codec);
}

static void side_free(side_t *s) {
  px_codec_free(s->codec);
  flt_strbuf_free(&s->out);
  flt_strbuf_free(&s->log);
  flt_strbuf_free(&s->body);
}

/* Gives each side what the other sent until both are quiet. */
static void pump(side_t *a, side_t *b) {
  for (int i = 0; i < 100 && (a->out.len || b->out.len); i++) {
    side_t *from = a->out.len ? a : b, *to = from == a ? b : a;
    flt_strbuf_t bytes = from->out;
    flt_strbuf_init(&from->out, 0);
    px_codec_input(to->codec, bytes.data, bytes.len);
    flt_strbuf_free(&bytes);
  }
}

static void test_request_response_trailers(void **state) {
  (void)state;
  side_t up, cl; /* up: tlspeek's upstream leg (client side); cl: the server it talks to */
  side_init(&up, 0);
  side_init(&cl, 1);
  flt_header_t hdr[3] = {{"Host", 4, "example.test", 12},
                         {"Cookie", 6, "a=1", 3},
                         {"Connection", 10, "keep-alive", 10}};
  flt_head_t req = {.http_major = 1,
                    .http_minor = 1,
                    .method = "POST",
                    .url = "/p?q=1",
                    .headers = hdr,
                    .n_headers = 3};
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  e.set_name[0] = "X-Set";
  e.set_value[0] = "yes";
  e.n_set = 1;
  e.remove[e.n_remove++] = "cookie";
  int32_t id = px_h2_request(up.codec, &req, &e, "fallback.test", "https");
  assert_int_equal(id, 1);
  assert_int_equal(px_h2_data(up.codec, 1, "abc", 3), 0);
  assert_int_equal(px_h2_end(up.codec, 1, NULL), 0);
  pump(&up, &cl);
  assert_string_equal(cl.log.data, "head POST /p?q=1 s=1 x=yes cookie=0|end s=1|");
  assert_string_equal(cl.body.data, "abc");
  flt_head_t v;
  px_codec_head_view(cl.codec, 1, &v);
  assert_string_equal(flt_head_find(&v, ":authority")->value, "example.test"); /* from Host */
  assert_null(flt_head_find(&v, "connection"));

  flt_header_t rh[1] = {{"Content-Type", 12, "application/grpc", 16}};
  flt_head_t resp = {.http_major = 2, .status = 200, .headers = rh, .n_headers = 1};
  flt_header_t th[1] = {{"grpc-status", 11, "0", 1}};
  flt_head_t trl = {.headers = th, .n_headers = 1};
  assert_int_equal(px_h2_response(cl.codec, 1, &resp, NULL), 0);
  assert_int_equal(px_h2_data(cl.codec, 1, "\0\0\0\0\0", 5), 0);
  assert_int_equal(px_h2_end(cl.codec, 1, &trl), 0);
  pump(&up, &cl);
  assert_string_equal(up.log.data, "head 200 s=1|trailer grpc-status=0|end s=1|close s=1 code=0|");
  assert_int_equal(up.body.len, 5);
  side_free(&up);
  side_free(&cl);
}

/* The error code of the GOAWAY among the frames in `b`, or -1. */
static long goaway_code(const flt_strbuf_t *b) {
  const unsigned char *p = (const unsigned char *)b->data;
  size_t at = 0;
  while (p && at + 9 <= b->len) {
    size_t n = ((size_t)p[at] << 16) | ((size_t)p[at + 1] << 8) | p[at + 2];
    if (at + 9 + n > b->len) break;
    if (p[at + 3] == 7 && n >= 8)
      return ((long)p[at + 13] << 24) | (p[at + 14] << 16) | (p[at + 15] << 8) | p[at + 16];
    at += 9 + n;
  }
  return -1;
}

static void test_reset_and_malformed(void **state) {
  (void)state;
  side_t up, cl;
  side_init(&up, 0);
  side_init(&cl, 1);
  flt_head_t req = {.http_major = 2, .method = "GET", .url = "/"};
  assert_int_equal(px_h2_request(up.codec, &req, NULL, "a.test", "https"), 1);
  pump(&up, &cl);
  px_h2_reset(up.codec, 1, PX_H2_CANCEL);
  pump(&up, &cl);
  assert_non_null(strstr(cl.log.data, "close s=1 code=8|"));
  /* SETTINGS on a stream: a connection error, GOAWAY PROTOCOL_ERROR. */
  static const char bad[] = "\x00\x00\x00\x04\x00\x00\x00\x00\x03";
  assert_int_equal(px_codec_input(cl.codec, bad, 9), -1);
  assert_non_null(strstr(cl.log.data, "error|"));
  assert_int_equal(px_codec_phase(cl.codec), PX_CODEC_FAILED);
  assert_int_equal(goaway_code(&cl.out), PX_H2_PROTOCOL_ERROR);
  side_free(&up);
  side_free(&cl);
}

static void test_h2_request_as_http1(void **state) {
  (void)state;
  flt_header_t hdr[5] = {{":method", 7, "POST", 4},
                         {":authority", 10, "h.test:8443", 11},
                         {"cookie", 6, "a=1", 3},
                         {"cookie", 6, "b=2", 3},
                         {"te", 2, "trailers", 8}};
  flt_head_t h = {.http_major = 2, .method = "POST", .url = "/x", .headers = hdr, .n_headers = 5};
  flt_strbuf_t out;
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_h2_head_to_http1(&h, NULL, 1, &out), 0);
  assert_string_equal(out.data,
                      "POST /x HTTP/1.1\r\nhost: h.test:8443\r\ncookie: a=1; b=2\r\n"
                      "transfer-encoding: chunked\r\n\r\n");
  flt_strbuf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_response_trailers),
      cmocka_unit_test(test_reset_and_malformed),
      cmocka_unit_test(test_h2_request_as_http1),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
