/* test_tlsview.c — the tlsview filter (filters/tls/tlsview.h) driven through a
 * real chain with bytes captured from real clients and servers
 * (tests/unit/filters/tls/fixtures/), writing through a detail-0 console's output to a
 * temp file whose text is checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/console/console.h"
#include "filters/util/output.h"
#include "filters/tls/tlsparse.h"
#include "filters/tls/tlsview.h"
#include "tests/unit/filters/tls/fixtures/tlsfixtures.h"

/* ---- the filter, driven through a chain ------------------------------------------- */

typedef struct view_harness {
  FILE *tmp;
  void *con, *tv;
  flt_chain_t chain;
} view_harness_t;

static void view_open(view_harness_t *vh, int wire, int explain) {
  /* The console at detail 0 exists only for its writer: the accessor
   * must work then too. */
  flt_console_opts_t co = {.detail = 0, .color = 0};
  flt_tlsview_opts_t to = {.handshake = 1, .wire = wire, .wire_limit = 32, .explain = explain};

  memset(vh, 0, sizeof(*vh));
  vh->tmp = tmpfile();
  assert_non_null(vh->tmp);
  co.fd = fileno(vh->tmp);
  vh->con = flt_console_new(&co);
  assert_non_null(vh->con);
  assert_int_equal(flt_console_color(vh->con), 0);
  to.out = flt_console_output(vh->con);
  assert_non_null(to.out);
  vh->tv = flt_tlsview_new(&to);
  assert_non_null(vh->tv);
  int cs = flt_chain_add(&vh->chain, &flt_console_ops, vh->con);
  flt_console_set_slot(vh->con, cs);
  int ts = flt_chain_add(&vh->chain, &flt_tlsview_ops, vh->tv);
  assert_int_equal(ts, 1);
  flt_tlsview_set_slot(vh->tv, ts);
}

static char *view_close(view_harness_t *vh) {
  static const size_t max = 1 << 22;
  char *out = malloc(max);
  ssize_t n;

  flt_emit_shutdown(&vh->chain);
  n = pread(fileno(vh->tmp), out, max - 1, 0);
  assert_true(n >= 0);
  out[n] = '\0';
  flt_tlsview_free(vh->tv);
  flt_console_free(vh->con);
  fclose(vh->tmp);
  return out;
}

static void msg(view_harness_t *vh, flt_conn_t *c, flt_leg_t leg, int sent, const buf_t *m) {
  flt_emit_tls_message(&vh->chain, c, leg, sent, FLT_TLS_CT_HANDSHAKE, 0x0304, m->p, m->len);
}

static void ccs(view_harness_t *vh, flt_conn_t *c, flt_leg_t leg, int sent) {
  static const uint8_t one = 1;
  flt_emit_tls_message(&vh->chain, c, leg, sent, FLT_TLS_CT_CHANGE_CIPHER_SPEC, 0x0303, &one, 1);
}

/* EncryptedExtensions (empty), CertificateVerify, Finished of TLS 1.3. */
static const uint8_t ee_msg[] = {8, 0, 0, 2, 0, 0};
static const uint8_t cv_msg[] = {15, 0, 0, 8, 0x04, 0x03, 0, 4, 1, 2, 3, 4};
static const uint8_t fin_msg[] = {20, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef};
static const uint8_t nst13_msg[] = {4, 0, 0, 16, 0, 0, 0x1c, 0x20, 1, 2,
                                    3, 4, 0, 0,  3, 9, 9,    9,    0, 0};

