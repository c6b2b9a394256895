/* test_action_options.c — proxy/cli/action_options.c: where EXPR ends and
 * what the URL of --map-remote and the RATE and LATENCY of --throttle may
 * be. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "filters/expr/expr.h"
#include "proxy/cli/action_options.h"

static void map_ok(const char *val, int tls, const char *host, unsigned port,
                   const char *prefix) {
  px_map_remote_t m;
  char err[3000];
  int rc = px_map_remote_parse(val, &m, err, sizeof(err));
  if (rc != 0) fail_msg("%s: %s", val, err);
  assert_int_equal(m.tls, tls);
  assert_string_equal(m.host, host);
  assert_int_equal(m.port, port);
  assert_string_equal(m.prefix, prefix);
  flt_expr_free(m.expr);
}

static void map_bad(const char *val, const char *why) {
  px_map_remote_t m;
  char err[3000];
  assert_int_equal(px_map_remote_parse(val, &m, err, sizeof(err)), -1);
  if (strstr(err, why) == NULL) fail_msg("%s: '%s' lacks '%s'", val, err, why);
}

static void test_map_remote_values(void **state) {
  (void)state;
  map_ok("~d api:https://127.0.0.1:8443", 1, "127.0.0.1", 8443, "");
  map_ok("~d api:http://stage.test", 0, "stage.test", 80, "");
  map_ok("~d api:https://stage.test", 1, "stage.test", 443, "");
  map_ok("~d api:HTTPS://[::1]:9/v2/", 1, "::1", 9, "/v2");
  /* EXPR with ':' and a URL in it: the last ':http(s)://' splits. */
  map_ok("~h 'x: 1' & ~u http://a/:https://b:1/p/q", 1, "b", 1, "/p/q");
  map_bad("~d api", "no ':http://'");
  map_bad("~d api:https://:8", "no host");
  map_bad("~d api:https://[::1", "no ']'");
  map_bad("~d api:https://[::1]x", "':PORT' or nothing");
  map_bad("~d api:https://h:", "port must be");
  map_bad("~d api:https://h:65536", "port must be");
  map_bad("~d api:https://u@h", "is not a host name");
  map_bad("~d api:https://h/a b", "may not hold spaces");
  map_bad("~d api:https://h#f", "no query or fragment");
  map_bad("~d (:https://h", "bad expression");
}

static void throttle_ok(const char *val, uint64_t rate, uint64_t latency_ms) {
  px_throttle_rule_t t;
  char err[3000];
  int rc = px_throttle_parse(val, &t, err, sizeof(err));
  if (rc != 0) fail_msg("%s: %s", val, err);
  assert_int_equal(t.rate, rate);
  assert_int_equal(t.latency_ms, latency_ms);
  flt_expr_free(t.expr);
}

static void throttle_bad(const char *val, const char *why) {
  px_throttle_rule_t t;
  char err[3000];
  assert_int_equal(px_throttle_parse(val, &t, err, sizeof(err)), -1);
  if (strstr(err, why) == NULL) fail_msg("%s: '%s' lacks '%s'", val, err, why);
}

static void test_throttle_values(void **state) {
  (void)state;
  throttle_ok("~d api:64k:300ms", 64 * 1024, 300);
  throttle_ok("~d api:512k", 512 * 1024, 0);
  throttle_ok("~d api:1m:1.5s", 1024 * 1024, 1500);
  throttle_ok("~d api:1.5KiB:0ms", 1536, 0);
  throttle_ok("~d api:100", 100, 0);
  throttle_ok("~h 'a: b':2k", 2048, 0); /* ':' inside EXPR */
  throttle_bad("~d api", "no ':'");
  throttle_bad("~d api:0", "neither a RATE");
  throttle_bad("~d api:-5k", "neither a RATE");
  throttle_bad("~d api:64k:300", "has no unit");
  throttle_bad("~d api:x:300ms", "is not a RATE");
  throttle_bad("300ms", "no ':'");
  throttle_bad(":64k", "EXPR is empty");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_remote_values),
      cmocka_unit_test(test_throttle_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
