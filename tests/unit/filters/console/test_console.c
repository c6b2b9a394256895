/* test_console.c — the console view (filters/console/console.h) driven through a
 * real chain with synthetic connections and flows, writing to a temp file
 * whose contents are compared byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "filters/console/console.h"
#include "filters/console/console_internal.h"
#include "tests/unit/filters/console/fixtures/consoleharness.h"

/* ---- harness ------------------------------------------------------------ */

static void harness_open_filtered(harness_t *h, int detail, size_t limit,
                                  int color, int filtered) {
  flt_console_opts_t o = {.detail = detail, .body_limit = limit,
                          .color = color, .filtered = filtered};
  harness_start(h, o, 1);
}

static void harness_open(harness_t *h, int detail, size_t limit, int color) {
  harness_open_filtered(h, detail, limit, color, 0);
}

static flt_conn_t test_conn = {
    .id = 1,
    .client = "127.0.0.1:5000",
    .server_host = "example.test",
    .server_port = 443,
    .kind = FLT_CONN_HTTPS,
};

static const flt_header_t get_headers[] = {HDR("Host", "example.test"),
                                           HDR("user-agent", "curl/7.88.1"),
                                           HDR("Accept", "*/*")};

/* A GET flow at t=1 s; the caller adds the response. */
static void flow_init(flt_flow_t *f, const char *url) {
  memset(f, 0, sizeof(*f));
  f->id = 7;
  f->conn = &test_conn;
  snprintf(f->scheme, sizeof(f->scheme), "https");
  f->url = (char *)url;
  f->req.http_major = 1;
  f->req.http_minor = 1;
  f->req.method = "GET";
  f->req.url = "/api";
  f->req.headers = get_headers;
  f->req.n_headers = 3;
  f->t_start_us = 1000000;
  f->t_end_us = 1035400; /* 35.4 ms */
}

static void flow_respond(flt_flow_t *f, int status, const char *reason,
                         const flt_header_t *h, size_t n) {
  f->has_response = 1;
  f->resp.http_major = 1;
  f->resp.http_minor = 1;
  f->resp.status = status;
  f->resp.reason = reason;
  f->resp.headers = h;
  f->resp.n_headers = n;
}

/* Runs a whole flow through the chain: request head and end, response
 * head, body in chunks of `step`, flow end. */
static void run_flow(harness_t *h, flt_flow_t *f, const void *body,
                     size_t len, size_t step) {
  const uint8_t *p = body;
  flt_emit_request_head(&h->chain, f);
  flt_emit_request_end(&h->chain, f);
  if (f->has_response) {
    flt_emit_response_head(&h->chain, f);
    for (size_t off = 0; off < len; off += step) {
      size_t n = len - off < step ? len - off : step;
      f->resp_body_bytes += n;
      flt_emit_response_body(&h->chain, f, p + off, n);
    }
  }
  flt_emit_flow_end(&h->chain, f);
}

static void run_json_flow(harness_t *h) {
  static const flt_header_t rh[] = {
      HDR("Content-Type", "application/json; charset=utf-8"),
      HDR("Content-Length", "26")};
  const char *body = "{\"ok\":true,\"items\":[1,2]}\n";
  flt_flow_t f;

  flow_init(&f, "https://example.test/api");
  flow_respond(&f, 200, "OK", rh, 2);
  run_flow(h, &f, body, strlen(body), 5);
}

/* ---- detail levels ------------------------------------------------------ */

static void test_detail_0_shows_nothing(void **state) {
  harness_t h;
  (void)state;
  harness_open(&h, 0, 0, 0);
  run_json_flow(&h);
  char *out = harness_close(&h);
  assert_string_equal(out, "");
  free(out);
}

static void test_detail_1_line(void **state) {
  harness_t h;
  (void)state;
  harness_open(&h, 1, 0, 0);
  run_json_flow(&h);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET https://example.test/api → "
                           "200 application/json 26 B 35 ms\n");
  free(out);
}

