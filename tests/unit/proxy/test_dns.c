/* Unit tests for answers without a query (proxy/dns.c) and for the
 * "is this one of our listeners?" check (proxy/loopguard.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/dns.h"
#include "proxy/loopguard.h"

static void ip_of(const struct sockaddr_storage *ss, char *out, size_t len) {
  if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
  else
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
}

static void test_numeric_spellings(void **state) {
  (void)state;
  static const char *const loopback[] = {"127.0.0.1", "127.1", "2130706433", "0x7f000001",
                                         "0177.0.0.1", "127.0.1"};
  for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
    px_dns_addrs_t a;
    char ip[INET6_ADDRSTRLEN];
    assert_int_equal(px_dns_resolve_local(loopback[i], 8080, &a), 1);
    assert_int_equal(a.n, 1);
    ip_of(&a.a[0], ip, sizeof(ip));
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.a[0])->sin_port), 8080);
  }
  px_dns_addrs_t a;
  char ip[INET6_ADDRSTRLEN];
  assert_int_equal(px_dns_resolve_local("::ffff:127.0.0.1", 1, &a), 1);
  assert_int_equal(a.a[0].ss_family, AF_INET6);
  assert_int_equal(px_dns_resolve_local("0.0.0.0", 1, &a), 1);
  ip_of(&a.a[0], ip, sizeof(ip));
  assert_string_equal(ip, "0.0.0.0");
}

static void test_localhost_names(void **state) {
  (void)state;
  static const char *const names[] = {"localhost", "LOCALHOST", "localhost.", "a.localhost",
                                      "x.y.LocalHost."};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    px_dns_addrs_t a;
    char ip[INET6_ADDRSTRLEN];
    assert_int_equal(px_dns_resolve_local(names[i], 443, &a), 1);
    assert_int_equal(a.n, 2);
    ip_of(&a.a[0], ip, sizeof(ip));
    assert_string_equal(ip, "127.0.0.1");
    ip_of(&a.a[1], ip, sizeof(ip));
    assert_string_equal(ip, "::1");
  }
}

static void test_names_need_a_lookup(void **state) {
  (void)state;
  static const char *const names[] = {"example.com", "localhost.example", "notlocalhost",
                                      "127.0.0.1 x", "", "1.2.3.4.5", "0x1g"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    px_dns_addrs_t a;
    assert_int_equal(px_dns_resolve_local(names[i], 80, &a), 0);
  }
}

/* A listener bound to `ip`:0; returns its fd and port. */
static int listen_on(int family, const char *ip, uint16_t *port) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof(ss));
  int fd = socket(family, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    len = sizeof(*a);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    len = sizeof(*a);
  }
  assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
  len = sizeof(ss);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  *port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset for IPv6 */
  return fd;
}

static int targets(const char *host, uint16_t port) {
  px_dns_addrs_t a;
  char lis[80];
  assert_int_equal(px_dns_resolve_local(host, port, &a), 1);
  for (int i = 0; i < a.n; i++)
    if (px_loopguard_targets_us(&a.a[i], lis, sizeof(lis))) return 1;
  return 0;
}

static void test_listeners_in_every_spelling(void **state) {
  (void)state;
  uint16_t lo, wild;
  int fd1 = listen_on(AF_INET, "127.0.0.1", &lo);
  int fd2 = listen_on(AF_INET, "0.0.0.0", &wild);
  px_loopguard_add_listener(fd1);
  px_loopguard_add_listener(fd2);
  static const char *const us[] = {"127.0.0.1", "0.0.0.0", "localhost", "2130706433",
                                   "0x7f000001", "::ffff:127.0.0.1", "127.1", "::ffff:0.0.0.0"};
  for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
    assert_true(targets(us[i], lo));
    assert_true(targets(us[i], wild));
  }
  /* The wildcard listener answers on every loopback address, the other
   * only on its own. */
  assert_true(targets("127.0.0.2", wild));
  assert_false(targets("127.0.0.2", lo));
  /* Other ports, and addresses that are not this host, are not us. */
  assert_false(targets("127.0.0.1", (uint16_t)(lo + wild)));
  assert_false(targets("192.0.2.1", wild));
  close(fd1);
  close(fd2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numeric_spellings),
      cmocka_unit_test(test_localhost_names),
      cmocka_unit_test(test_names_need_a_lookup),
      cmocka_unit_test(test_listeners_in_every_spelling),
  };
  return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}
