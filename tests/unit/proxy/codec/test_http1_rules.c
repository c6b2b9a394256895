/* Unit tests for the strict HTTP/1 request rules (proxy/codec/http1.c,
 * proxy/codec/http1_check.c): what a request may look like before tlspeek passes
 * it on, so that it and the server behind it frame it the same way. */
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

typedef struct rec {
  flt_strbuf_t forwarded; /* every byte passed on (head + rest) */
  flt_strbuf_t events;    /* "H:<method> <url> " "E " */
} rec_t;

static int on_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  rec_t *r = ud;
  flt_head_t *copy = px_http_copy_head(h);
  flt_strbuf_append(&r->forwarded, raw, len);
  flt_strbuf_appendf(&r->events, "H:%s %s ", copy->method, copy->url);
  free(copy);
  return 0;
}
static void on_forward(void *ud, const char *data, size_t len) {
  flt_strbuf_append(&((rec_t *)ud)->forwarded, data, len);
}
static void on_end(void *ud, px_http_t *h) {
  (void)h;
  flt_strbuf_appendf(&((rec_t *)ud)->events, "E ");
}
static const px_http_cbs_t cbs = {on_head, on_forward, NULL, on_end};

/* Feeds `in` in pieces of `step` bytes (0 = all at once) to a fresh request
 * framer; returns px_http_feed's answer. The framer stays in *h. */
static int run(px_http_t *h, rec_t *r, const char *in, size_t step) {
  size_t len = strlen(in);
  memset(r, 0, sizeof(*r));
  flt_strbuf_init(&r->forwarded, 0);
  flt_strbuf_init(&r->events, 0);
  px_http_init(h, HTTP_REQUEST, &cbs, r);
  if (step == 0) step = len;
  for (size_t off = 0; off < len; off += step)
    if (px_http_feed(h, in + off, len - off < step ? len - off : step) != 0) return -1;
  return 0;
}

static void done(px_http_t *h, rec_t *r) {
  px_http_free(h);
  flt_strbuf_free(&r->forwarded);
  flt_strbuf_free(&r->events);
}

/* RFC 9112 §2.2: empty lines before a request line are skipped, and not
 * passed on; the request after them is parsed (and seen) as any other. */