static void test_detail_1_size_and_missing_type(void **state) {
  static char body[1234];
  harness_t h;
  flt_flow_t f;
  (void)state;

  memset(body, 'x', sizeof(body));
  harness_open(&h, 1, 0, 0);
  flow_init(&f, "http://example.test/big");
  flow_respond(&f, 404, "Not Found", NULL, 0);
  run_flow(&h, &f, body, sizeof(body), 100);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET http://example.test/big → "
                           "404 - 1.2 kB 35 ms\n");
  free(out);
}

static void test_detail_1_error_flow(void **state) {
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 1, 0, 0);
  flow_init(&f, "https://example.test/api");
  f.error = "upstream connect failed: connection refused";
  run_flow(&h, &f, NULL, 0, 1);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 → GET https://example.test/api → "
                           "ERROR upstream connect failed: connection refused\n");
  free(out);
}

static void test_detail_2_heads(void **state) {
  harness_t h;
  (void)state;
  harness_open(&h, 2, 0, 0);
  run_json_flow(&h);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → GET https://example.test/api\n"
                      "  > GET /api HTTP/1.1\n"
                      "  > Host: example.test\n"
                      "  > user-agent: curl/7.88.1\n"
                      "  > Accept: */*\n"
                      "127.0.0.1:5000 → GET https://example.test/api → "
                      "200 application/json 26 B 35 ms\n"
                      "  < HTTP/1.1 200 OK\n"
                      "  < Content-Type: application/json; charset=utf-8\n"
                      "  < Content-Length: 26\n");
  free(out);
}

static void test_detail_3_json_pretty(void **state) {
  harness_t h;
  (void)state;
  harness_open(&h, 3, 0, 0);
  run_json_flow(&h);
  char *out = harness_close(&h);
  assert_non_null(strstr(out,
                         "  < Content-Length: 26\n"
                         "    {\n"
                         "      \"ok\": true,\n"
                         "      \"items\": [\n"
                         "        1,\n"
                         "        2\n"
                         "      ]\n"
                         "    }\n"));
  /* Nothing after the body: the block ends there. */
  assert_string_equal(out + strlen(out) - 6, "    }\n");
  free(out);
}

/* A POST with a form body, and a gzip'd text response read 1 byte at a
 * time: both bodies, each after its own head. */
static void test_detail_3_request_body_and_gzip_text(void **state) {
  static const flt_header_t qh[] = {
      HDR("Content-Type", "application/x-www-form-urlencoded")};
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain"),
                                    HDR("Content-Encoding", "gzip")};
  const char *text = "line one\r\nline two\r\n\r\nlast\tline";
  uint8_t gz[256];
  z_stream z;
  harness_t h;
  flt_flow_t f;
  (void)state;

  memset(&z, 0, sizeof(z));
  deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)text;
  z.avail_in = (uInt)strlen(text);
  z.next_out = gz;
  z.avail_out = sizeof(gz);
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  deflateEnd(&z);

  harness_open(&h, 3, 0, 0);
  flow_init(&f, "https://example.test/form");
  f.req.method = "POST";
  f.req.url = "/form";
  f.req.headers = qh;
  f.req.n_headers = 1;
  flt_emit_request_head(&h.chain, &f);
  flt_emit_request_body(&h.chain, &f, (const uint8_t *)"a=1&b=2", 7);
  flt_emit_request_end(&h.chain, &f);
  flow_respond(&f, 200, "OK", rh, 2);
  flt_emit_response_head(&h.chain, &f);
  for (size_t i = 0; i < z.total_out; i++) {
    f.resp_body_bytes++;
    flt_emit_response_body(&h.chain, &f, gz + i, 1);
  }
  flt_emit_flow_end(&h.chain, &f);
  char *out = harness_close(&h);
  char expected[1024];
  snprintf(expected, sizeof(expected),
           "127.0.0.1:5000 → POST https://example.test/form\n"
           "  > POST /form HTTP/1.1\n"
           "  > Content-Type: application/x-www-form-urlencoded\n"
           "127.0.0.1:5000 → POST https://example.test/form → "
           "200 text/plain 31 B (%lu B gzip) 35 ms\n"
           "    a=1&b=2\n"
           "  < HTTP/1.1 200 OK\n"
           "  < Content-Type: text/plain\n"
           "  < Content-Encoding: gzip\n"
           "    line one\n"
           "    line two\n"
           "    \n"
           "    last\tline\n",
           (unsigned long)z.total_out);
  assert_string_equal(out, expected);
  free(out);
}

