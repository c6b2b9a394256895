/* test_proxyauth.c — proxy/modes/proxyauth.c: Basic and RFC 1929 credential checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/modes/proxyauth.h"

static const char expect[] = "alice:s3cret:with:colons";

static int basic(const char *value) {
  return px_proxyauth_basic_ok(expect, value, strlen(value));
}

static void test_basic_accepts_the_right_credentials(void **state) {
  (void)state;
  /* base64("alice:s3cret:with:colons") */
  assert_true(basic("Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"));
  assert_true(basic("basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"));         /* scheme case */
  assert_true(basic("  BASIC \t YWxpY2U6czNjcmV0OndpdGg6Y29sb25z \t")); /* spaces */
}

static void test_basic_refuses_everything_else(void **state) {
  (void)state;
  assert_false(basic(""));
  assert_false(basic("Basic"));
  assert_false(basic("Basic "));
  assert_false(basic("Bearer YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"));
  assert_false(basic("BasicYWxpY2U6czNjcmV0OndpdGg6Y29sb25z"));
  assert_false(basic("Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25"));      /* not a multiple of 4 */
  assert_false(basic("Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb24="));     /* ...colon (one short) */
  assert_false(basic("Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25zeA==")); /* ...colonsx */
  assert_false(basic("Basic YWxpY2VzM2NyZXQ="));                     /* "alices3cret": no colon */
  assert_false(basic("Basic Ym9iOnMzY3JldDp3aXRoOmNvbG9ucw=="));     /* bob:... */
  assert_false(basic("Basic !!!!"));
  char longv[2048];
  memcpy(longv, "Basic ", 6);
  memset(longv + 6, 'A', sizeof(longv) - 7);
  longv[sizeof(longv) - 1] = '\0';
  assert_false(basic(longv));
}

static void test_pair_is_split_at_the_first_colon(void **state) {
  (void)state;
  const uint8_t *u = (const uint8_t *)"alice", *p = (const uint8_t *)"s3cret:with:colons";
  assert_true(px_proxyauth_pair_ok(expect, u, 5, p, 18));
  /* Same bytes end to end, cut elsewhere: not the same credentials. */
  assert_false(px_proxyauth_pair_ok(expect, (const uint8_t *)"alice:s3cret", 12,
                                    (const uint8_t *)"with:colons", 11));
  assert_false(px_proxyauth_pair_ok(expect, u, 5, p, 17));
  assert_false(px_proxyauth_pair_ok(expect, u, 0, p, 18));
  assert_true(px_proxyauth_pair_ok("alice:", u, 5, p, 0)); /* an empty password */
}

static void test_which_modes_it_applies_to(void **state) {
  (void)state;
  assert_true(px_proxyauth_applies(PX_MODE_EXPLICIT));
  assert_true(px_proxyauth_applies(PX_MODE_UPSTREAM));
  assert_true(px_proxyauth_applies(PX_MODE_SOCKS5));
  assert_false(px_proxyauth_applies(PX_MODE_REVERSE));
  assert_false(px_proxyauth_applies(PX_MODE_TRANSPARENT));
}

/* Wire bytes read in pieces cut anywhere: the value is masked whatever the
 * cut, and nothing else is touched. */
static void test_mask_across_reads(void **state) {
  (void)state;
  static const char req[] =
      "GET http://x/ HTTP/1.1\r\nX-Proxy-Authorization: keep\r\n"
      "proxy-AUTHORIZATION: Basic YWxpY2U6cw==\r\nHost: x\r\n\r\n";
  static const char want[] =
      "GET http://x/ HTTP/1.1\r\nX-Proxy-Authorization: keep\r\n"
      "proxy-AUTHORIZATION:*******************\r\nHost: x\r\n\r\n";
  size_t len = sizeof(req) - 1;
  for (size_t cut1 = 0; cut1 <= len; cut1++) {
    for (size_t cut2 = cut1; cut2 <= len; cut2 += 7) {
      char buf[sizeof(req)];
      int st = 0;
      memcpy(buf, req, sizeof(req));
      px_proxyauth_mask_stream(buf, cut1, &st);
      px_proxyauth_mask_stream(buf + cut1, cut2 - cut1, &st);
      px_proxyauth_mask_stream(buf + cut2, len - cut2, &st);
      assert_string_equal(buf, want);
    }
  }
  char one[sizeof(req)];
  memcpy(one, req, sizeof(req));
  px_proxyauth_mask(one, len);
  assert_string_equal(one, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_accepts_the_right_credentials),
      cmocka_unit_test(test_basic_refuses_everything_else),
      cmocka_unit_test(test_pair_is_split_at_the_first_colon),
      cmocka_unit_test(test_which_modes_it_applies_to),
      cmocka_unit_test(test_mask_across_reads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
