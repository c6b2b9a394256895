/* Unit tests of proxy/intercept.c: the registry of held flows between the
 * workers and the web thread. A decision reaches the holder's async handle
 * (run on a loop here), fits the flow's side and origin, is taken once;
 * the list and the held message are copies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/intercept.h"

static int woken;

static void on_wake(uv_async_t *a) {
  (void)a;
  woken++;
}

static uint64_t plus_100(void *ud, uint64_t flow) {
  (void)ud;
  return flow == 2 ? 0 : flow + 100; /* 2: not in the caller's list */
}

static px_icpt_decision_t resume_with_url(const char *url) {
  px_icpt_decision_t d;
  memset(&d, 0, sizeof(d));
  d.verdict = PX_ICPT_RESUME;
  d.url = url ? strdup(url) : NULL;
  return d;
}

static void test_decide_take_withdraw(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_async_t wake;
  char err[300];
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_async_init(&loop, &wake, on_wake), 0);
  uint64_t gen = px_icpt_generation();
  px_icpt_entry_t *e = px_icpt_publish(7, 0, "https://a.test:8443/x?y", 19, &wake);
  assert_non_null(e);
  assert_true(px_icpt_generation() > gen);
  assert_true(px_icpt_waiting(7));
  assert_false(px_icpt_waiting(8));

  px_icpt_decision_t d, got;
  assert_int_equal(px_icpt_take(e, &got), 0); /* nothing decided yet */
  d = resume_with_url("https://b.test/x");
  assert_int_equal(px_icpt_decide(7, &d, err, sizeof(err)), -2);
  assert_non_null(strstr(err, "keep the origin https://a.test:8443"));
  d = resume_with_url("https://a.test:84430/x"); /* a longer port is another origin */
  assert_int_equal(px_icpt_decide(7, &d, err, sizeof(err)), -2);
  d = resume_with_url(NULL);
  d.status = 201;
  assert_int_equal(px_icpt_decide(7, &d, err, sizeof(err)), -2);
  assert_non_null(strstr(err, "status is for a held response"));
  d = resume_with_url(NULL);
  assert_int_equal(px_icpt_decide(8, &d, err, sizeof(err)), -1);
  assert_true(px_icpt_waiting(7));

  d = resume_with_url("https://A.TEST:8443?q=1");
  assert_int_equal(px_icpt_decide(7, &d, err, sizeof(err)), 0);
  assert_null(d.url); /* the registry owns it now */
  assert_false(px_icpt_waiting(7));
  d = resume_with_url(NULL);
  d.verdict = PX_ICPT_KILL;
  assert_int_equal(px_icpt_decide(7, &d, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "decided already"));
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(woken, 1);
  assert_int_equal(px_icpt_take(e, &got), 1);
  assert_int_equal(got.verdict, PX_ICPT_RESUME);
  assert_string_equal(got.url, "https://A.TEST:8443?q=1");
  px_icpt_decision_free(&got);
  assert_int_equal(px_icpt_take(e, &got), 0); /* once */
  px_icpt_withdraw(e);
  uv_close((uv_handle_t *)&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_list_and_message(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_async_t wake;
  char err[300], origin[300], *head, *body;
  size_t blen;
  px_icpt_body_t st;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_async_init(&loop, &wake, on_wake), 0);
  px_icpt_entry_t *a = px_icpt_publish(1, 0, "http://o\"x", 10, &wake);
  px_icpt_entry_t *b = px_icpt_publish(2, 0, "http://b", 8, &wake);
  px_icpt_entry_t *c = px_icpt_publish(3, 1, "http://c", 8, &wake);
  flt_strbuf_t out;
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_icpt_json(&out, plus_100, NULL), 2); /* 2 is left out */
  assert_non_null(strstr(out.data, "{\"id\":101,\"flow\":1,\"side\":\"request\""));
  assert_non_null(strstr(out.data, "\"origin\":\"http://o\\\"x\"}"));
  assert_non_null(strstr(out.data, "{\"id\":103,\"flow\":3,\"side\":\"response\""));
  assert_true(strstr(out.data, "\"id\":101") < strstr(out.data, "\"id\":103")); /* oldest first */
  flt_strbuf_free(&out);

  assert_int_equal(px_icpt_message(3, &head, &body, &blen, &st, origin), 0);
  assert_string_equal(head, ""); /* nothing captured yet */
  assert_null(body);
  free(head);
  px_icpt_set_message(c, "HTTP/1.1 200 OK\r\n\r\n", 19, "hi", 2, PX_ICPT_BODY_COMPLETE);
  assert_int_equal(px_icpt_message(3, &head, &body, &blen, &st, origin), 0);
  assert_string_equal(head, "HTTP/1.1 200 OK\r\n\r\n");
  assert_int_equal(blen, 2);
  assert_memory_equal(body, "hi", 2);
  assert_int_equal(st, PX_ICPT_BODY_COMPLETE);
  assert_string_equal(origin, "http://c");
  free(head);
  free(body);
  px_icpt_decision_t d;
  memset(&d, 0, sizeof(d));
  d.verdict = PX_ICPT_RESUME;
  d.method = strdup("GET");
  assert_int_equal(px_icpt_decide(3, &d, err, sizeof(err)), -2);
  assert_non_null(strstr(err, "waits with its response"));

  px_icpt_withdraw(a);
  px_icpt_withdraw(b);
  px_icpt_withdraw(c);
  assert_int_equal(px_icpt_message(3, &head, &body, &blen, &st, origin), -1);
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_icpt_json(&out, NULL, NULL), 0);
  flt_strbuf_free(&out);
  uv_close((uv_handle_t *)&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decide_take_withdraw),
      cmocka_unit_test(test_list_and_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