static void test_detail_3_binary_hexdump(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "image/png")};
  static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                0,    0,   0,   13,  'I',  'H',  'D',  'R',
                                0,    0,   1};
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 3, 0, 0);
  flow_init(&f, "https://example.test/a.png");
  flow_respond(&f, 200, "OK", rh, 1);
  run_flow(&h, &f, png, sizeof(png), 4);
  char *out = harness_close(&h);
  assert_non_null(strstr(
      out, "  < Content-Type: image/png\n"
           "    00000000: 8950 4e47 0d0a 1a0a 0000 000d 4948 4452  .PNG........IHDR\n"
           "    00000010: 0000 01                                  ...\n"));
  free(out);
}

static void test_detail_3_cut_identity(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain")};
  static char body[100];
  harness_t h;
  flt_flow_t f;
  (void)state;

  memset(body, 'z', sizeof(body));
  harness_open(&h, 3, 16, 0);
  flow_init(&f, "https://example.test/big");
  flow_respond(&f, 200, "OK", rh, 1);
  run_flow(&h, &f, body, sizeof(body), 30);
  char *out = harness_close(&h);
  assert_non_null(strstr(out, "  < Content-Type: text/plain\n"
                              "    zzzzzzzzzzzzzzzz\n"
                              "    … body cut at 16 of 100 bytes (--body-limit)\n"));
  free(out);
}

static void test_detail_3_cut_encoded(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "application/octet-stream"),
                                    HDR("Content-Encoding", "gzip")};
  static uint8_t zeros[10000], gz[1000];
  z_stream z;
  harness_t h;
  flt_flow_t f;
  (void)state;

  memset(&z, 0, sizeof(z));
  deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  z.next_in = zeros;
  z.avail_in = sizeof(zeros);
  z.next_out = gz;
  z.avail_out = sizeof(gz);
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  deflateEnd(&z);

  harness_open(&h, 3, 32, 0);
  flow_init(&f, "https://example.test/zeros");
  flow_respond(&f, 200, "OK", rh, 2);
  run_flow(&h, &f, gz, z.total_out, 1000);
  char *out = harness_close(&h);
  char expected[512];
  snprintf(expected, sizeof(expected),
           "  < Content-Encoding: gzip\n"
           "    00000000: 0000 0000 0000 0000 0000 0000 0000 0000  ................\n"
           "    00000010: 0000 0000 0000 0000 0000 0000 0000 0000  ................\n"
           "    … body cut at 32 decoded bytes of %lu bytes gzip (--body-limit)\n",
           (unsigned long)z.total_out);
  assert_non_null(strstr(out, expected));
  free(out);
}

static void test_detail_3_decode_error(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/html"),
                                    HDR("Content-Encoding", "gzip")};
  const char *body = "<html>not gzip</html>";
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 3, 0, 0);
  flow_init(&f, "https://example.test/");
  flow_respond(&f, 200, "OK", rh, 2);
  run_flow(&h, &f, body, strlen(body), 100);
  char *out = harness_close(&h);
  assert_non_null(strstr(
      out, "  < Content-Encoding: gzip\n"
           "    (gzip: could not decode: incorrect header check)\n"
           "    00000000: 3c68 746d 6c3e 6e6f 7420 677a 6970 3c2f  <html>not gzip</\n"
           "    00000010: 6874 6d6c 3e                             html>\n"));
  free(out);
}

