/* Unit tests of proxy/flow.c: a session's flows in order, found by the
 * stream id of each leg's codec, ended with one flow-end event each. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/http1.h"
#include "proxy/flow.h"

static int ends;
static char last_error[64];

static void on_flow_end(void *ctx, flt_flow_t *f) {
  (void)ctx;
  ends++;
  snprintf(last_error, sizeof(last_error), "%llu:%s", (unsigned long long)f->id,
           f->error ? f->error : "-");
}

static flt_head_t *request(const char *method) {
  flt_head_t h = {.http_major = 1, .http_minor = 1, .method = method, .url = "/"};
  return px_head_copy(&h);
}

static void test_flows_in_order_by_stream(void **state) {
  (void)state;
  static const flt_ops_t ops = {.abi_version = FLT_ABI_VERSION, .name = "t", .on_flow_end = on_flow_end};
  flt_chain_t chain;
  memset(&chain, 0, sizeof(chain));
  assert_true(flt_chain_add(&chain, &ops, NULL) >= 0);
  flt_conn_t conn;
  memset(&conn, 0, sizeof(conn));
  px_flows_t q = {0};

  px_flow_t *a = px_flow_new(1, &conn, request("GET"), NULL, 0);
  px_flow_t *b = px_flow_new(2, &conn, request("HEAD"), strdup("http://x/"), 0);
  assert_non_null(a);
  assert_non_null(b);
  assert_false(a->head_only);
  assert_true(b->head_only);
  px_flows_push(&q, a);
  assert_ptr_equal(px_flows_request(&q, 0), a); /* its request is arriving */
  assert_null(px_flows_request(&q, 1));         /* no flow on another stream */
  px_flows_push(&q, b);
  assert_ptr_equal(px_flows_request(&q, 0), b);
  /* HTTP/1: the response answers the oldest flow. */
  assert_ptr_equal(px_flows_response(&q, 0), a);
  assert_null(px_flows_response(&q, 3));

  flt_head_t *interim = request("GET");
  px_flow_add_interim(a, interim);
  assert_int_equal(a->flow.n_interim, 1);
  assert_ptr_equal(a->flow.interim[0], interim);

  px_flows_finish(&q, a, &chain, NULL);
  assert_int_equal(ends, 1);
  assert_string_equal(last_error, "1:-");
  assert_ptr_equal(q.head, b);
  assert_ptr_equal(px_flows_response(&q, 0), b);
  px_flows_finish(&q, b, &chain, "cut");
  assert_int_equal(ends, 2);
  assert_string_equal(last_error, "2:cut");
  assert_true(px_flows_empty(&q));
  assert_null(q.tail);
  assert_null(q.req);
  /* Out of memory for the head: nothing to free, NULL. */
  assert_null(px_flow_new(3, &conn, NULL, strdup("u"), 0));
  flt_chain_free(&chain);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_flows_in_order_by_stream)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