static void drive_tls13(view_harness_t *vh, flt_conn_t *c) {
  buf_t crec = load("curl"), chs = handshake_stream(&crec), ch = nth_message(&chs, 0);
  buf_t urec = load("hs-tls13-client"), uhs = handshake_stream(&urec), uch = nth_message(&uhs, 0);
  buf_t srec = load("hs-tls13-server"), shs = handshake_stream(&srec), sh = nth_message(&shs, 0);
  buf_t r12 = load("hs-tls12-server"), h12 = handshake_stream(&r12), c12 = nth_message(&h12, 1);
  buf_t ee = {(uint8_t *)ee_msg, sizeof(ee_msg)}, cv = {(uint8_t *)cv_msg, sizeof(cv_msg)};
  buf_t fin = {(uint8_t *)fin_msg, sizeof(fin_msg)},
        nst = {(uint8_t *)nst13_msg, sizeof(nst13_msg)};
  static wbuf_t cert13;
  static const uint8_t appdata[] = {23, 3, 3, 0, 8, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
  static const char req[] = "GET /secret HTTP/1.1\r\nHost: example.test\r\n\r\n";

  cert_to_tls13(&c12, &cert13);
  buf_t cert = {cert13.p, cert13.len};
  flt_emit_conn_open(&vh->chain, c);
  flt_emit_wire(&vh->chain, c, FLT_LEG_CLIENT, 0, (const uint8_t *)"CONNECT example.test:443 "
                "HTTP/1.1\r\n\r\n", 37);
  flt_emit_wire(&vh->chain, c, FLT_LEG_CLIENT, 0, crec.p, crec.len);
  msg(vh, c, FLT_LEG_CLIENT, 0, &ch);
  flt_emit_wire(&vh->chain, c, FLT_LEG_UPSTREAM, 1, urec.p, urec.len);
  msg(vh, c, FLT_LEG_UPSTREAM, 1, &uch);
  flt_emit_wire(&vh->chain, c, FLT_LEG_UPSTREAM, 0, srec.p, srec.len);
  msg(vh, c, FLT_LEG_UPSTREAM, 0, &sh);
  const buf_t *flight[] = {&ee, &cert, &cv, &fin};
  for (int i = 0; i < 4; i++)
    msg(vh, c, FLT_LEG_UPSTREAM, 0, flight[i]);
  msg(vh, c, FLT_LEG_UPSTREAM, 1, &fin);
  msg(vh, c, FLT_LEG_CLIENT, 1, &sh);
  for (int i = 0; i < 4; i++)
    msg(vh, c, FLT_LEG_CLIENT, 1, flight[i]);
  ccs(vh, c, FLT_LEG_CLIENT, 0);
  msg(vh, c, FLT_LEG_CLIENT, 0, &fin);
  snprintf(c->up_verify, sizeof(c->up_verify), "ok");
  flt_emit_tls_established(&vh->chain, c);
  msg(vh, c, FLT_LEG_CLIENT, 1, &nst); /* after the block: a late one */
  flt_emit_wire(&vh->chain, c, FLT_LEG_CLIENT, 0, appdata, sizeof(appdata));
  flt_emit_data(&vh->chain, c, FLT_DIR_REQUEST, (const uint8_t *)req, strlen(req));
  flt_emit_conn_close(&vh->chain, c);
  free(crec.p), free(chs.p), free(urec.p), free(uhs.p), free(srec.p), free(shs.p);
  free(r12.p), free(h12.p);
}

static void test_view_tls13_both_legs(void **state) {
  view_harness_t vh;
  flt_conn_t c = {.id = 7,
                  .client = "127.0.0.1:5000",
                  .server_host = "example.test",
                  .server_port = 443,
                  .kind = FLT_CONN_HTTPS,
                  .client_tls = 1,
                  .upstream_tls = 1};
  (void)state;

  view_open(&vh, 1, 1);
  drive_tls13(&vh, &c);
  char *out = view_close(&vh);
  static const char *const want[] = {
      /* the wire view */
      "127.0.0.1:5000 \xe2\x87\x84 example.test:443 \xc2\xb7 client \xe2\x86\x92 tlspeek "
      "\xc2\xb7 on the wire (what a sniffer sees): 37 bytes\n",
      "not encrypted, anyone on the path reads them",
      "    CONNECT example.test:443 HTTP/1.1\n",
      "  record 1: handshake (22), TLSv1.0 (0x0301), 512 bytes \xe2\x80\x94 clear text",
      "    00000000: 0100 01fc 0303 ",
      "    \xe2\x80\xa6 480 more bytes not shown (--wire-limit 32)\n",
      "application_data (23), TLSv1.2 (0x0303), 8 bytes \xe2\x80\x94 encrypted: unreadable",
      "    00000000: a1a2 a3a4 a5a6 a7a8",
      "\xc2\xb7 client \xe2\x86\x92 tlspeek \xc2\xb7 decrypted by tlspeek: 44 bytes\n",
      "    GET /secret HTTP/1.1\n    Host: example.test\n",
      "step 9, Application Data: From here on",
      "\xc2\xb7 application_data records: their type and length",
      /* the handshake block */
      "TLS handshake \xc2\xb7 127.0.0.1:5000 \xe2\x86\x92 example.test:443 (connection 7)\n",
      "leg 1 \xc2\xb7 client \xe2\x87\x84 tlspeek",
      "leg 2 \xc2\xb7 tlspeek \xe2\x87\x84 upstream",
      "  negotiated: TLSv1.3, TLS_AES_256_GCM_SHA384, key exchange x25519\n",
      "\xc2\xb7 step 1, ClientHello: ",
      "  1 ClientHello \xc2\xb7 client \xe2\x86\x92 tlspeek \xc2\xb7 512 bytes\n",
      "    record version: TLSv1.0 (0x0301)\n",
      "  1 ClientHello \xc2\xb7 tlspeek \xe2\x86\x92 upstream \xc2\xb7 ",
      "    JA3 MD5: 0149f47eabf9a20d0893e2a44e5a6323\n",
      "    JA4: t13d3112h2_e8f1e7e78f70_b26ce05bbdd6\n",
      "    JA3 MD5: f146948b4a599d4d7ddf071b74696983\n",
      "    JA4: t13d041000_16476d049b0b_78f1d400d464\n",
      "    JA3S MD5: 15af977ce25de452b96affa2addb1036\n",
      "  2 ServerHello \xc2\xb7 upstream \xe2\x86\x92 tlspeek",
      "  2 EncryptedExtensions \xc2\xb7 tlspeek \xe2\x86\x92 client",
      "    [encrypted on the wire: a sniffer sees only application_data records here]\n",
      "  3 Certificate \xc2\xb7 upstream \xe2\x86\x92 tlspeek",
      "  3 Certificate \xc2\xb7 tlspeek \xe2\x86\x92 client",
      "        subject: CN=example.test\n",
      "  4 CertificateVerify \xc2\xb7 ",
      "    signature: ecdsa_secp256r1_sha256 (0x0403), 4 bytes",
      "step 4, ServerKeyExchange: TLS 1.3 has no ServerKeyExchange",
      "  7 ChangeCipherSpec \xc2\xb7 client \xe2\x86\x92 tlspeek",
      "  8 Finished \xc2\xb7 client \xe2\x86\x92 tlspeek",
      "  upstream certificate verification: ok\n",
      "  protocol (ALPN): client leg ",
      "fingerprints",
      "    client's ClientHello     JA3 0149f47eabf9a20d0893e2a44e5a6323  JA4 "
      "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6\n",
      "    tlspeek's ClientHello    JA3 f146948b4a599d4d7ddf071b74696983",
      "the JA4s differ",
      /* later */
      "after the handshake:\n  - NewSessionTicket \xc2\xb7 tlspeek \xe2\x86\x92 client",
      "ticket: 3 bytes, lifetime 7200 s",
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    assert_contains(out, want[i]);
  /* Blocks come whole and in order: wire chunks of the handshake, then the
   * handshake block, then application data. */
  assert_true(strstr(out, "record 1: handshake") < strstr(out, "TLS handshake \xc2\xb7"));
  assert_true(strstr(out, "TLS handshake \xc2\xb7") < strstr(out, "decrypted by tlspeek"));
  free(out);
}

static void test_view_plain_http(void **state) {
  static const char req[] = "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n";
  view_harness_t vh;
  flt_conn_t c = {.id = 8,
                  .client = "127.0.0.1:5001",
                  .server_host = "a.test",
                  .server_port = 80,
                  .kind = FLT_CONN_HTTP};
  (void)state;

  view_open(&vh, 1, 0);
  flt_emit_wire(&vh.chain, &c, FLT_LEG_CLIENT, 0, (const uint8_t *)req, strlen(req));
  flt_emit_data(&vh.chain, &c, FLT_DIR_REQUEST, (const uint8_t *)req, strlen(req));
  flt_emit_wire(&vh.chain, &c, FLT_LEG_UPSTREAM, 0,
                (const uint8_t *)"HTTP/1.1 200 OK\r\n\r\n\x89PNG\x00\x01", 25);
  flt_emit_conn_close(&vh.chain, &c);
  char *out = view_close(&vh);
  assert_contains(out, "on the wire (what a sniffer sees): 33 bytes\n");
  assert_contains(out, "not encrypted, anyone on the path reads them");
  assert_contains(out, "    GET /x HTTP/1.1\n    Host: a.test\n");
  assert_contains(out, "    HTTP/1.1 200 OK\n");
  assert_contains(out, "    00000000: 8950 4e47 0001");
  assert_null(strstr(out, "decrypted by tlspeek")); /* nothing to decrypt */
  assert_null(strstr(out, "TLS handshake"));
  /* The request shows once: on a plain leg the wire bytes are the data. */
  assert_ptr_equal(strstr(out, "GET /x"), strstr(out, "GET /"));
  assert_null(strstr(strstr(out, "GET /x") + 1, "GET /x"));
  free(out);
}

static void test_view_tls12_steps(void **state) {
  view_harness_t vh;
  flt_conn_t c = {.id = 9,
                  .client = "127.0.0.1:5002",
                  .server_host = "example.test",
                  .server_port = 443,
                  .kind = FLT_CONN_HTTPS,
                  .client_tls = 1};
  buf_t crec = load("hs-tls12-client"), chs = handshake_stream(&crec);
  buf_t srec = load("hs-tls12-server"), shs = handshake_stream(&srec);
  buf_t fin = {(uint8_t *)fin_msg, sizeof(fin_msg)};
  (void)state;

  view_open(&vh, 0, 1); /* handshake only: records still give their versions */
  flt_emit_wire(&vh.chain, &c, FLT_LEG_CLIENT, 0, crec.p, crec.len);
  buf_t m = nth_message(&chs, 0);
  msg(&vh, &c, FLT_LEG_CLIENT, 0, &m);
  for (int i = 0; i < 4; i++) {
    m = nth_message(&shs, i);
    msg(&vh, &c, FLT_LEG_CLIENT, 1, &m);
  }
  m = nth_message(&chs, 1);
  msg(&vh, &c, FLT_LEG_CLIENT, 0, &m);
  ccs(&vh, &c, FLT_LEG_CLIENT, 0);
  msg(&vh, &c, FLT_LEG_CLIENT, 0, &fin);
  ccs(&vh, &c, FLT_LEG_CLIENT, 1);
  msg(&vh, &c, FLT_LEG_CLIENT, 1, &fin);
  flt_emit_conn_close(&vh.chain, &c); /* never established */
  char *out = view_close(&vh);
  static const char *const want[] = {
      "(connection 9) \xe2\x80\x94 did not complete",
      "  negotiated: TLSv1.2, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, key exchange x25519\n",
      "    record version: TLSv1.0 (0x0301)\n",
      "  1 ClientHello",
      "  2 ServerHello",
      "  3 Certificate",
      "  4 ServerKeyExchange",
      "  5 ServerHelloDone",
      "  6 ClientKeyExchange",
      "  7 ChangeCipherSpec",
      "  8 Finished",
      "step 4, ServerKeyExchange: The server's ephemeral",
      "step 6, ClientKeyExchange: ",
      "[encrypted on the wire (after ChangeCipherSpec)",
      "leg 2 \xc2\xb7 tlspeek \xe2\x87\x84 upstream (tlspeek plays the client)\n"
      "  no TLS messages on this leg\n",
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    assert_contains(out, want[i]);
  assert_null(strstr(out, "on the wire (what a sniffer sees)")); /* --wire is off */
  assert_null(strstr(out, "step 9"));                            /* not complete */
  free(out);
  free(crec.p), free(chs.p), free(srec.p), free(shs.p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_view_tls13_both_legs),
      cmocka_unit_test(test_view_plain_http),
      cmocka_unit_test(test_view_tls12_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