static void test_detail_3_empty_body(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Length", "0")};
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 3, 0, 0);
  flow_init(&f, "https://example.test/empty");
  flow_respond(&f, 204, "No Content", rh, 1);
  run_flow(&h, &f, NULL, 0, 1);
  char *out = harness_close(&h);
  assert_string_equal(out,
                      "127.0.0.1:5000 → GET https://example.test/empty\n"
                      "  > GET /api HTTP/1.1\n"
                      "  > Host: example.test\n"
                      "  > user-agent: curl/7.88.1\n"
                      "  > Accept: */*\n"
                      "127.0.0.1:5000 → GET https://example.test/empty → "
                      "204 - 0 B 35 ms\n"
                      "  < HTTP/1.1 204 No Content\n"
                      "  < Content-Length: 0\n");
  free(out);
}

/* Terminal escapes from the wire must never reach the terminal. */
static void test_control_chars_escaped(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain"),
                                    HDR("X-Evil", "a\x1b[31mb")};
  const char *body = "hi\x1b]0;pwned\x07 there\xff";
  harness_t h;
  flt_flow_t f;
  (void)state;

  harness_open(&h, 3, 0, 0);
  flow_init(&f, "https://example.test/e");
  flow_respond(&f, 200, "OK", rh, 2);
  run_flow(&h, &f, body, strlen(body), 100);
  char *out = harness_close(&h);
  assert_null(strchr(out, '\x1b'));
  assert_non_null(strstr(out, "  < X-Evil: a\\x1b[31mb\n"
                              "    hi\\x1b]0;pwned\\x07 there\\xff\n"));
  free(out);
}

/* ---- concurrency: blocks never interleave ----------------------------- */

/* Two flows whose events alternate: each block comes out whole, in the
 * order the flows ended. */
static void test_two_flows_do_not_interleave(void **state) {
  static const flt_header_t rh[] = {HDR("Content-Type", "text/plain")};
  harness_t h;
  flt_flow_t a, b;
  (void)state;

  harness_open(&h, 3, 0, 0);
  flow_init(&a, "https://example.test/a");
  flow_init(&b, "https://example.test/b");
  flt_emit_request_head(&h.chain, &a);
  flt_emit_request_head(&h.chain, &b);
  flow_respond(&a, 200, "OK", rh, 1);
  flow_respond(&b, 200, "OK", rh, 1);
  flt_emit_response_head(&h.chain, &a);
  flt_emit_response_head(&h.chain, &b);
  a.resp_body_bytes = b.resp_body_bytes = 6;
  flt_emit_response_body(&h.chain, &a, (const uint8_t *)"AAA\n", 4);
  flt_emit_response_body(&h.chain, &b, (const uint8_t *)"BBB\n", 4);
  flt_emit_response_body(&h.chain, &a, (const uint8_t *)"A2", 2);
  flt_emit_response_body(&h.chain, &b, (const uint8_t *)"B2", 2);
  flt_emit_flow_end(&h.chain, &b);
  flt_emit_flow_end(&h.chain, &a);
  char *out = harness_close(&h);
  const char *req = "  > GET /api HTTP/1.1\n"
                    "  > Host: example.test\n"
                    "  > user-agent: curl/7.88.1\n"
                    "  > Accept: */*\n";
  const char *resp = "  < HTTP/1.1 200 OK\n"
                     "  < Content-Type: text/plain\n";
  char expected[2048];
  snprintf(expected, sizeof(expected),
           "127.0.0.1:5000 → GET https://example.test/a\n%s"
           "127.0.0.1:5000 → GET https://example.test/b\n%s"
           "127.0.0.1:5000 → GET https://example.test/b → 200 text/plain 6 B 35 ms\n"
           "%s    BBB\n    B2\n"
           "127.0.0.1:5000 → GET https://example.test/a → 200 text/plain 6 B 35 ms\n"
           "%s    AAA\n    A2\n",
           req, req, resp, resp);
  assert_string_equal(out, expected);
  free(out);
}

