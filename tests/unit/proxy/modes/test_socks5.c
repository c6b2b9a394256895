/* Unit tests for the SOCKS5 parsers (proxy/modes/socks5.c): valid messages,
 * every truncation of them, and malformed ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/modes/socks5.h"

/* Every strict prefix of a complete message is "need more", parsed from a
 * heap copy of exactly that prefix (so ASan would see a read past it). */
typedef int (*parse_fn)(const uint8_t *p, size_t len, void *out);

static int greeting(const uint8_t *p, size_t len, void *out) {
  return px_socks5_parse_greeting(p, len, out);
}
static int auth(const uint8_t *p, size_t len, void *out) { return px_socks5_parse_auth(p, len, out); }
static int request(const uint8_t *p, size_t len, void *out) {
  return px_socks5_parse_request(p, len, out);
}

static void assert_prefixes_need_more(parse_fn fn, const uint8_t *msg, size_t len) {
  for (size_t n = 0; n < len; n++) {
    uint8_t *copy = malloc(n ? n : 1);
    px_socks5_request_t out; /* the largest of the three results */
    memcpy(copy, msg, n);
    assert_int_equal(fn(copy, n, &out), PX_SOCKS5_NEED_MORE);
    free(copy);
  }
}

static void test_greeting(void **state) {
  (void)state;
  static const uint8_t msg[] = {5, 2, 0, 2, 0xaa}; /* trailing byte: the next message */
  px_socks5_greeting_t g;
  assert_int_equal(px_socks5_parse_greeting(msg, sizeof(msg), &g), 4);
  assert_int_equal(g.n_methods, 2);
  assert_true(px_socks5_greeting_offers(&g, PX_SOCKS5_METHOD_NONE));
  assert_true(px_socks5_greeting_offers(&g, PX_SOCKS5_METHOD_USERPASS));
  assert_false(px_socks5_greeting_offers(&g, 1));
  assert_prefixes_need_more(greeting, msg, 4);

  static const uint8_t none[] = {5, 0};
  assert_int_equal(px_socks5_parse_greeting(none, sizeof(none), &g), 2);
  assert_false(px_socks5_greeting_offers(&g, PX_SOCKS5_METHOD_NONE));
}

static void test_greeting_wrong_version(void **state) {
  (void)state;
  px_socks5_greeting_t g;
  static const uint8_t socks4[] = {4, 1, 0, 80, 127, 0, 0, 1, 0};
  /* Decided by the first byte: a non-SOCKS5 client is not kept waiting. */
  assert_int_equal(px_socks5_parse_greeting(socks4, 1, &g), PX_SOCKS5_E_VERSION);
  assert_int_equal(px_socks5_parse_greeting(socks4, sizeof(socks4), &g), PX_SOCKS5_E_VERSION);
  static const uint8_t http[] = "GET / HTTP/1.1\r\n";
  assert_int_equal(px_socks5_parse_greeting(http, sizeof(http) - 1, &g), PX_SOCKS5_E_VERSION);
  assert_string_equal(px_socks5_strerror(PX_SOCKS5_E_VERSION),
                      "not a SOCKS5 client (version byte is not 5)");
}