static void test_leading_empty_lines(void **state) {
  (void)state;
  for (size_t step = 0; step <= 3; step++) {
    px_http_t h;
    rec_t r;
    assert_int_equal(run(&h, &r, "\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /secret HTTP/1.1\r\n"
                                 "Host: x\r\n\r\n", step), 0);
    assert_string_equal(r.events.data, "H:GET /a E H:GET /secret E ");
    assert_string_equal(r.forwarded.data, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                          "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    done(&h, &r);
  }
}

/* Any token is a method (RFC 9110 §9.1); it is kept as sent, and its body
 * is framed by Content-Length like any other. */
static void test_token_methods(void **state) {
  (void)state;
  static const char in[] = "FOO /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                           "m-search.x /b HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t step = 0; step <= 4; step++) {
    px_http_t h;
    rec_t r;
    assert_int_equal(run(&h, &r, in, step), 0);
    assert_string_equal(r.events.data, "H:FOO /a E H:m-search.x /b E ");
    assert_string_equal(r.forwarded.data, in);
    done(&h, &r);
  }
  px_http_t h;
  rec_t r;
  assert_int_equal(run(&h, &r, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\n\r\n", 0), -1);
  assert_non_null(strstr(h.error, "method longer than 32"));
  done(&h, &r);
  /* CONNECT keeps its meaning: the target is authority-form. */
  assert_int_equal(run(&h, &r, "CONNECT a.example:443 HTTP/1.1\r\n\r\n", 0), 0);
  assert_int_equal(h.parser.method, HTTP_CONNECT);
  assert_string_equal(r.events.data, "H:CONNECT a.example:443 E ");
  done(&h, &r);
}

/* After Upgrade, a server that answers anything but 101 leaves the
 * connection HTTP: the request hidden behind it is parsed as a request. */
static void test_refused_upgrade_parses_the_rest(void **state) {
  (void)state;
  px_http_t h;
  rec_t r;
  assert_int_equal(run(&h, &r, "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
                               "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n", 5), 0);
  assert_string_equal(r.events.data, "H:GET / E ");
  assert_int_equal(h.state, PX_HTTP_HELD);
  assert_int_equal(px_http_resume_http(&h), 0);
  assert_string_equal(r.events.data, "H:GET / E H:GET /secret E ");
  assert_string_equal(r.forwarded.data,
                      "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
                      "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
  done(&h, &r);
}

/* Requests that a lenient parser and a strict server would frame apart. */
static void test_ambiguous_requests_rejected(void **state) {
  (void)state;
  static const struct {
    const char *in, *why;
  } bad[] = {
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       "HPE_UNEXPECTED_CONTENT_LENGTH"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
       "final coding is not chunked"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
       "final coding is not chunked"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
       "final coding is not chunked"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
       "whitespace between a header name and its colon"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
       "obsolete line folding"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
       "\r\n0\r\n\r\n",
       "chunked transfer coding applied more than once"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       "HPE_UNEXPECTED_CONTENT_LENGTH"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", "HPE_INVALID_CONTENT_LENGTH"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", "HPE_INVALID_CONTENT_LENGTH"},
      {"POST / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello", "bare LF"},
      {"GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF"},
      {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "single spaces"},
      {"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "more than one Host"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
       "HPE_INVALID_CONTENT_LENGTH"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
       "chunk data not followed by CRLF"},
      /* a quoted CRLF in a chunk extension ends the size line */
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nc\"\r\nhello\r\n",
       "chunk data not followed by CRLF"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
       "HPE_INVALID_CHUNK_SIZE"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    for (size_t step = 0; step <= 1; step++) {
      px_http_t h;
      rec_t r;
      int rc = run(&h, &r, bad[i].in, step);
      if (rc != -1 || strstr(h.error, bad[i].why) == NULL)
        fail_msg("case %zu step %zu: rc %d error \"%s\", want \"%s\"", i, step, rc, h.error,
                 bad[i].why);
      assert_null(strstr(r.events.data ? r.events.data : "", "E "));
      done(&h, &r);
    }
  }
}

static void test_sniff(void **state) {
  (void)state;
  assert_int_equal(px_http_sniff("GET / HTTP/1.1\r\n", 16), PX_SNIFF_HTTP);
  assert_int_equal(px_http_sniff("\r\n\r\nGET /", 9), PX_SNIFF_HTTP);
  assert_int_equal(px_http_sniff("\r\n", 2), PX_SNIFF_MORE);
  assert_int_equal(px_http_sniff("GE", 2), PX_SNIFF_MORE);
  assert_int_equal(px_http_sniff("M-SEARCH * HTTP/1.1\r\n", 21), PX_SNIFF_HTTP);
  assert_int_equal(px_http_sniff("foo /x", 6), PX_SNIFF_MORE);
  assert_int_equal(px_http_sniff("foo /x HTTP/1.1\r\n", 17), PX_SNIFF_HTTP);
  assert_int_equal(px_http_sniff("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 32), PX_SNIFF_RAW);
  assert_int_equal(px_http_sniff("\x16\x03\x01", 3), PX_SNIFF_RAW);
  assert_int_equal(px_http_sniff("HELLO\x00", 6), PX_SNIFF_RAW);
}

static char *rebuilt(const char *in, const char *host) {
  px_http_t h;
  rec_t r;
  flt_strbuf_t out;
  assert_int_equal(run(&h, &r, in, 0), 0);
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  e.strip_hop = px_http_has_hop_by_hop(&h);
  e.host = host;
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_http_head_build(&h, &e, &out), 0);
  done(&h, &r);
  size_t len;
  return flt_strbuf_detach(&out, &len);
}

/* RFC 9110 §7.6.1: what concerns only the client and tlspeek stays here. */
static void test_hop_by_hop_stripped(void **state) {
  (void)state;
  char *o = rebuilt("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, content-length\r\n"
                    "X-Secret: 1\r\nProxy-Connection: keep-alive\r\nKeep-Alive: 5\r\nTE: gzip\r\n"
                    "Proxy-Authorization: Basic dTpw\r\nUpgrade: h2c\r\nContent-Length: 0\r\n"
                    "X-Kept: 2\r\n\r\n", NULL);
  assert_string_equal(o, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nX-Kept: 2\r\n"
                         "Connection: close\r\n\r\n");
  free(o);
  /* A WebSocket upgrade still works through tlspeek. */
  o = rebuilt("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
              "Upgrade: websocket\r\nTE: trailers\r\n\r\n", NULL);
  assert_string_equal(o, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nTE: trailers\r\n"
                         "Connection: keep-alive, upgrade\r\n\r\n");
  free(o);
  /* Host is replaced, or added when missing. */
  o = rebuilt("GET / HTTP/1.1\r\nHost: other\r\n\r\n", "site:8080");
  assert_string_equal(o, "GET / HTTP/1.1\r\nHost: site:8080\r\n\r\n");
  free(o);
  o = rebuilt("GET / HTTP/1.0\r\n\r\n", "site");
  assert_string_equal(o, "GET / HTTP/1.0\r\nHost: site\r\n\r\n");
  free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_leading_empty_lines),
      cmocka_unit_test(test_token_methods),
      cmocka_unit_test(test_refused_upgrade_parses_the_rest),
      cmocka_unit_test(test_ambiguous_requests_rejected),
      cmocka_unit_test(test_sniff),
      cmocka_unit_test(test_hop_by_hop_stripped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