#define THREADS 4
#define FLOWS_PER_THREAD 200

typedef struct worker_arg {
  harness_t *h;
  int id;
} worker_arg_t;

static void *worker_main(void *p) {
  worker_arg_t *w = p;
  flt_conn_t conn = test_conn;
  flt_header_t rh[1] = {HDR("Content-Type", "text/plain")};
  char url[64], body[64];

  snprintf(conn.client, sizeof(conn.client), "10.0.0.%d:1", w->id);
  for (int i = 0; i < FLOWS_PER_THREAD; i++) {
    flt_flow_t f;
    snprintf(url, sizeof(url), "https://t%d.test/%d", w->id, i);
    flow_init(&f, url);
    f.conn = &conn;
    flow_respond(&f, 200, "OK", rh, 1);
    int n = snprintf(body, sizeof(body), "body of t%d/%d\n", w->id, i);
    run_flow(w->h, &f, body, (size_t)n, 3);
  }
  return NULL;
}

/* Flows from several threads at once: every block stays in one piece (a
 * request block is its line and four "  > " lines; a response block's
 * body line names the same flow as its first line). */
static void test_threads_blocks_stay_whole(void **state) {
  pthread_t th[THREADS];
  worker_arg_t args[THREADS];
  harness_t h;
  int blocks = 0;
  (void)state;

  harness_open(&h, 3, 0, 0);
  for (int i = 0; i < THREADS; i++) {
    args[i] = (worker_arg_t){&h, i};
    pthread_create(&th[i], NULL, worker_main, &args[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  char *out = harness_close(&h);
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    int t, n, t2, n2;
    if (sscanf(line, "10.0.0.%*d:1 → GET https://t%d.test/%d", &t, &n) != 2)
      continue;
    if (strstr(line, " → 200 ") == NULL) { /* the request part */
      for (int k = 0; k < 4; k++) {
        line = strtok(NULL, "\n");
        assert_non_null(line);
        assert_memory_equal(line, "  > ", 4);
      }
      continue;
    }
    for (int k = 0; k < 3; k++) line = strtok(NULL, "\n");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "    body of t%d/%d", &t2, &n2), 2);
    assert_int_equal(t, t2);
    assert_int_equal(n, n2);
    blocks++;
  }
  assert_int_equal(blocks, THREADS * FLOWS_PER_THREAD);
  free(out);
}

/* ---- raw streams, errors, colour --------------------------------------- */

static void test_raw_stream(void **state) {
  flt_conn_t c = test_conn;
  harness_t h;
  (void)state;

  c.kind = FLT_CONN_RAW;
  snprintf(c.server_host, sizeof(c.server_host), "db.test");
  c.server_port = 5432;
  harness_open(&h, 3, 20, 0);
  flt_emit_conn_open(&h.chain, &c);
  flt_emit_raw(&h.chain, &c, FLT_DIR_REQUEST, (const uint8_t *)"HELLO\x00", 6);
  flt_emit_raw(&h.chain, &c, FLT_DIR_RESPONSE, (const uint8_t *)"0123456789", 10);
  flt_emit_raw(&h.chain, &c, FLT_DIR_REQUEST, (const uint8_t *)"abcdefgh", 8);
  flt_emit_raw(&h.chain, &c, FLT_DIR_RESPONSE, (const uint8_t *)"xyz", 3);
  flt_emit_conn_close(&h.chain, &c);
  char *out = harness_close(&h);
  assert_string_equal(
      out,
      "127.0.0.1:5000 ⇄ raw db.test:5432 > 6 B\n"
      "    00000000: 4845 4c4c 4f00                           HELLO.\n"
      "127.0.0.1:5000 ⇄ raw db.test:5432 < 10 B\n"
      "    00000000: 3031 3233 3435 3637 3839                 0123456789\n"
      "127.0.0.1:5000 ⇄ raw db.test:5432 > 8 B\n"
      "    00000006: 6162 6364                                abcd\n"
      "127.0.0.1:5000 ⇄ raw db.test:5432 14 B in, 13 B out\n"
      "    … raw data cut at 20 of 27 bytes (--body-limit)\n");
  free(out);
}

