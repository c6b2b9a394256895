/* Unit tests for the HTTP/1 framer (proxy/codec/http1.c): events, splits,
 * caps, rewrites and holds. The TLS memory-BIO glue is in
 * tests/unit/proxy/test_tls.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/http1.h"

flt_head_t *px_http_copy_head(px_http_t *h);

/* What the framer reported, in order. */
typedef struct rec {
  flt_strbuf_t forwarded; /* every byte passed on (head + rest) */
  flt_strbuf_t body;      /* de-chunked body bytes */
  flt_strbuf_t events;    /* "H:<method or status> " "E " */
  int skip_next_body;     /* answer on_head with 1 (response to HEAD) */
  int hold_at;            /* answer the head with this number PX_HTTP_HOLD */
  int heads, ends;
} rec_t;

static int on_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  rec_t *r = ud;
  if (r->hold_at != 0 && r->heads + 1 == r->hold_at) {
    r->hold_at = 0;
    flt_strbuf_appendf(&r->events, "HOLD ");
    return PX_HTTP_HOLD;
  }
  flt_head_t *copy = px_http_copy_head(h);
  flt_strbuf_append(&r->forwarded, raw, len);
  if (h->type == HTTP_REQUEST)
    flt_strbuf_appendf(&r->events, "H:%s %s ", copy->method, copy->url);
  else
    flt_strbuf_appendf(&r->events, "H:%d ", copy->status);
  free(copy);
  r->heads++;
  if (r->skip_next_body) {
    r->skip_next_body = 0;
    return 1;
  }
  return 0;
}

static void on_forward(void *ud, const char *data, size_t len) {
  rec_t *r = ud;
  flt_strbuf_append(&r->forwarded, data, len);
}

static void on_body(void *ud, const char *data, size_t len) {
  rec_t *r = ud;
  flt_strbuf_append(&r->body, data, len);
}

static void on_end(void *ud, px_http_t *h) {
  rec_t *r = ud;
  (void)h;
  flt_strbuf_appendf(&r->events, "E ");
  r->ends++;
}

static const px_http_cbs_t cbs = {on_head, on_forward, on_body, on_end};

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof(*r));
  flt_strbuf_init(&r->forwarded, 0);
  flt_strbuf_init(&r->body, 0);
  flt_strbuf_init(&r->events, 0);
}

static void rec_free(rec_t *r) {
  flt_strbuf_free(&r->forwarded);
  flt_strbuf_free(&r->body);
  flt_strbuf_free(&r->events);
}

/* Feeds `in` in pieces of `step` bytes (0 = all at once). */
static int feed(px_http_t *h, const char *in, size_t len, size_t step) {
  if (step == 0) step = len;
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    if (px_http_feed(h, in + off, n) != 0) return -1;
  }
  return 0;
}

static const char pipelined[] =
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n";

/* Every split of the input gives the same events and passes every byte on
 * unchanged, in order. */
static void test_requests_every_split(void **state) {
  (void)state;
  for (size_t step = 0; step <= 7; step++) {
    rec_t r;
    px_http_t h;
    rec_init(&r);
    px_http_init(&h, HTTP_REQUEST, &cbs, &r);
    assert_int_equal(feed(&h, pipelined, sizeof(pipelined) - 1, step), 0);
    assert_string_equal(r.events.data, "H:GET /a E H:POST /b E H:PUT /c E ");
    assert_int_equal(r.forwarded.len, sizeof(pipelined) - 1);
    assert_memory_equal(r.forwarded.data, pipelined, sizeof(pipelined) - 1);
    assert_string_equal(r.body.data, "helloabcde");
    px_http_free(&h);
    rec_free(&r);
  }
}

static void test_headers_in_wire_order(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  flt_head_t v;
  static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX-B: 2\r\nx-a: 1\r\n\r\n";
  rec_init(&r);
  px_http_init(&h, HTTP_REQUEST, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 3), 0);
  px_http_head_view(&h, &v);
  assert_int_equal(v.n_headers, 3);
  assert_memory_equal(v.headers[1].name, "X-B", 3);
  assert_memory_equal(v.headers[2].name, "x-a", 3);
  assert_memory_equal(v.headers[2].value, "1", 1);
  assert_non_null(flt_head_find(&v, "X-A"));
  assert_null(flt_head_find(&v, "missing"));
  px_http_free(&h);
  rec_free(&r);
}

static void test_response_head_skips_body(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  /* A response to HEAD announces a length but carries no body. */
  static const char in[] =
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  rec_init(&r);
  px_http_init(&h, HTTP_RESPONSE, &cbs, &r);
  r.skip_next_body = 1;
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 0), 0);
  assert_string_equal(r.events.data, "H:200 E H:204 E H:304 E H:200 E ");
  assert_string_equal(r.body.data, "ok");
  assert_memory_equal(r.forwarded.data, in, sizeof(in) - 1);
  px_http_free(&h);
  rec_free(&r);
}

static void test_informational_then_final(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  static const char in[] =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nyes";
  rec_init(&r);
  px_http_init(&h, HTTP_RESPONSE, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 1), 0);
  assert_string_equal(r.events.data, "H:100 E H:103 E H:201 E ");
  assert_string_equal(r.body.data, "yes");
  px_http_free(&h);
  rec_free(&r);
}

