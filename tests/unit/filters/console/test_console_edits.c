/* test_console_edits.c — the console's view of what tlspeek changed and
 * relayed (console.h): heads as forwarded with their "  ~ " lines, and
 * interim (1xx) responses ahead of the final one. Driven through a real
 * chain writing to a temp file, compared byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/console/console.h"
#include "filters/console/console_internal.h"
#include "tests/unit/filters/console/fixtures/consoleharness.h"

static void harness_open(harness_t *h, int detail) {
  flt_console_opts_t o = {.detail = detail, .color = 0};
  harness_start(h, o, 0);
}

static flt_conn_t test_conn = {
    .id = 1, .client = "127.0.0.1:5000", .server_host = "example.test", .server_port = 443};

static const flt_header_t req_received[] = {HDR("Host", "example.test"), HDR("Cookie", "a=b"),
                                            HDR("X-Debug", "0"), HDR("Content-Length", "3")};
static const flt_header_t req_forwarded[] = {HDR("Host", "example.test"), HDR("X-Debug", "1"),
                                             HDR("Content-Length", "3")};

static void flow_init(flt_flow_t *f) {
  memset(f, 0, sizeof(*f));
  f->id = 9;
  f->conn = &test_conn;
  snprintf(f->scheme, sizeof(f->scheme), "https");
  f->url = (char *)"https://example.test/up";
  f->req = (flt_head_t){.http_major = 1,
                        .http_minor = 1,
                        .method = "PUT",
                        .url = "/up",
                        .headers = req_received,
                        .n_headers = 4};
  f->t_start_us = 1000000;
  f->t_end_us = 1002000;
}

static void respond(flt_flow_t *f, const flt_header_t *h, size_t n) {
  f->has_response = 1;
  f->resp = (flt_head_t){.http_major = 1,
                         .http_minor = 1,
                         .status = 200,
                         .reason = "OK",
                         .headers = h,
                         .n_headers = n};
}

static void test_forwarded_request_head_and_changes(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Length", "0")};
  flt_head_t sent;
  flt_flow_t f;
  harness_t h;
  (void)state;

  harness_open(&h, 2);
  flow_init(&f);
  sent = f.req;
  sent.headers = req_forwarded;
  sent.n_headers = 3;
  f.req_sent = &sent;
  respond(&f, rh, 1);
  flt_emit_request_head(&h.chain, &f);
  flt_emit_response_head(&h.chain, &f);
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → PUT https://example.test/up\n"
                      "  > PUT /up HTTP/1.1\n"
                      "  > Host: example.test\n"
                      "  > X-Debug: 1\n"
                      "  > Content-Length: 3\n"
                      "  ~ removed: Cookie\n"
                      "  ~ set: X-Debug: 1\n"
                      "127.0.0.1:5000 → PUT https://example.test/up → 200 - 0 B 2.0 ms\n"
                      "  < HTTP/1.1 200 OK\n"
                      "  < Content-Length: 0\n");
  free(out);
}

static void test_forwarded_response_head(void **state) {
  static const flt_header_t rh[] = {HDR("Server", "x"), HDR("Content-Length", "0")};
  static const flt_header_t rs[] = {HDR("Content-Length", "0"), HDR("X-Added", "yes")};
  flt_head_t sent;
  flt_flow_t f;
  harness_t h;
  (void)state;

  harness_open(&h, 2);
  flow_init(&f);
  respond(&f, rh, 2);
  sent = f.resp;
  sent.headers = rs;
  sent.n_headers = 2;
  f.resp_sent = &sent;
  flt_emit_request_head(&h.chain, &f);
  flt_emit_response_head(&h.chain, &f);
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  const char *resp = strstr(out, "  < HTTP/1.1 200 OK\n");
  assert_non_null(resp);
  assert_string_equal(resp,
                      "  < HTTP/1.1 200 OK\n"
                      "  < Content-Length: 0\n"
                      "  < X-Added: yes\n"
                      "  ~ removed: Server\n"
                      "  ~ set: X-Added: yes\n");
  /* The request was not edited: as received, no "~" line after its head. */
  assert_non_null(strstr(out, "  > Cookie: a=b\n  > X-Debug: 0\n  > Content-Length: 3\n127.0.0.1"));
  free(out);
}

static void test_interim_before_final(void **state) {
  static const flt_header_t hints[] = {HDR("Link", "</s.css>; rel=preload")};
  static const flt_header_t rh[] = {HDR("Content-Length", "0")};
  flt_head_t i100 = {.http_major = 1, .http_minor = 1, .status = 100, .reason = "Continue"};
  flt_head_t i103 = {.http_major = 1,
                     .http_minor = 1,
                     .status = 103,
                     .reason = "Early Hints",
                     .headers = hints,
                     .n_headers = 1};
  const flt_head_t *interim[] = {&i100, &i103};
  flt_flow_t f;
  harness_t h;
  (void)state;

  harness_open(&h, 2);
  flow_init(&f);
  f.req.n_headers = 1;
  flt_emit_request_head(&h.chain, &f);
  f.interim = interim;
  f.n_interim = 2;
  respond(&f, rh, 1);
  flt_emit_response_head(&h.chain, &f);
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → PUT https://example.test/up\n"
                      "  > PUT /up HTTP/1.1\n"
                      "  > Host: example.test\n"
                      "127.0.0.1:5000 → PUT https://example.test/up → 200 - 0 B 2.0 ms\n"
                      "  < HTTP/1.1 100 Continue\n"
                      "  < HTTP/1.1 103 Early Hints\n"
                      "  < Link: </s.css>; rel=preload\n"
                      "  < HTTP/1.1 200 OK\n"
                      "  < Content-Length: 0\n");
  free(out);
}