static void test_raw_stream_detail_1(void **state) {
  flt_conn_t c = test_conn;
  harness_t h;
  (void)state;

  c.kind = FLT_CONN_RAW;
  snprintf(c.server_host, sizeof(c.server_host), "::1");
  harness_open(&h, 1, 0, 0);
  flt_emit_raw(&h.chain, &c, FLT_DIR_RESPONSE, (const uint8_t *)"x", 1);
  flt_emit_conn_close(&h.chain, &c);
  /* An HTTP connection without raw bytes gets no line. */
  flt_emit_conn_close(&h.chain, &test_conn);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 ⇄ raw [::1]:443 0 B in, 1 B out\n");
  free(out);
}

/* A connection error is shown when its connection closes. */
static void test_error_line(void **state) {
  flt_conn_t c = test_conn;
  harness_t h;
  (void)state;
  harness_open(&h, 1, 0, 0);
  flt_emit_error(&h.chain, &c, "TLS handshake with client failed: unknown ca");
  flt_emit_conn_close(&h.chain, &c);
  char *out = harness_close(&h);
  assert_string_equal(out, "127.0.0.1:5000 ✗ TLS handshake with client failed: unknown ca\n");
  free(out);
}

static void test_colour(void **state) {
  harness_t h;
  (void)state;

  harness_open(&h, 2, 0, 1);
  run_json_flow(&h);
  char *out = harness_close(&h);
  assert_non_null(strstr(out, " → \033[1mGET\033[0m "));
  assert_non_null(strstr(out, " → \033[32m200\033[0m application/json"));
  assert_non_null(strstr(out, "  > \033[36mHost\033[0m: example.test\n"));
  free(out);

  /* Auto: the temp file is no terminal, so no colour. */
  harness_open(&h, 2, 0, -1);
  run_json_flow(&h);
  out = harness_close(&h);
  assert_null(strchr(out, '\033'));
  free(out);
}

/* ---- rendering helpers ------------------------------------------------ */

static void test_human_size(void **state) {
  static const struct {
    uint64_t n;
    const char *s;
  } cases[] = {{0, "0 B"},          {512, "512 B"},       {999, "999 B"},
               {1000, "1.0 kB"},    {1234, "1.2 kB"},     {999949, "999.9 kB"},
               {999950, "1.0 MB"},  {50000000, "50.0 MB"}, {3100000000u, "3.1 GB"}};
  char buf[32];
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    flt_con_human_size(buf, sizeof(buf), cases[i].n);
    assert_string_equal(buf, cases[i].s);
  }
}

static void test_media_type_and_charset(void **state) {
  char m[64], cs[32];
  (void)state;
  flt_con_media_type(" Application/JSON ; charset=\"UTF-8\"", m, sizeof(m));
  flt_con_charset(" Application/JSON ; charset=\"UTF-8\"", cs, sizeof(cs));
  assert_string_equal(m, "application/json");
  assert_string_equal(cs, "utf-8");
  flt_con_charset("text/html", cs, sizeof(cs));
  assert_string_equal(cs, "");
  assert_true(flt_con_media_is_text("text/html"));
  assert_true(flt_con_media_is_text("application/vnd.api+json"));
  assert_true(flt_con_media_is_text("application/javascript"));
  assert_true(flt_con_media_is_text("image/svg+xml"));
  assert_false(flt_con_media_is_text("image/png"));
  assert_false(flt_con_media_is_text(""));
}

