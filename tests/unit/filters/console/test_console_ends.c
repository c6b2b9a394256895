/* test_console_ends.c — how the console view (filters/console/console.h)
 * says how a flow ended: sizes with their coding, durations, clients that
 * left (aborted, or held until the connection's close decides), one line
 * per failure, -f on connection errors; and the size and duration
 * formatting rules alone. Driven through a real chain, written to a temp
 * file compared byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "filters/console/console.h"
#include "filters/console/console_internal.h"
#include "tests/unit/filters/console/fixtures/consoleharness.h"

/* ---- harness ------------------------------------------------------------ */

#define SLOT 0

static void harness_open(harness_t *h, int detail, int filtered) {
  flt_console_opts_t o = {.detail = detail, .filtered = filtered};
  harness_start(h, o, 0);
}

static const flt_conn_t conn_template = {
    .id = 1,
    .client = "127.0.0.1:5000",
    .server_host = "example.test",
    .server_port = 443,
    .kind = FLT_CONN_HTTPS,
};

static const flt_header_t req_headers[] = {HDR("Host", "example.test")};

/* A GET at t=1 s that ends at t=1.0035 s. */
static void flow_init(flt_flow_t *f, flt_conn_t *c, const char *url) {
  memset(f, 0, sizeof(*f));
  f->id = 7;
  f->conn = c;
  f->url = (char *)url;
  f->req.http_major = f->req.http_minor = 1;
  f->req.method = "GET";
  f->req.url = "/x";
  f->req.headers = req_headers;
  f->req.n_headers = 1;
  f->t_start_us = 1000000;
  f->t_end_us = 1003500;
}

static void flow_respond(flt_flow_t *f, const flt_header_t *h, size_t n) {
  f->has_response = 1;
  f->resp.http_major = f->resp.http_minor = 1;
  f->resp.status = 200;
  f->resp.reason = "OK";
  f->resp.headers = h;
  f->resp.n_headers = n;
}

static void run_flow(harness_t *h, flt_flow_t *f, const void *body, size_t len) {
  flt_emit_request_head(&h->chain, f);
  flt_emit_request_end(&h->chain, f);
  if (f->has_response) {
    flt_emit_response_head(&h->chain, f);
    f->resp_body_bytes = len;
    if (len) flt_emit_response_body(&h->chain, f, body, len);
  }
  flt_emit_flow_end(&h->chain, f);
}

static size_t gzip_of(const char *text, uint8_t *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)text;
  z.avail_in = (uInt)strlen(text);
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  deflateEnd(&z);
  return z.total_out;
}

/* ---- formatting rules ---------------------------------------------------- */

static void test_duration_rule(void **state) {
  static const struct {
    uint64_t us;
    const char *s;
  } cases[] = {{0, "0.00 ms"},        {420, "0.42 ms"},       {994, "0.99 ms"},
               {995, "1.0 ms"},       {3100, "3.1 ms"},       {9949, "9.9 ms"},
               {9950, "10 ms"},       {35400, "35 ms"},       {999499, "999 ms"},
               {999500, "1.00 s"},    {1020000, "1.02 s"},    {9994999, "9.99 s"},
               {9995000, "10.0 s"},   {12345678, "12.3 s"},   {99950000, "100 s"},
               {250000000, "250 s"}};
  char buf[32];
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    flt_con_duration(buf, sizeof(buf), cases[i].us);
    assert_string_equal(buf, cases[i].s);
  }
}

static void test_body_size_rule(void **state) {
  char buf[96];
  (void)state;
  flt_con_body_size(buf, sizeof(buf), 266, 1, 235, "gzip");
  assert_string_equal(buf, "266 B (235 B gzip)");
  flt_con_body_size(buf, sizeof(buf), 1234000, 1, 5000, "br");
  assert_string_equal(buf, "1.2 MB (5.0 kB br)");
  flt_con_body_size(buf, sizeof(buf), 0, 0, 235, "gzip");
  assert_string_equal(buf, "? (235 B gzip)");
  flt_con_body_size(buf, sizeof(buf), 999, 1, 266, "");
  assert_string_equal(buf, "266 B"); /* not encoded: the bytes as received */
  flt_con_body_size(buf, sizeof(buf), 0, 1, 0, "gzip");
  assert_string_equal(buf, "0 B"); /* an empty body has no coding to show */
}

/* ---- sizes on the flow line ------------------------------------------------ */

static void test_gzip_flow_shows_both_sizes(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain"),
                                    HDR("Content-Encoding", "gzip")};
  const char *text = "twenty-six bytes of text\r\n";
  uint8_t gz[256];
  size_t n = gzip_of(text, gz, sizeof(gz));
  flt_conn_t c = conn_template;
  harness_t h;
  flt_flow_t f;
  char want[256];
  (void)state;

  harness_open(&h, 1, 0);
  flow_init(&f, &c, "https://example.test/x");
  flow_respond(&f, rh, 2);
  run_flow(&h, &f, gz, n);
  /* A corrupt body: its decoded size is not known. */
  flow_init(&f, &c, "https://example.test/bad");
  flow_respond(&f, rh, 2);
  run_flow(&h, &f, "not gzip at all", 15);
  char *out = harness_close(&h);
  snprintf(want, sizeof(want),
           "127.0.0.1:5000 → GET https://example.test/x → 200 text/plain 26 B (%zu B gzip) 3.5 ms\n"
           "127.0.0.1:5000 → GET https://example.test/bad → 200 text/plain ? (15 B gzip) 3.5 ms\n",
           n);
  assert_string_equal(out, want);
  free(out);
}