/* A 100 Continue and then no final response: the 100 is still shown. */
static void test_interim_without_final(void **state) {
  flt_head_t i100 = {.http_major = 1, .http_minor = 1, .status = 100, .reason = "Continue"};
  const flt_head_t *interim[] = {&i100};
  flt_flow_t f;
  harness_t h;
  (void)state;

  harness_open(&h, 2);
  flow_init(&f);
  f.req.n_headers = 1;
  flt_emit_request_head(&h.chain, &f);
  f.interim = interim;
  f.n_interim = 1;
  f.error = "upstream closed the connection in the middle of the response";
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → PUT https://example.test/up\n"
                      "  > PUT /up HTTP/1.1\n"
                      "  > Host: example.test\n"
                      "127.0.0.1:5000 → PUT https://example.test/up → ERROR upstream "
                      "closed the connection in the middle of the response\n"
                      "  < HTTP/1.1 100 Continue\n");
  free(out);
}

/* Detail 1 stays one line: no heads, no "~" lines, no interim heads. */
static void test_detail_1_unchanged(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Length", "0")};
  flt_head_t i100 = {.http_major = 1, .http_minor = 1, .status = 100, .reason = "Continue"};
  const flt_head_t *interim[] = {&i100};
  flt_head_t sent;
  flt_flow_t f;
  harness_t h;
  (void)state;

  harness_open(&h, 1);
  flow_init(&f);
  sent = f.req;
  sent.headers = req_forwarded;
  sent.n_headers = 3;
  f.req_sent = &sent;
  flt_emit_request_head(&h.chain, &f);
  f.interim = interim;
  f.n_interim = 1;
  respond(&f, rh, 1);
  flt_emit_response_head(&h.chain, &f);
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → PUT https://example.test/up → 200 - 0 B 2.0 ms\n");
  free(out);
}

/* ---- flt_con_render_changes on its own ------------------------------------ */

static char *changes(const flt_header_t *a, size_t na, const flt_header_t *b, size_t nb,
                     int color) {
  flt_head_t ha = {.headers = a, .n_headers = na}, hb = {.headers = b, .n_headers = nb};
  flt_strbuf_t out;
  flt_strbuf_init(&out, 4096);
  assert_int_equal(flt_con_render_changes(&out, &ha, &hb, color), 0);
  char *s = strndup(out.data ? out.data : "", out.len);
  flt_strbuf_free(&out);
  return s;
}

static void test_changes_by_name(void **state) {
  static const flt_header_t a[] = {HDR("Set-Cookie", "a=1"), HDR("set-cookie", "b=2"),
                                   HDR("Server", "x"), HDR("X-Keep", "k")};
  static const flt_header_t same[] = {HDR("Set-Cookie", "a=1"), HDR("set-cookie", "b=2"),
                                      HDR("server", "x"), HDR("X-Keep", "k")};
  static const flt_header_t one[] = {HDR("Set-Cookie", "c=3"), HDR("X-Keep", "k"),
                                     HDR("X-Ctl", "a\033[2Jb")};
  (void)state;

  char *s = changes(a, 4, same, 4, 0); /* names compare case-insensitively */
  assert_string_equal(s, "");
  free(s);
  /* Two Set-Cookie replaced by one; Server removed; a value with an
   * escape sequence is escaped. */
  s = changes(a, 4, one, 3, 0);
  assert_string_equal(s,
                      "  ~ removed: Server\n"
                      "  ~ set: Set-Cookie: c=3\n"
                      "  ~ set: X-Ctl: a\\x1b[2Jb\n");
  free(s);
  /* Dropping the second of two fields of one name is a change too. */
  s = changes(a, 4, a, 1, 0);
  assert_string_equal(s,
                      "  ~ removed: Server\n"
                      "  ~ removed: X-Keep\n"
                      "  ~ set: Set-Cookie: a=1\n");
  free(s);
  s = changes(a, 4, one, 1, 1);
  assert_non_null(strstr(s, "  ~ \033[33mremoved: Server\033[0m\n"));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forwarded_request_head_and_changes),
      cmocka_unit_test(test_forwarded_response_head),
      cmocka_unit_test(test_interim_before_final),
      cmocka_unit_test(test_interim_without_final),
      cmocka_unit_test(test_detail_1_unchanged),
      cmocka_unit_test(test_changes_by_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
