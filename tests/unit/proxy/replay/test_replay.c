/* Unit tests of proxy/replay/: the requests made from a transcript
 * (replay_load.c), the filter that claims a flow by its client address and
 * hashes its answer, and the comparison (replay_filter.c). The senders are
 * tested end to end (tests/e2e/test_replay.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/expr/expr.h"
#include "proxy/replay/replay_internal.h"

static const char har[] =
    "{\"log\":{\"entries\":["
    "{\"request\":{\"method\":\"POST\",\"url\":\"https://api.test:8443/p?q=1\",\"headers\":["
    "{\"name\":\"Host\",\"value\":\"old.test\"},"
    "{\"name\":\"Connection\",\"value\":\"keep-alive, X-Gone\"},"
    "{\"name\":\"X-Gone\",\"value\":\"1\"},{\"name\":\"Keep-Alive\",\"value\":\"300\"},"
    "{\"name\":\"Transfer-Encoding\",\"value\":\"chunked\"},"
    "{\"name\":\"X-Keep\",\"value\":\"yes\"},{\"name\":\"Expect\",\"value\":\"100-continue\"},{\"name\":\":authority\",\"value\":\"api.test\"}],"
    "\"postData\":{\"mimeType\":\"text/plain\",\"text\":\"hello\"}},"
    "\"response\":{\"status\":200,\"headers\":[],\"content\":{\"size\":2,\"text\":\"ok\"}}},"
    "{\"request\":{\"method\":\"GET\",\"url\":\"http://plain.test/x\",\"headers\":[]},"
    "\"response\":{\"status\":204,\"headers\":[],\"content\":{\"size\":0}}},"
    "{\"request\":{\"method\":\"GET\",\"url\":\"ftp://nope.test/\",\"headers\":[]},"
    "\"response\":{\"status\":200,\"headers\":[],\"content\":{\"size\":0}}},"
    "{\"request\":{\"method\":\"GET\",\"url\":\"https://[::1]?q=1#top\",\"headers\":[]},"
    "\"response\":{\"status\":200,\"headers\":[],\"content\":{\"size\":0}}}]}}";

static char path[64];

static int setup(void **state) {
  (void)state;
  snprintf(path, sizeof(path), "/tmp/test_replay_XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0 || write(fd, har, sizeof(har) - 1) != (ssize_t)(sizeof(har) - 1)) return -1;
  close(fd);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  return 0;
}

static px_replay_t *load(const char *expr) {
  char err[512];
  flt_expr_t *e = expr ? flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, err, sizeof(err)) : NULL;
  px_replay_t *r = px_replay_load(path, e, 1, err, sizeof(err));
  if (r == NULL) fail_msg("%s", err);
  flt_expr_free(e);
  return r;
}

static void test_requests_are_rebuilt(void **state) {
  (void)state;
  px_replay_t *r = load(NULL);
  assert_int_equal(px_replay_count(r), 4);
  const px_replay_item_t *it = &r->items[0];
  assert_true(it->tls);
  assert_string_equal(it->host, "api.test");
  assert_string_equal(it->port, "8443");
  assert_string_equal(it->request,
                      "POST /p?q=1 HTTP/1.1\r\nHost: api.test:8443\r\nX-Keep: yes\r\n"
                      "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
  assert_int_equal(it->rec_status, 200);
  assert_true(it->rec_hashed);
  char sha[65];
  px_replay_sha256_hex("ok", 2, sha);
  assert_string_equal(it->rec_sha, sha);
  /* http:// goes to the proxy in absolute form. */
  assert_false(r->items[1].tls);
  assert_string_equal(r->items[1].port, "80");
  assert_string_equal(r->items[1].request,
                      "GET http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\n"
                      "Connection: close\r\n\r\n");
  /* Not an http(s) URL: kept, with the reason, and never sent. */
  assert_null(r->items[2].request);
  assert_non_null(strstr(r->items[2].not_sent, "not an absolute http:// or https:// URL"));
  /* A query without a path, a fragment (not sent), an IPv6 literal. */
  assert_string_equal(r->items[3].host, "::1");
  assert_string_equal(r->items[3].port, "443");
  assert_string_equal(r->items[3].request,
                      "GET /?q=1 HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n");
  px_replay_free(r);
}

static void test_select(void **state) {
  (void)state;
  px_replay_t *r = load("~m GET");
  assert_int_equal(px_replay_count(r), 3);
  assert_int_equal(r->items[0].entry, 2);
  assert_int_equal(r->items[1].entry, 3);
  px_replay_free(r);
}

/* The report of `r` into a string (caller frees), its status in *rc. */
static char *report(px_replay_t *r, int *rc) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  *rc = px_replay_report(r, f);
  fclose(f);
  return text;
}

static void test_filter_tags_hashes_and_compares(void **state) {
  (void)state;
  px_replay_t *r = load("~u api.test");
  flt_conn_t conn = {.client = "127.0.0.1:4242"};
  flt_header_t none[1];
  flt_flow_t f;
  memset(&f, 0, sizeof(f));
  f.conn = &conn;
  px_replay_set_slot(r, 0);
  snprintf(r->items[0].client, sizeof(r->items[0].client), "127.0.0.1:4242");
  px_replay_filter_ops.on_request_head(r, &f);
  assert_ptr_equal(f.fctx[0], &r->items[0]);
  char want[200];
  snprintf(want, sizeof(want), "replayed: from %s entry 1 (recorded 200, 2 bytes, sha256 %.12s\u2026)",
           path, r->items[0].rec_sha);
  assert_string_equal(f.actions, want);
  f.resp = (flt_head_t){.status = 404, .headers = none, .n_headers = 0};
  f.has_response = 1;
  px_replay_filter_ops.on_response_head(r, &f);
  px_replay_filter_ops.on_response_body(r, &f, (const uint8_t *)"o", 1);
  px_replay_filter_ops.on_response_body(r, &f, (const uint8_t *)"k", 1);
  px_replay_filter_ops.on_flow_end(r, &f);
  int rc;
  char *text = report(r, &rc);
  assert_int_equal(rc, 0);
  assert_string_equal(text, "replay: entry 1 POST https://api.test:8443/p?q=1: 200 -> 404, body same\n"
                            "replay: 1 request, 0 same status, 1 changed (POST "
                            "https://api.test:8443/p?q=1: 200 -> 404), 0 bodies differ\n");
  free(text);
  free(f.actions);
  px_replay_free(r);
}

static void test_unsent_entries_fail(void **state) {
  (void)state;
  px_replay_t *r = load(NULL);
  int rc;
  char *text = report(r, &rc);
  assert_int_equal(rc, 1);
  assert_non_null(strstr(text, "replay: entry 1 POST https://api.test:8443/p?q=1: failed: "
                               "not sent: tlspeek stopped first\n"));
  assert_non_null(strstr(text, "replay: entry 3 GET ftp://nope.test/: failed: not sent: its URL "
                               "is not an absolute http:// or https:// URL\n"));
  assert_non_null(strstr(text, "replay: 4 requests, 0 same status, 0 changed, 0 bodies differ, "
                               "4 failed\n"));
  free(text);
  px_replay_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_requests_are_rebuilt),
      cmocka_unit_test(test_select),
      cmocka_unit_test(test_filter_tags_hashes_and_compares),
      cmocka_unit_test(test_unsent_entries_fail),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
