/* Unit tests for proxy/tlsopts.c: TLS versions per leg, the start-up check
 * of versions and lists, and what is applied to an SSL_CTX. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <openssl/ssl.h>

#include "filters/util/log.h"
#include "proxy/cli/options.h"
#include "proxy/tlsopts.h"

static void test_version_names(void **state) {
  (void)state;
  assert_int_equal(px_tlsopts_version_parse("1.0"), TLS1_VERSION);
  assert_int_equal(px_tlsopts_version_parse("1.1"), TLS1_1_VERSION);
  assert_int_equal(px_tlsopts_version_parse("1.2"), TLS1_2_VERSION);
  assert_int_equal(px_tlsopts_version_parse("1.3"), TLS1_3_VERSION);
  assert_int_equal(px_tlsopts_version_parse("1.4"), 0);
  assert_int_equal(px_tlsopts_version_parse("TLSv1.2"), 0);
  assert_int_equal(px_tlsopts_version_parse(""), 0);
  assert_string_equal(px_tlsopts_version_name(TLS1_1_VERSION), "1.1");
}

static void test_default_range_and_max_below_12(void **state) {
  px_config_t cfg;
  int min, max;
  (void)state;
  px_config_defaults(&cfg);
  px_tlsopts_range(&cfg, PX_LEG_CLIENT, &min, &max);
  assert_int_equal(min, TLS1_2_VERSION);
  assert_int_equal(max, 0);
  cfg.tls_max[PX_LEG_UPSTREAM] = TLS1_1_VERSION; /* pulls the default minimum down */
  px_tlsopts_range(&cfg, PX_LEG_UPSTREAM, &min, &max);
  assert_int_equal(min, TLS1_1_VERSION);
  assert_int_equal(max, TLS1_1_VERSION);
  px_tlsopts_range(&cfg, PX_LEG_CLIENT, &min, &max);
  assert_int_equal(min, TLS1_2_VERSION);
}

static void check_fails(px_config_t *cfg, const char *needle) {
  char err[1024] = "";
  assert_int_equal(px_tlsopts_check(cfg, err, sizeof(err)), -1);
  if (strstr(err, needle) == NULL) fail_msg("'%s' not in '%s'", needle, err);
}

static void test_check_refuses_bad_settings(void **state) {
  px_config_t cfg;
  (void)state;
  px_config_defaults(&cfg);
  cfg.tls_min[PX_LEG_CLIENT] = TLS1_3_VERSION;
  cfg.tls_max[PX_LEG_CLIENT] = TLS1_2_VERSION;
  check_fails(&cfg, "the client leg's TLS minimum 1.3 is above its maximum 1.2");

  px_config_defaults(&cfg);
  cfg.tls_ciphers = "NOT-A-CIPHER";
  check_fails(&cfg, "bad --ciphers 'NOT-A-CIPHER'");

  px_config_defaults(&cfg);
  cfg.tls_ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_FAKE_SHA1";
  check_fails(&cfg, "unknown TLS 1.3 ciphersuite 'TLS_FAKE_SHA1'");

  px_config_defaults(&cfg);
  cfg.tls_groups = "P-256:bogus:X25519";
  check_fails(&cfg, "unknown group 'bogus'");
}

static void test_apply_sets_range_and_security_level(void **state) {
  px_config_t cfg;
  char err[1024];
  (void)state;
  px_config_defaults(&cfg);
  cfg.tls_min[PX_LEG_CLIENT] = TLS1_VERSION;
  cfg.tls_max[PX_LEG_UPSTREAM] = TLS1_2_VERSION;
  cfg.tls_ciphersuites = "TLS_AES_128_GCM_SHA256";
  cfg.tls_groups = "X25519:P-256";
  assert_int_equal(px_tlsopts_check(&cfg, err, sizeof(err)), 0);

  SSL_CTX *server = SSL_CTX_new(TLS_server_method());
  SSL_CTX *client = SSL_CTX_new(TLS_client_method());
  assert_int_equal(px_tlsopts_apply(server, &cfg, PX_LEG_CLIENT), 0);
  assert_int_equal(px_tlsopts_apply(client, &cfg, PX_LEG_UPSTREAM), 0);
  assert_int_equal(SSL_CTX_get_min_proto_version(server), TLS1_VERSION);
  assert_int_equal(SSL_CTX_get_max_proto_version(server), 0);
  assert_int_equal(SSL_CTX_get_security_level(server), 0); /* asked for 1.0 */
  assert_int_equal(SSL_CTX_get_min_proto_version(client), TLS1_2_VERSION);
  assert_int_equal(SSL_CTX_get_max_proto_version(client), TLS1_2_VERSION);
  assert_true(SSL_CTX_get_security_level(client) > 0); /* this leg did not */
  SSL_CTX_free(server);
  SSL_CTX_free(client);
  px_tlsopts_free();
}

int main(void) {
  flt_log_set_level(FLT_LOG_ERROR); /* the security-level warning is expected */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version_names),
      cmocka_unit_test(test_default_range_and_max_below_12),
      cmocka_unit_test(test_check_refuses_bad_settings),
      cmocka_unit_test(test_apply_sets_range_and_security_level),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