static void test_auth(void **state) {
  (void)state;
  static const uint8_t msg[] = {1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', '3', 'c', 'r', 'e', 't'};
  px_socks5_auth_t a;
  assert_int_equal(px_socks5_parse_auth(msg, sizeof(msg), &a), (int)sizeof(msg));
  assert_int_equal(a.user_len, 5);
  assert_memory_equal(a.user, "alice", 5);
  assert_int_equal(a.pass_len, 6);
  assert_memory_equal(a.pass, "s3cret", 6);
  assert_true(px_socks5_auth_matches(&a, "alice:s3cret"));
  assert_false(px_socks5_auth_matches(&a, "alice:s3cre"));
  assert_false(px_socks5_auth_matches(&a, "alice:s3cretX"));
  assert_false(px_socks5_auth_matches(&a, "bob:s3cret"));
  assert_false(px_socks5_auth_matches(&a, "alices3cret")); /* no colon: nothing matches */
  assert_false(px_socks5_auth_matches(&a, NULL));
  assert_prefixes_need_more(auth, msg, sizeof(msg));

  /* Empty user and password are messages too; a colon in the password
   * belongs to the password. */
  static const uint8_t empty[] = {1, 0, 0};
  assert_int_equal(px_socks5_parse_auth(empty, sizeof(empty), &a), 3);
  assert_true(px_socks5_auth_matches(&a, ":"));
  static const uint8_t colon[] = {1, 1, 'u', 3, 'a', ':', 'b'};
  assert_int_equal(px_socks5_parse_auth(colon, sizeof(colon), &a), 7);
  assert_true(px_socks5_auth_matches(&a, "u:a:b"));
}

static void test_auth_wrong_version(void **state) {
  (void)state;
  static const uint8_t msg[] = {5, 1, 'u', 1, 'p'};
  px_socks5_auth_t a;
  assert_int_equal(px_socks5_parse_auth(msg, sizeof(msg), &a), PX_SOCKS5_E_AUTH_VERSION);
  assert_int_equal(px_socks5_parse_auth(msg, 1, &a), PX_SOCKS5_E_AUTH_VERSION);
}

static void test_request_ipv4(void **state) {
  (void)state;
  static const uint8_t msg[] = {5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0x16};
  px_socks5_request_t r;
  assert_int_equal(px_socks5_parse_request(msg, sizeof(msg), &r), 10);
  assert_int_equal(r.atyp, 1);
  assert_string_equal(r.host, "127.0.0.1");
  assert_int_equal(r.port, 8080);
  assert_prefixes_need_more(request, msg, 10);
}

static void test_request_ipv6(void **state) {
  (void)state;
  uint8_t msg[22] = {5, 1, 0, 4};
  msg[4] = 0x20, msg[5] = 0x01, msg[6] = 0x0d, msg[7] = 0xb8, msg[19] = 1;
  msg[20] = 1, msg[21] = 0xbb;
  px_socks5_request_t r;
  assert_int_equal(px_socks5_parse_request(msg, sizeof(msg), &r), 22);
  assert_string_equal(r.host, "2001:db8::1");
  assert_int_equal(r.port, 443);
  assert_prefixes_need_more(request, msg, sizeof(msg));
}

static void test_request_domain(void **state) {
  (void)state;
  static const uint8_t msg[] = {5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o',
                                'm', 0, 80};
  px_socks5_request_t r;
  assert_int_equal(px_socks5_parse_request(msg, sizeof(msg), &r), (int)sizeof(msg));
  assert_int_equal(r.atyp, 3);
  assert_string_equal(r.host, "example.com");
  assert_int_equal(r.port, 80);
  assert_prefixes_need_more(request, msg, sizeof(msg));

  /* The longest name the length byte allows fits, NUL included. */
  uint8_t longest[4 + 1 + 255 + 2] = {5, 1, 0, 3, 255};
  memset(longest + 5, 'a', 255);
  longest[sizeof(longest) - 1] = 80;
  assert_int_equal(px_socks5_parse_request(longest, sizeof(longest), &r), (int)sizeof(longest));
  assert_int_equal(strlen(r.host), 255);
}

static void test_request_malformed(void **state) {
  (void)state;
  px_socks5_request_t r;
  static const uint8_t bad_atyp[] = {5, 1, 0, 2, 1, 2, 3, 4, 0, 80};
  assert_int_equal(px_socks5_parse_request(bad_atyp, 4, &r), PX_SOCKS5_E_ATYP);
  assert_int_equal(px_socks5_reply_code(PX_SOCKS5_E_ATYP), 8);
  static const uint8_t empty[] = {5, 1, 0, 3, 0, 0, 80};
  assert_int_equal(px_socks5_parse_request(empty, sizeof(empty), &r), PX_SOCKS5_E_DOMAIN);
  static const uint8_t nul[] = {5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80};
  assert_int_equal(px_socks5_parse_request(nul, sizeof(nul), &r), PX_SOCKS5_E_DOMAIN);
  assert_int_equal(px_socks5_reply_code(PX_SOCKS5_E_DOMAIN), 8);
  static const uint8_t bind[] = {5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
  assert_int_equal(px_socks5_parse_request(bind, sizeof(bind), &r), PX_SOCKS5_E_BIND);
  /* The command is judged once the whole message is there. */
  assert_int_equal(px_socks5_parse_request(bind, sizeof(bind) - 1, &r), PX_SOCKS5_NEED_MORE);
  assert_string_equal(px_socks5_strerror(PX_SOCKS5_E_BIND), "BIND is not supported");
  assert_int_equal(px_socks5_reply_code(PX_SOCKS5_E_BIND), 7);
  static const uint8_t udp[] = {5, 3, 0, 1, 127, 0, 0, 1, 0, 80};
  assert_int_equal(px_socks5_parse_request(udp, sizeof(udp), &r), PX_SOCKS5_E_UDP);
  static const uint8_t cmd9[] = {5, 9, 0, 1, 127, 0, 0, 1, 0, 80};
  assert_int_equal(px_socks5_parse_request(cmd9, sizeof(cmd9), &r), PX_SOCKS5_E_COMMAND);
  static const uint8_t port0[] = {5, 1, 0, 1, 127, 0, 0, 1, 0, 0};
  assert_int_equal(px_socks5_parse_request(port0, sizeof(port0), &r), PX_SOCKS5_E_PORT);
  assert_int_equal(px_socks5_reply_code(PX_SOCKS5_E_PORT), 1);
  static const uint8_t ver4[] = {4, 1, 0, 1, 127, 0, 0, 1, 0, 80};
  assert_int_equal(px_socks5_parse_request(ver4, sizeof(ver4), &r), PX_SOCKS5_E_REQ_VERSION);
  /* Every code has its own sentence; unknown codes a generic one. */
  for (int e = PX_SOCKS5_E_PORT; e <= PX_SOCKS5_E_VERSION; e++)
    assert_string_not_equal(px_socks5_strerror(e), px_socks5_strerror(-100));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greeting),          cmocka_unit_test(test_greeting_wrong_version),
      cmocka_unit_test(test_auth),              cmocka_unit_test(test_auth_wrong_version),
      cmocka_unit_test(test_request_ipv4),      cmocka_unit_test(test_request_ipv6),
      cmocka_unit_test(test_request_domain),    cmocka_unit_test(test_request_malformed),
  };
  return cmocka_run_group_tests_name("socks5", tests, NULL, NULL);
}