static void test_close_delimited(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  static const char in[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
  rec_init(&r);
  px_http_init(&h, HTTP_RESPONSE, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 4), 0);
  assert_int_equal(r.ends, 0);
  assert_int_equal(px_http_eof(&h), 0);
  assert_int_equal(r.ends, 1);
  assert_string_equal(r.body.data, "until the end");
  px_http_free(&h);
  rec_free(&r);
}

static void test_truncated_body_is_an_error(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
  rec_init(&r);
  px_http_init(&h, HTTP_RESPONSE, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 0), 0);
  assert_int_equal(px_http_eof(&h), -1);
  assert_non_null(strstr(h.error, "closed"));
  px_http_free(&h);
  rec_free(&r);
}

static void test_upgrade_becomes_raw(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  static const char head[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  static const char in[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "\x81\x05hello-not-http";
  rec_init(&r);
  px_http_init(&h, HTTP_REQUEST, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 0), 0);
  assert_int_equal(r.ends, 1);
  /* Until the answer (101 or not) what follows is kept, not passed on. */
  assert_int_equal(h.state, PX_HTTP_HELD);
  assert_true(h.await_verdict);
  assert_int_equal(r.forwarded.len, sizeof(head) - 1);
  /* 101: the kept bytes and all after them go on raw. */
  px_http_set_raw(&h);
  assert_int_equal(h.state, PX_HTTP_RAW);
  assert_int_equal(feed(&h, "more", 4, 0), 0);
  assert_int_equal(r.forwarded.len, sizeof(in) - 1 + 4);
  assert_memory_equal(r.forwarded.data, in, sizeof(in) - 1);
  px_http_free(&h);
  rec_free(&r);
}

static void test_garbage_is_rejected(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  rec_init(&r);
  px_http_init(&h, HTTP_REQUEST, &cbs, &r);
  assert_int_equal(feed(&h, "he(llo there\r\n\r\n", 16, 0), -1);
  assert_non_null(strstr(h.error, "invalid character in the method"));
  /* Dead stays dead. */
  assert_int_equal(px_http_feed(&h, "GET / HTTP/1.1\r\n\r\n", 18), -1);
  px_http_free(&h);
  rec_free(&r);
}

static void test_head_cap(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  char *big = malloc(PX_HTTP_MAX_HEAD + 100);
  int rc;
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'a', PX_HTTP_MAX_HEAD + 100 - 19);
  rec_init(&r);
  px_http_init(&h, HTTP_REQUEST, &cbs, &r);
  rc = feed(&h, big, PX_HTTP_MAX_HEAD + 100, 1000);
  assert_int_equal(rc, -1);
  assert_non_null(strstr(h.error, "64 KiB"));
  assert_int_equal(r.heads, 0);
  px_http_free(&h);
  rec_free(&r);
  free(big);
}

static void test_head_rewrite(void **state) {
  (void)state;
  rec_t r;
  px_http_t h;
  flt_strbuf_t out;
  static const char in[] =
      "GET http://example.test:8080/p?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nA: b\r\n\r\n";
  rec_init(&r);
  px_http_init(&h, HTTP_REQUEST, &cbs, &r);
  assert_int_equal(feed(&h, in, sizeof(in) - 1, 0), 0);
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_http_head_rewrite(&h, "/p?q=1", "up:1", &out), 0);
  assert_string_equal(out.data, "GET /p?q=1 HTTP/1.1\r\nHost: up:1\r\nA: b\r\n\r\n");
  flt_strbuf_free(&out);
  px_http_free(&h);
  rec_free(&r);
}

/* A head answered PX_HTTP_HOLD stays unparsed with everything after it,
 * however the input was split, until px_http_release() parses it again. */
static void test_hold_and_release(void **state) {
  (void)state;
  size_t first = strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  for (size_t step = 0; step <= 7; step++) {
    rec_t r;
    px_http_t h;
    rec_init(&r);
    r.hold_at = 2;
    px_http_init(&h, HTTP_REQUEST, &cbs, &r);
    assert_int_equal(feed(&h, pipelined, sizeof(pipelined) - 1, step), 0);
    assert_int_equal(h.state, PX_HTTP_HELD);
    assert_string_equal(r.events.data, "H:GET /a E HOLD ");
    assert_int_equal(r.forwarded.len, first);
    assert_int_equal(h.held.len, sizeof(pipelined) - 1 - first);
    assert_int_equal(px_http_release(&h), 0);
    assert_string_equal(r.events.data, "H:GET /a E HOLD H:POST /b E H:PUT /c E ");
    assert_int_equal(r.forwarded.len, sizeof(pipelined) - 1);
    assert_memory_equal(r.forwarded.data, pipelined, sizeof(pipelined) - 1);
    assert_string_equal(r.body.data, "helloabcde");
    assert_int_equal(px_http_release(&h), 0); /* nothing held: no-op */
    px_http_free(&h);
    rec_free(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_requests_every_split),
      cmocka_unit_test(test_headers_in_wire_order),
      cmocka_unit_test(test_response_head_skips_body),
      cmocka_unit_test(test_informational_then_final),
      cmocka_unit_test(test_close_delimited),
      cmocka_unit_test(test_truncated_body_is_an_error),
      cmocka_unit_test(test_upgrade_becomes_raw),
      cmocka_unit_test(test_garbage_is_rejected),
      cmocka_unit_test(test_head_cap),
      cmocka_unit_test(test_head_rewrite),
      cmocka_unit_test(test_hold_and_release),
  };
  return cmocka_run_group_tests_name("http1_framer", tests, NULL, NULL);
}