static void test_utf8_clean(void **state) {
  (void)state;
  assert_true(flt_con_utf8_is_clean((const uint8_t *)"h\xc3\xa9llo\r\n\t", 9, 0));
  assert_false(flt_con_utf8_is_clean((const uint8_t *)"a\x01", 2, 0));
  assert_false(flt_con_utf8_is_clean((const uint8_t *)"\xc0\x80", 2, 0));
  assert_false(flt_con_utf8_is_clean((const uint8_t *)"\xed\xa0\x80", 3, 0));
  /* "é" cut in half by the body limit is still text, but only when cut. */
  assert_false(flt_con_utf8_is_clean((const uint8_t *)"ab\xc3", 3, 0));
  assert_true(flt_con_utf8_is_clean((const uint8_t *)"ab\xc3", 3, 1));
}

static void test_render_latin1_and_json_edge_cases(void **state) {
  flt_strbuf_t b;
  (void)state;

  flt_strbuf_init(&b, 0);
  assert_int_equal(flt_con_render_text(&b, (const uint8_t *)"caf\xe9\x85", 5, 1), 0);
  assert_string_equal(b.data, "    caf\xc3\xa9\\x85\n");
  flt_strbuf_reset(&b);

  /* Numbers are kept as sent; empty containers stay compact. */
  const char *j = " {\"big\": 12345678901234567890, \"e\": {}, \"a\": [ ],"
                  " \"s\": \"x\\\"y,{\"} ";
  assert_int_equal(flt_con_render_json(&b, (const uint8_t *)j, strlen(j)), 0);
  assert_string_equal(b.data, "    {\n"
                              "      \"big\": 12345678901234567890,\n"
                              "      \"e\": {},\n"
                              "      \"a\": [],\n"
                              "      \"s\": \"x\\\"y,{\"\n"
                              "    }\n");
  flt_strbuf_reset(&b);
  /* Not one document: refused, buffer untouched. */
  assert_int_equal(flt_con_render_json(&b, (const uint8_t *)"{} {}", 5), -1);
  assert_int_equal(flt_con_render_json(&b, (const uint8_t *)"{\"a\":", 5), -1);
  assert_int_equal(b.len, 0);

  /* Deep nesting would grow quadratically when indented: refused, so the
   * body is shown as the text it is. */
  char deep[1800];
  memset(deep, '[', 900);
  memset(deep + 900, ']', 900);
  assert_int_equal(flt_con_render_json(&b, (const uint8_t *)deep, sizeof(deep)), -1);
  assert_int_equal(b.len, 0);
  flt_strbuf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detail_0_shows_nothing),
      cmocka_unit_test(test_detail_1_line),
      cmocka_unit_test(test_detail_1_size_and_missing_type),
      cmocka_unit_test(test_detail_1_error_flow),
      cmocka_unit_test(test_detail_2_heads),
      cmocka_unit_test(test_detail_3_json_pretty),
      cmocka_unit_test(test_detail_3_request_body_and_gzip_text),
      cmocka_unit_test(test_detail_3_binary_hexdump),
      cmocka_unit_test(test_detail_3_cut_identity),
      cmocka_unit_test(test_detail_3_cut_encoded),
      cmocka_unit_test(test_detail_3_decode_error),
      cmocka_unit_test(test_detail_3_empty_body),
      cmocka_unit_test(test_control_chars_escaped),
      cmocka_unit_test(test_two_flows_do_not_interleave),
      cmocka_unit_test(test_threads_blocks_stay_whole),
      cmocka_unit_test(test_raw_stream),
      cmocka_unit_test(test_raw_stream_detail_1),
      cmocka_unit_test(test_error_line),
      cmocka_unit_test(test_colour),
      cmocka_unit_test(test_human_size),
      cmocka_unit_test(test_media_type_and_charset),
      cmocka_unit_test(test_utf8_clean),
      cmocka_unit_test(test_render_latin1_and_json_edge_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
