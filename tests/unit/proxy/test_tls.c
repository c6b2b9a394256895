/* Unit tests for the TLS memory-BIO glue (proxy/tls.c): two px_tls_t
 * complete a handshake and exchange data without any socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include <openssl/ssl.h>

#include "proxy/tls.h"

/* Two px_tls_t handshake with each other purely through their BIOs. */
static void pump(px_tls_t *a, px_tls_t *b) {
  size_t len;
  void *out;
  while ((out = px_tls_take_output(a, &len)) != NULL) {
    assert_int_equal(px_tls_feed(b, out, len), 0);
    free(out);
  }
}

static void test_tls_memory_bios(void **state) {
  (void)state;
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  px_tls_t srv, cli;
  char buf[64];
  size_t n = 0;

  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             (const unsigned char *)"t", -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX_use_certificate(sctx, cert);
  SSL_CTX_use_PrivateKey(sctx, key);
  assert_int_equal(px_tls_init(&srv, sctx, 1), 0);
  assert_int_equal(px_tls_init(&cli, cctx, 0), 0);
  for (int i = 0; i < 10 && !(SSL_is_init_finished(srv.ssl) && SSL_is_init_finished(cli.ssl));
       i++) {
    SSL_do_handshake(cli.ssl);
    pump(&cli, &srv);
    SSL_do_handshake(srv.ssl);
    pump(&srv, &cli);
  }
  assert_true(SSL_is_init_finished(cli.ssl));
  assert_true(SSL_write_ex(cli.ssl, "ping", 4, &n));
  pump(&cli, &srv);
  assert_true(SSL_read_ex(srv.ssl, buf, sizeof(buf), &n));
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "ping", 4);
  /* Nothing to read: the memory BIO says "retry", not "end of stream". */
  assert_false(SSL_read_ex(srv.ssl, buf, sizeof(buf), &n));
  assert_int_equal(SSL_get_error(srv.ssl, 0), SSL_ERROR_WANT_READ);
  px_tls_free(&srv);
  px_tls_free(&cli);
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls_memory_bios),
  };
  return cmocka_run_group_tests_name("tls", tests, NULL, NULL);
}
