/* test_tlsparse.c — the TLS dissector (filters/tls/tlsparse.h) on hellos and
 * handshakes captured from real clients and servers
 * (tests/unit/filters/tls/fixtures/README.md says how).
 *
 * Expected JA3/JA3S values are tshark's; JA4 values are FoxIO's published
 * example and an independent implementation of their specification (see
 * the fixtures README). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/tls/tlsparse.h"
#include "tests/unit/filters/tls/fixtures/tlsfixtures.h"

static char *describe_hello(const buf_t *msg, flt_tls_hello_t *h, uint16_t recver) {
  flt_strbuf_t s;
  flt_strbuf_init(&s, 1 << 20);
  assert_int_equal(flt_tls_hello_parse(msg->p, msg->len, h), 0);
  assert_int_equal(flt_tls_hello_describe(&s, "", h, recver), 0);
  return flt_strbuf_detach(&s, NULL);
}

typedef struct fp_case {
  const char *name, *ja3, *ja3_md5, *ja4;
} fp_case_t;

/* tshark's JA3 (README table) and the JA4 derived in the README. */
static const fp_case_t hello_cases[] = {
    {"openssl-tls12",
     "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-"
     "49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-22-23-13,29-23-30-25-24,"
     "0-1-2",
     "871a754af286dfb70c1b53c6887c62e0", "t12d280700_d943125447b4_e7e480e5a997"},
    {"openssl-tls13",
     "771,4866-4867-4865-255,0-11-10-35-16-22-23-13-43-45-51,29-23-30-25-24-256-257-258-259-260,"
     "0-1-2",
     "9dffdb8b608a430b774a2ff7d36c1a0c", "t13d0411h2_16476d049b0b_78f1d400d464"},
    {"curl",
     "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-"
     "49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-16-22-23-"
     "49-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2",
     "0149f47eabf9a20d0893e2a44e5a6323", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"},
    {"python-ssl",
     "771,4866-4867-4865-49196-49200-49195-49199-52393-52392-49188-49192-49187-49191-159-158-"
     "107-103-255,0-11-10-35-22-23-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2",
     "93c7d42c0df602fb91589311534831f5", "t13d181100_85036bcba153_d41ae481755e"},
    {"chromium",
     "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,16-5-51-"
     "17613-10-45-51764-65281-0-35-43-18-13-23-11-65037-27,4588-29-23-24,0",
     "1bef79f89d1ce1fd50b68eb8379db978", "t13d1517h2_8daaf6152771_cb7bf5808d99"},
    {"hs-tls13-client",
     "771,4866-4867-4865-255,0-11-10-35-22-23-13-43-45-51,29-23-30-25-24-256-257-258-259-260,"
     "0-1-2",
     "f146948b4a599d4d7ddf071b74696983", "t13d041000_16476d049b0b_78f1d400d464"},
};

/* ---- the cursor -------------------------------------------------------------- */

static void test_cursor_bounds(void **state) {
  static const uint8_t b[] = {0x01, 0x02, 0x03, 0x02, 0xaa, 0xbb, 0x05};
  flt_tls_cur_t c, sub;
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  (void)state;

  flt_tls_cur_init(&c, b, sizeof(b));
  assert_int_equal(flt_tls_cur_u16(&c, &u16), 0);
  assert_int_equal(u16, 0x0102);
  assert_int_equal(flt_tls_cur_u8(&c, &u8), 0);
  assert_int_equal(flt_tls_cur_vec(&c, 1, &sub), 0); /* {aa bb} */
  assert_int_equal(sub.len, 2);
  assert_int_equal(sub.p[1], 0xbb);
  assert_int_equal(flt_tls_cur_u32(&c, &u32), -1); /* only 1 byte left */
  assert_int_equal(flt_tls_cur_left(&c), 1);
  assert_int_equal(flt_tls_cur_vec(&c, 1, &sub), -1); /* length 5, 0 bytes */
  assert_int_equal(flt_tls_cur_left(&c), 1);          /* a failed read does not move */
  assert_int_equal(flt_tls_cur_vec(&c, 4, &sub), -1);
  assert_int_equal(flt_tls_cur_bytes(&c, 2, NULL), -1);
  assert_int_equal(flt_tls_cur_u8(&c, &u8), 0);
  assert_int_equal(flt_tls_cur_u8(&c, &u8), -1);
  flt_tls_cur_init(&c, NULL, 5);
  assert_int_equal(flt_tls_cur_left(&c), 0);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(flt_tls_suite_name(0x1301), "TLS_AES_128_GCM_SHA256");
  assert_string_equal(flt_tls_suite_name(0xc02c), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
  assert_string_equal(flt_tls_suite_name(0x00ff), "TLS_EMPTY_RENEGOTIATION_INFO_SCSV");
  assert_null(flt_tls_suite_name(0x0a0a));
  assert_true(flt_tls_is_grease(0x0a0a) && flt_tls_is_grease(0xfafa));
  assert_false(flt_tls_is_grease(0x0a1a) || flt_tls_is_grease(0x1301));
  assert_string_equal(flt_tls_ext_name(0xff01), "renegotiation_info");
  assert_string_equal(flt_tls_ext_name(0xfe0d), "encrypted_client_hello");
  assert_string_equal(flt_tls_group_name(0x11ec), "X25519MLKEM768");
  assert_string_equal(flt_tls_group_name(29), "x25519");
  assert_string_equal(flt_tls_sigalg_name(0x0804), "rsa_pss_rsae_sha256");
  assert_string_equal(flt_tls_handshake_name(15), "CertificateVerify");
  assert_string_equal(flt_tls_handshake_name(99), "unknown");
  assert_string_equal(flt_tls_version_name(0x0304), "TLSv1.3");
  assert_string_equal(flt_tls_alert_name(0), "close_notify");
  assert_string_equal(flt_tls_content_type_name(23), "application_data");
}

/* ---- hellos from real clients -------------------------------------------------- */

static void test_fingerprints_match_tshark(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(hello_cases) / sizeof(hello_cases[0]); i++) {
    const fp_case_t *fc = &hello_cases[i];
    buf_t rec = load(fc->name), hs = handshake_stream(&rec);
    buf_t msg = nth_message(&hs, 0);
    flt_tls_hello_t h;
    flt_strbuf_t s;
    char md5[33], ja4[FLT_TLS_JA4_LEN], str[4096], md5b[33], ja4b[48];

    assert_int_equal(flt_tls_hello_parse(msg.p, msg.len, &h), 0);
    flt_strbuf_init(&s, FLT_TLS_MAX_JA3);
    assert_int_equal(flt_tls_ja3(&h, &s, md5), 0);
    assert_string_equal(s.data, fc->ja3);
    assert_string_equal(md5, fc->ja3_md5);
    assert_int_equal(flt_tls_ja4(&h, ja4, NULL), 0);
    assert_string_equal(ja4, fc->ja4);
    /* The core's entry point gives the same. */
    assert_int_equal(flt_tls_fingerprint(msg.p, msg.len, md5b, str, sizeof(str), ja4b), 0);
    assert_string_equal(md5b, fc->ja3_md5);
    assert_string_equal(str, fc->ja3);
    assert_string_equal(ja4b, fc->ja4);
    flt_strbuf_free(&s);
    free(hs.p);
    free(rec.p);
  }
}

static void test_fingerprint_entry_point_edges(void **state) {
  static const uint8_t junk[] = {1, 0, 0, 3, 3, 3, 0};
  buf_t rec = load("curl"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  char md5[33], str[10], ja4[48];
  (void)state;

  /* A short JA3 buffer gets a cut, NUL-terminated string; the hash is of
   * the whole string. */
  assert_int_equal(flt_tls_fingerprint(msg.p, msg.len, md5, str, sizeof(str), ja4), 0);
  assert_string_equal(str, "771,4866-");
  assert_string_equal(md5, "0149f47eabf9a20d0893e2a44e5a6323");
  assert_int_equal(flt_tls_fingerprint(msg.p, msg.len, md5, NULL, 0, ja4), 0);
  assert_int_equal(flt_tls_fingerprint(junk, sizeof(junk), md5, str, sizeof(str), ja4), -1);
  assert_string_equal(md5, "");
  assert_string_equal(str, "");
  assert_string_equal(ja4, "");
  assert_int_equal(flt_tls_fingerprint(msg.p, msg.len - 1, md5, str, sizeof(str), ja4), -1);
  free(hs.p);
  free(rec.p);
}

static void test_openssl_tls12_hello(void **state) {
  buf_t rec = load("openssl-tls12"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  flt_tls_hello_t h;
  (void)state;

  char *d = describe_hello(&msg, &h, (uint16_t)(rec.p[1] << 8 | rec.p[2]));
  assert_true(h.client);
  assert_int_equal(h.version, 0x0303);
  assert_int_equal(flt_tls_hello_version(&h), 0x0303); /* no supported_versions */
  assert_contains(d, "record version: TLSv1.0 (0x0301)\n");
  assert_contains(d, "handshake version: TLSv1.2 (0x0303)\n");
  assert_contains(d, "session id: empty\n");
  assert_contains(d, "cipher suites (28):\n");
  assert_contains(d, "  0xc02c TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n");
  assert_contains(d, "  0x00ff TLS_EMPTY_RENEGOTIATION_INFO_SCSV\n");
  assert_contains(d, "compression methods: 0 (null)\n");
  assert_contains(d, "extensions (7):\n");
  assert_contains(d, "  server_name (0): example.test\n");
  assert_contains(d,
                  "  ec_point_formats (11): uncompressed (0), ansiX962_compressed_prime (1), "
                  "ansiX962_compressed_char2 (2)\n");
  assert_contains(d,
                  "  supported_groups (10): x25519 (0x001d), secp256r1 (0x0017), "
                  "x448 (0x001e), secp521r1 (0x0019), secp384r1 (0x0018)\n");
  assert_contains(d, "  session_ticket (35): empty (supports tickets; none to resume)\n");
  assert_contains(d, "  encrypt_then_mac (22): (empty: supported)\n");
  assert_contains(d, "  extended_master_secret (23): (empty: supported)\n");
  assert_contains(d, "  signature_algorithms (13): ecdsa_secp256r1_sha256 (0x0403), ");
  /* random: 32 bytes of hex on one line */
  const char *r = strstr(d, "random: ");
  assert_non_null(r);
  assert_int_equal(strcspn(r + 8, "\n"), 64);
  free(d);
  free(hs.p);
  free(rec.p);
}

static void test_curl_and_python_hellos(void **state) {
  buf_t rec = load("curl"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  flt_tls_hello_t h;
  (void)state;

  char *d = describe_hello(&msg, &h, 0);
  assert_int_equal(flt_tls_hello_version(&h), 0x0304);
  assert_contains(d, "record version: not shown");
  assert_contains(d, "highest offered version: TLSv1.3 (0x0304) (supported_versions)\n");
  assert_contains(d,
                  "session id: (32 bytes) "
                  "13dee41a62c4149af0be1241b55d9a5789669b8d3550d9e5b3fc13263850035c\n");
  assert_contains(d, "random: 0b082c07c8f5371e25bcee93ccc96917404e28ff10348062f27fd75c7513fb94\n");
  assert_contains(d, "  0x1302 TLS_AES_256_GCM_SHA384\n");
  assert_contains(d, "  application_layer_protocol_negotiation (16): h2, http/1.1\n");
  assert_contains(d,
                  "  supported_versions (43): TLSv1.3 (0x0304), TLSv1.2 (0x0303), TLSv1.1 "
                  "(0x0302), TLSv1.0 (0x0301)\n");
  assert_contains(d, "  psk_key_exchange_modes (45): psk_dhe_ke (1)\n");
  assert_contains(d, "  key_share (51): x25519 (0x001d) 32-byte key\n");
  assert_contains(d, "  post_handshake_auth (49): (empty: supported)\n");
  assert_contains(d, "  padding (21): ");
  assert_contains(d, " zero bytes (fills the hello");
  free(d);
  free(hs.p);
  free(rec.p);

  rec = load("python-ssl");
  hs = handshake_stream(&rec);
  msg = nth_message(&hs, 0);
  d = describe_hello(&msg, &h, 0);
  assert_contains(d, "  server_name (0): example.test\n");
  assert_contains(d, "  session_ticket (35): empty");
  free(d);
  free(hs.p);
  free(rec.p);
}

static void test_chromium_hello(void **state) {
  buf_t rec = load("chromium"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  flt_tls_hello_t h;
  (void)state;

  char *d = describe_hello(&msg, &h, 0x0301);
  /* Chromium puts GREASE first in ciphers, extensions, groups, versions. */
  assert_contains(d, " GREASE\n");
  assert_contains(d, "  GREASE (");
  assert_contains(d, "(GREASE: a meaningless value");
  assert_contains(d, "  key_share (51): GREASE (0x");
  assert_contains(d, "X25519MLKEM768 (0x11ec) 1216-byte key, x25519 (0x001d) 32-byte key\n");
  assert_contains(d, "  supported_groups (10): GREASE (0x");
  assert_contains(d, "  status_request (5): OCSP");
  assert_contains(d, "  renegotiation_info (65281): empty (initial handshake");
  assert_contains(d, "  compress_certificate (27): brotli (0x0002)\n");
  assert_contains(d, "  encrypted_client_hello (65037): present, ");
  assert_contains(d, "not decoded");
  assert_contains(d, "  signed_certificate_timestamp (18): (empty)\n");
  assert_contains(d, "  application_settings (17613): ");
  assert_contains(d, "  unknown (51764): "); /* not in the registry: type + hex */
  assert_contains(d, "compression methods: 0 (null)\n");
  free(d);
  free(hs.p);
  free(rec.p);
}

/* A ClientHello with the given lists; extensions get their real contents
 * for SNI, ALPN, signature_algorithms and supported_versions, and are empty
 * (or `pad` zero bytes for padding) otherwise. */
static void build_hello(wbuf_t *w, const uint16_t *ciphers, size_t nc, const uint16_t *exts,
                        size_t ne, const uint16_t *sigalgs, size_t ns, size_t pad) {
  w->len = 0;
  w8(w, 1);
  w24(w, 0);
  w16(w, 0x0303);
  for (int i = 0; i < 32; i++)
    w8(w, (unsigned)i);
  w8(w, 0);
  w16(w, (unsigned)(nc * 2));
  for (size_t i = 0; i < nc; i++)
    w16(w, ciphers[i]);
  w8(w, 1);
  w8(w, 0);
  size_t ext_at = w->len;
  w16(w, 0);
  for (size_t i = 0; i < ne; i++) {
    w16(w, exts[i]);
    size_t len_at = w->len;
    w16(w, 0);
    if (exts[i] == FLT_TLS_EXT_SERVER_NAME) {
      w16(w, 14);
      w8(w, 0);
      w16(w, 11);
      wbytes(w, "example.com", 11);
    } else if (exts[i] == FLT_TLS_EXT_ALPN) {
      w16(w, 12);
      w8(w, 2);
      wbytes(w, "h2", 2);
      w8(w, 8);
      wbytes(w, "http/1.1", 8);
    } else if (exts[i] == FLT_TLS_EXT_SIGNATURE_ALGORITHMS) {
      w16(w, (unsigned)(ns * 2));
      for (size_t k = 0; k < ns; k++)
        w16(w, sigalgs[k]);
    } else if (exts[i] == FLT_TLS_EXT_SUPPORTED_VERSIONS) {
      w8(w, 6);
      w16(w, 0x7a7a);
      w16(w, 0x0304);
      w16(w, 0x0303);
    } else if (exts[i] == FLT_TLS_EXT_RECORD_SIZE_LIMIT) {
      w16(w, 16385);
    } else if (exts[i] == FLT_TLS_EXT_PADDING) {
      memset(w->p + w->len, 0, pad);
      w->len += pad;
    }
    wpatch(w, len_at, 2, w->len - len_at - 2);
  }
  wpatch(w, ext_at, 2, w->len - ext_at - 2);
  wpatch(w, 1, 3, w->len - 4);
}

/* FoxIO's JA4.md example: these lists, in this order, give
 * t13d1516h2_8daaf6152771_e5627efa2ab1 (GREASE added: it must not count). */
static void test_ja4_foxio_example(void **state) {
  static const uint16_t ciphers[] = {0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                     0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
                                     0x009c, 0x009d, 0x002f, 0x0035};
  static const uint16_t exts[] = {0x3a3a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469,
                                  0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
                                  0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0xfafa};
  static const uint16_t sigalgs[] = {0x0403, 0x0804, 0x0401, 0x0503,
                                     0x0805, 0x0501, 0x0806, 0x0601};
  static wbuf_t w;
  flt_tls_hello_t h;
  flt_strbuf_t raw;
  char ja4[FLT_TLS_JA4_LEN];
  (void)state;

  build_hello(&w, ciphers, 16, exts, 18, sigalgs, 8, 0);
  assert_int_equal(flt_tls_hello_parse(w.p, w.len, &h), 0);
  flt_strbuf_init(&raw, 4096);
  assert_int_equal(flt_tls_ja4(&h, ja4, &raw), 0);
  assert_string_equal(ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
  assert_string_equal(raw.data,
                      "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,"
                      "c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,"
                      "0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601");
  flt_strbuf_free(&raw);

  /* No SNI, no ALPN, no signature algorithms: "i", "00", and the
   * extension hash over the list alone (FoxIO: "ends without an
   * underscore"); no ciphers: twelve zeros. */
  static const uint16_t few[] = {0x000a, 0x000b};
  build_hello(&w, ciphers, 0, few, 2, NULL, 0, 0);
  assert_int_equal(flt_tls_hello_parse(w.p, w.len, &h), 0);
  assert_int_equal(flt_tls_ja4(&h, ja4, NULL), 0);
  /* printf '000a,000b' | sha256sum -> 33a13ba74d1c... */
  assert_string_equal(ja4, "t12i000200_000000000000_33a13ba74d1c");
}

/* A ClientHello over 16 KiB (post-quantum shares and padding make them
 * big): parsed whole, spread over two records, reassembled by the wire
 * view. */
static void count_records(void *ud, const flt_tls_record_t *r) {
  size_t *counts = ud;
  counts[r->type == 0 ? 0 : 1]++;
  counts[2] += r->len;
}

static void test_big_hello(void **state) {
  static const uint16_t ciphers[] = {0x1301, 0x1302};
  static const uint16_t exts[] = {0x0000, 0x002b, 0x001c, 0x0015};
  static wbuf_t w, recs;
  flt_tls_hello_t h;
  flt_strbuf_t s;
  char md5[33];
  (void)state;

  build_hello(&w, ciphers, 2, exts, 4, NULL, 0, 20000);
  assert_true(w.len > 16384);
  assert_int_equal(flt_tls_hello_parse(w.p, w.len, &h), 0);
  flt_strbuf_init(&s, 1 << 20);
  assert_int_equal(flt_tls_hello_describe(&s, "", &h, 0), 0);
  assert_contains(s.data, "padding (21): 20000 zero bytes");
  assert_contains(s.data, "record_size_limit (28): 16385 bytes per record at most\n");
  flt_strbuf_reset(&s);
  assert_int_equal(flt_tls_ja3(&h, &s, md5), 0);
  assert_string_equal(s.data, "771,4865-4866,0-43-28-21,,");
  flt_strbuf_free(&s);

  /* Two records, fed in odd-sized chunks. */
  recs.len = 0;
  for (size_t off = 0; off < w.len; off += 16384) {
    size_t n = w.len - off < 16384 ? w.len - off : 16384;
    w8(&recs, 22);
    w16(&recs, 0x0301);
    w16(&recs, (unsigned)n);
    wbytes(&recs, w.p + off, n);
  }
  flt_tls_reasm_t r;
  size_t counts[3] = {0, 0, 0};
  assert_int_equal(flt_tls_reasm_init(&r, 64), 0);
  for (size_t off = 0, step = 1; off < recs.len; off += step, step = step * 3 % 4099 + 1) {
    size_t n = recs.len - off < step ? recs.len - off : step;
    flt_tls_reasm_feed(&r, recs.p + off, n, count_records, counts);
  }
  assert_int_equal(counts[0], 0);
  assert_int_equal(counts[1], 2);
  assert_int_equal(counts[2], w.len);
  assert_int_equal(flt_tls_reasm_pending(&r), 0);
  flt_tls_reasm_free(&r);
}

/* ---- server messages ------------------------------------------------------------- */

static void test_server_hello_tls12(void **state) {
  buf_t rec = load("hs-tls12-server"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  flt_tls_hello_t h;
  flt_strbuf_t s;
  char md5[33];
  (void)state;

  char *d = describe_hello(&msg, &h, 0x0303);
  assert_false(h.client);
  assert_int_equal(flt_tls_hello_suite(&h), 0xc02c);
  assert_contains(d, "cipher suite: 0xc02c TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n");
  assert_contains(d, "compression method: 0 (null)\n");
  assert_contains(d, "  renegotiation_info (65281): empty");
  assert_contains(d, "  extended_master_secret (23): (empty: supported)\n");
  flt_strbuf_init(&s, 4096);
  assert_int_equal(flt_tls_ja3s(&h, &s, md5), 0);
  assert_string_equal(s.data, "771,49196,65281-11-35-23"); /* tshark */
  assert_string_equal(md5, "abade5a4a7f42baf54766e5d108283b6");
  flt_strbuf_free(&s);
  free(d);
  free(hs.p);
  free(rec.p);
}

static void test_server_hello_tls13(void **state) {
  buf_t rec = load("hs-tls13-server"), hs = handshake_stream(&rec), msg = nth_message(&hs, 0);
  flt_tls_hello_t h;
  flt_strbuf_t s;
  char md5[33];
  (void)state;

  char *d = describe_hello(&msg, &h, 0x0303);
  assert_int_equal(flt_tls_hello_version(&h), 0x0304);
  assert_contains(d, "chosen version: TLSv1.3 (0x0304) (supported_versions)\n");
  assert_contains(d, "cipher suite: 0x1302 TLS_AES_256_GCM_SHA384\n");
  assert_contains(d, "  supported_versions (43): TLSv1.3 (0x0304)\n");
  assert_contains(d, "  key_share (51): x25519 (0x001d) 32-byte key\n");
  flt_strbuf_init(&s, 4096);
  assert_int_equal(flt_tls_ja3s(&h, &s, md5), 0);
  assert_string_equal(s.data, "771,4866,43-51");
  assert_string_equal(md5, "15af977ce25de452b96affa2addb1036");
  flt_strbuf_free(&s);
  free(d);
  free(hs.p);
  free(rec.p);
}

static const char *const cert_facts[] = {
    "certificate 1 (the server's own, ",
    "    subject: CN=example.test\n",
    "    issuer:  CN=tlspeek CA (vm),O=tlspeek\n",
    "    subject: CN=tlspeek CA (vm),O=tlspeek\n",
    "    issuer:  CN=tlspeek CA (vm),O=tlspeek (self-issued)\n",
    "    serial: EAB8F55F2BE30EFD05A4B9701D08BEA0\n",
    "    valid: 2026-11-25 00:04:17 UTC \xe2\x86\x92 2027-12-29 00:04:17 UTC\n",
    "    SANs: DNS:example.test\n",
    "    key: EC prime256v1, 256 bits\n",
    "    signature: ecdsa-with-SHA256\n",
    "    SHA-256 fingerprint: 8B:C0:00:3D:5E:8D:7D:84:25:21:5C:1A:AD:15:6C:9A:C4:9D:A7:F6:88:1A:"
    "B7:50:AF:F7:9D:C0:B8:00:5F:36\n",
    "certificate 2 (chain, ",
    "    serial: 84C28AA7CCD5862E8AF0E12078FD9142\n",
    "    SANs: none\n",
    "    SHA-256 fingerprint: 8E:3A:CE:7A:8D:1E:AC:13:03:60:62:C3:DB:CA:8D:7E:0D:5B:0B:63:58:63:"
    "79:00:DA:F8:77:A7:9F:97:EE:03\n",
};

static void test_certificates(void **state) {
  buf_t rec = load("hs-tls12-server"), hs = handshake_stream(&rec), msg = nth_message(&hs, 1);
  static wbuf_t w13;
  flt_strbuf_t s12, s13;
  (void)state;

  assert_int_equal(msg.p[0], FLT_TLS_HS_CERTIFICATE);
  flt_strbuf_init(&s12, 1 << 20);
  assert_int_equal(flt_tls_certs_describe(&s12, "", msg.p, msg.len, 0), 0);
  for (size_t i = 0; i < sizeof(cert_facts) / sizeof(cert_facts[0]); i++)
    assert_contains(s12.data, cert_facts[i]);

  cert_to_tls13(&msg, &w13);
  flt_strbuf_init(&s13, 1 << 20);
  assert_int_equal(flt_tls_certs_describe(&s13, "", w13.p, w13.len, 1), 0);
  assert_string_equal(s12.data, s13.data);
  /* The wrong framing is reported, not misread. */
  flt_strbuf_reset(&s13);
  flt_tls_certs_describe(&s13, "", w13.p, w13.len, 0);
  assert_contains(s13.data, "malformed Certificate message");
  flt_strbuf_free(&s12);
  flt_strbuf_free(&s13);
  free(hs.p);
  free(rec.p);
}

static void test_server_key_exchange(void **state) {
  buf_t rec = load("hs-tls12-server"), hs = handshake_stream(&rec);
  buf_t ske_msg = nth_message(&hs, 2), shd = nth_message(&hs, 3), nst = nth_message(&hs, 4);
  flt_tls_ske_t ske;
  flt_strbuf_t s;
  (void)state;

  assert_int_equal(flt_tls_ske_parse(ske_msg.p, ske_msg.len, &ske), 0);
  assert_true(ske.ecdhe);
  assert_int_equal(ske.group, 0x001d);
  assert_int_equal(ske.pub_len, 32);
  assert_true(ske.has_sig);
  assert_int_equal(ske.sigalg, 0x0403);
  flt_strbuf_init(&s, 1 << 16);
  flt_tls_msg_describe(&s, "", ske_msg.p, ske_msg.len, 0);
  assert_contains(s.data,
                  "key exchange: ECDHE, curve x25519 (0x001d), server public key 32 bytes\n");
  assert_contains(s.data, "signature: ecdsa_secp256r1_sha256 (0x0403), ");
  flt_strbuf_reset(&s);
  flt_tls_msg_describe(&s, "", shd.p, shd.len, 0);
  assert_contains(s.data, "(empty: the server has said everything");
  flt_strbuf_reset(&s);
  flt_tls_msg_describe(&s, "", nst.p, nst.len, 0);
  assert_contains(s.data, "ticket: ");
  flt_strbuf_free(&s);
  /* The client's side: ClientKeyExchange is the 2nd message of its flight. */
  buf_t crec = load("hs-tls12-client"), chs = handshake_stream(&crec);
  buf_t cke = nth_message(&chs, 1);
  assert_int_equal(cke.p[0], FLT_TLS_HS_CLIENT_KEY_EXCHANGE);
  flt_strbuf_init(&s, 1 << 16);
  flt_tls_msg_describe(&s, "", cke.p, cke.len, 0);
  assert_string_equal(s.data, "client public key: 32 bytes (ECDHE)\n");
  flt_strbuf_free(&s);
  free(chs.p);
  free(crec.p);
  free(hs.p);
  free(rec.p);
}

/* ---- the wire view's reassembly ---------------------------------------------------- */

typedef struct rec_log {
  char text[4096];
  size_t len;
} rec_log_t;

static void log_record(void *ud, const flt_tls_record_t *r) {
  rec_log_t *l = ud;
  l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%u/%zu/%zu ", r->type,
                             r->len, r->head_len);
}

static void test_reassembly(void **state) {
  static const char connect[] = "CONNECT example.test:443 HTTP/1.1\r\n\r\n";
  buf_t rec = load("hs-tls13-server");
  rec_log_t whole = {"", 0}, bytewise = {"", 0}, mixed = {"", 0};
  flt_tls_reasm_t r;
  (void)state;

  assert_int_equal(flt_tls_reasm_init(&r, 8), 0);
  flt_tls_reasm_feed(&r, rec.p, rec.len, log_record, &whole);
  flt_tls_reasm_free(&r);
  /* ServerHello, ChangeCipherSpec, then application_data records. */
  assert_memory_equal(whole.text, "22/", 3);
  assert_contains(whole.text, " 20/1/1 23/");

  assert_int_equal(flt_tls_reasm_init(&r, 8), 0);
  for (size_t i = 0; i < rec.len; i++) {
    flt_tls_reasm_feed(&r, rec.p + i, 1, log_record, &bytewise);
    if (i + 1 < rec.len) assert_true(flt_tls_reasm_pending(&r) > 0 || bytewise.len > 0);
  }
  flt_tls_reasm_free(&r);
  assert_string_equal(whole.text, bytewise.text);

  /* The CONNECT before TLS is plaintext (type 0), then records. */
  assert_int_equal(flt_tls_reasm_init(&r, 0), 0);
  flt_tls_reasm_feed(&r, (const uint8_t *)connect, strlen(connect), log_record, &mixed);
  flt_tls_reasm_feed(&r, rec.p, 3, log_record, &mixed);
  flt_tls_reasm_feed(&r, rec.p + 3, rec.len - 3, log_record, &mixed);
  /* A header that is not TLS after records: the rest is plaintext. */
  flt_tls_reasm_feed(&r, (const uint8_t *)"\x17\x09\x09xx", 5, log_record, &mixed);
  flt_tls_reasm_free(&r);
  assert_memory_equal(mixed.text, "0/37/37 22/", 11);
  assert_contains(mixed.text, " 0/5/5 ");
  free(rec.p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cursor_bounds),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_fingerprints_match_tshark),
      cmocka_unit_test(test_fingerprint_entry_point_edges),
      cmocka_unit_test(test_openssl_tls12_hello),
      cmocka_unit_test(test_curl_and_python_hellos),
      cmocka_unit_test(test_chromium_hello),
      cmocka_unit_test(test_ja4_foxio_example),
      cmocka_unit_test(test_big_hello),
      cmocka_unit_test(test_server_hello_tls12),
      cmocka_unit_test(test_server_hello_tls13),
      cmocka_unit_test(test_certificates),
      cmocka_unit_test(test_server_key_exchange),
      cmocka_unit_test(test_reassembly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
