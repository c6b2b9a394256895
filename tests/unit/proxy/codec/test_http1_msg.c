/* Unit tests for the HTTP/1 message helpers (proxy/codec/http1_msg.c): a
 * flow's absolute URL, authorities, redaction of a head copy and the
 * schemes that bind a connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/http1.h"

static flt_header_t hdr(const char *name, const char *value) {
  flt_header_t h = {name, strlen(name), value, strlen(value)};
  return h;
}

static void test_absolute_url(void **state) {
  (void)state;
  flt_conn_t c;
  memset(&c, 0, sizeof(c));
  flt_header_t hs[1] = {hdr("Host", "example.com:8443")};
  flt_head_t h;
  memset(&h, 0, sizeof(h));
  h.url = "/a?b";
  h.headers = hs;
  h.n_headers = 1;
  c.client_tls = 1;
  char *u = px_http_absolute_url(&c, &h);
  assert_string_equal(u, "https://example.com:8443/a?b");
  free(u);
  /* No Host: the SNI, the port left out when it is the scheme's. */
  h.n_headers = 0;
  snprintf(c.sni, sizeof(c.sni), "sni.example");
  c.server_port = 443;
  u = px_http_absolute_url(&c, &h);
  assert_string_equal(u, "https://sni.example/a?b");
  free(u);
  /* Plain HTTP to an IPv6 server on another port. */
  c.client_tls = 0;
  c.sni[0] = '\0';
  snprintf(c.server_host, sizeof(c.server_host), "::1");
  c.server_port = 8080;
  u = px_http_absolute_url(&c, &h);
  assert_string_equal(u, "http://[::1]:8080/a?b");
  free(u);
  /* Absolute-form stays as sent. */
  h.url = "http://other.example/x";
  u = px_http_absolute_url(&c, &h);
  assert_string_equal(u, "http://other.example/x");
  free(u);
}

static void test_split_authority(void **state) {
  (void)state;
  char host[64];
  uint16_t port = 0;
  assert_int_equal(px_http_split_authority("example.com:8080", host, sizeof(host), &port, 80), 0);
  assert_string_equal(host, "example.com");
  assert_int_equal(port, 8080);
  assert_int_equal(px_http_split_authority("[::1]:443", host, sizeof(host), &port, 80), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 443);
  assert_int_equal(px_http_split_authority("example.com", host, sizeof(host), &port, 443), 0);
  assert_int_equal(port, 443);
  assert_int_equal(px_http_split_authority("example.com:0", host, sizeof(host), &port, 80), -1);
  assert_int_equal(px_http_split_authority("example.com:99999", host, sizeof(host), &port, 80),
                   -1);
  assert_int_equal(px_http_split_authority("[::1", host, sizeof(host), &port, 80), -1);
  assert_int_equal(px_http_split_authority(":80", host, sizeof(host), &port, 80), -1);
  assert_int_equal(px_http_split_authority("abcdefgh:1", host, 4, &port, 80), -1); /* too long */
}

static void test_redact_head(void **state) {
  (void)state;
  flt_header_t hs[3] = {hdr("Cookie", "secret"), hdr("Proxy-Authorization", "Basic eA=="),
                        hdr("Accept", "*/*")};
  flt_head_t h;
  memset(&h, 0, sizeof(h));
  h.headers = hs;
  h.n_headers = 3;
  const char *names[1] = {"cookie"};
  px_http_redact_head(names, 1, 0, &h);
  assert_string_equal(hs[0].value, "<redacted>");
  assert_int_equal(hs[0].value_len, 10);
  assert_memory_equal(hs[1].value, "Basic", 5); /* kept without --proxyauth */
  px_http_redact_head(names, 0, 1, &h);
  assert_string_equal(hs[1].value, "<redacted>");
  assert_string_equal(hs[2].value, "*/*");
}

static void test_binds_connection(void **state) {
  (void)state;
  flt_header_t hs[2] = {hdr("Authorization", "NTLM TlRMTVNTUAAB"),
                        hdr("WWW-Authenticate", "Basic realm=x")};
  flt_head_t h;
  memset(&h, 0, sizeof(h));
  h.headers = hs;
  h.n_headers = 2;
  assert_true(px_http_binds_connection(&h, "authorization"));
  assert_false(px_http_binds_connection(&h, "www-authenticate"));
  hs[1] = hdr("WWW-Authenticate", "Negotiate");
  assert_true(px_http_binds_connection(&h, "www-authenticate"));
  assert_false(px_http_binds_connection(&h, "proxy-authenticate"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_absolute_url),
      cmocka_unit_test(test_split_authority),
      cmocka_unit_test(test_redact_head),
      cmocka_unit_test(test_binds_connection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