/* ---- clients that leave -------------------------------------------------- */

static void test_client_gone_before_the_end_is_aborted(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain")};
  flt_conn_t c = conn_template;
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 1, 0);
  flow_init(&f, &c, "https://example.test/slow");
  flow_respond(&f, rh, 1);
  c.client_eof_us = c.client_gone_us = 2020000; /* 1.02 s after the start */
  f.t_end_us = 4020000;
  run_flow(&h, &f, "hello", 5);
  /* And one that was still waiting, ended by the close: aborted too. */
  flow_init(&f, &c, "https://example.test/waiting");
  f.error = "connection closed";
  f.t_end_us = 4020000;
  run_flow(&h, &f, NULL, 0);
  flt_emit_conn_close(&h.chain, &c);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → GET https://example.test/slow → aborted by client after 1.02 s\n"
                      "127.0.0.1:5000 → GET https://example.test/waiting → aborted by client after 1.02 s\n");
  free(out);
}

/* A flow answered after the client's EOF waits for the connection's close:
 * taken, it is a normal line; not taken, aborted since the EOF. */
static void test_answer_after_eof_is_decided_at_close(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain")};
  harness_t h;
  flt_flow_t f;
  (void)state;

  for (int gone = 0; gone < 2; gone++) {
    flt_conn_t c = conn_template;
    harness_open(&h, 2, 0);
    flow_init(&f, &c, "https://example.test/half");
    flow_respond(&f, rh, 1);
    c.client_eof_us = 1500000;
    f.t_end_us = 4000000;
    run_flow(&h, &f, "hi", 2);
    c.client_gone_us = gone ? c.client_eof_us : 0;
    flt_emit_conn_close(&h.chain, &c);
    char *out = harness_close(&h);
    const char *req = "127.0.0.1:5000 → GET https://example.test/half\n"
                      "  > GET /x HTTP/1.1\n"
                      "  > Host: example.test\n";
    const char *resp = "  < HTTP/1.1 200 OK\n"
                       "  < Content-Type: text/plain\n";
    char want[512];
    snprintf(want, sizeof(want), "%s127.0.0.1:5000 → GET https://example.test/half → %s\n%s",
             req, gone ? "aborted by client after 500 ms" : "200 text/plain 2 B 3.00 s", resp);
    assert_string_equal(out, want);
    free(out);
  }
}

/* A client that left after its answer is not said to have aborted it. */
static void test_client_gone_after_the_end_is_not_aborted(void **state) {
  flt_conn_t c = conn_template;
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 1, 0);
  flow_init(&f, &c, "https://example.test/done");
  flow_respond(&f, NULL, 0);
  run_flow(&h, &f, NULL, 0);
  c.client_eof_us = c.client_gone_us = 9000000;
  flt_emit_conn_close(&h.chain, &c);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET https://example.test/done → 200 - 0 B 3.5 ms\n");
  free(out);
}

/* ---- failures and -f ------------------------------------------------------ */

static void test_failed_flow_is_one_line(void **state) {
  flt_conn_t c = conn_template;
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 1, 0);
  flt_emit_error(&h.chain, &c, "connect to example.test:443 failed: connection refused");
  flow_init(&f, &c, "https://example.test/x");
  f.error = "connect to example.test:443 failed: connection refused";
  run_flow(&h, &f, NULL, 0);
  flt_emit_conn_close(&h.chain, &c);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET https://example.test/x → "
                           "ERROR connect to example.test:443 failed: connection refused\n");
  free(out);
}

/* -f hides a connection error of a connection it does not match, and the
 * failed flows of other hosts (f->hidden), with their connection errors. */
static void test_filter_hides_failures(void **state) {
  flt_conn_t c = conn_template, d = conn_template;
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 1, 1);
  c.hidden_decided = 1;
  c.hidden = 1u << SLOT;
  flt_emit_error(&h.chain, &c, "client TLS handshake for example.test failed");
  flt_emit_conn_close(&h.chain, &c);
  flt_emit_error(&h.chain, &d, "connect to other.test:443 failed");
  flow_init(&f, &d, "https://other.test/x");
  f.error = "connect to other.test:443 failed";
  flt_emit_request_head(&h.chain, &f);
  f.hidden = 1u << SLOT;
  flt_emit_flow_end(&h.chain, &f);
  flt_emit_conn_close(&h.chain, &d);
  char *out = harness_close(&h);
  assert_string_equal(out, "");
  free(out);
}

/* With -f the flow is decided at its end: one block, request part first. */
static void test_filtered_detail_2_is_one_block(void **state) {
  flt_conn_t c = conn_template;
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 2, 1);
  flow_init(&f, &c, "https://example.test/x");
  flow_respond(&f, NULL, 0);
  run_flow(&h, &f, NULL, 0);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET https://example.test/x → 200 - 0 B 3.5 ms\n"
                           "  > GET /x HTTP/1.1\n"
                           "  > Host: example.test\n"
                           "  < HTTP/1.1 200 OK\n");
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duration_rule),
      cmocka_unit_test(test_body_size_rule),
      cmocka_unit_test(test_gzip_flow_shows_both_sizes),
      cmocka_unit_test(test_client_gone_before_the_end_is_aborted),
      cmocka_unit_test(test_answer_after_eof_is_decided_at_close),
      cmocka_unit_test(test_client_gone_after_the_end_is_not_aborted),
      cmocka_unit_test(test_failed_flow_is_one_line),
      cmocka_unit_test(test_filter_hides_failures),
      cmocka_unit_test(test_filtered_detail_2_is_one_block),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
