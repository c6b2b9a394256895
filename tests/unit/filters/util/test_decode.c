/* test_decode.c — Content-Encoding decoders (filters/util/decode.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "filters/util/decode.h"

/* Made with: printf 'The quick brown fox jumps over the lazy dog. %.0s' \
 *   1 2 3 4 5 6 7 8 | brotli -c | xxd -i   (brotli 1.0.9). The test binary
 * links libbrotlidec only, so the encoder side is a fixture. */
static const uint8_t br_fox[] = {
    0x1f, 0x67, 0x01, 0x88, 0x2c, 0x0e, 0x78, 0xd3, 0xd0, 0x95, 0x5d, 0x97,
    0x10, 0xbb, 0x17, 0x2b, 0xa9, 0xca, 0xd0, 0x92, 0xcc, 0x8c, 0xad, 0x41,
    0x5c, 0xe6, 0xf2, 0x36, 0xc8, 0x19, 0x9e, 0x9e, 0x0a, 0x7b, 0x83, 0x0d,
    0x38, 0x70, 0x48, 0x20, 0x6f, 0x24, 0xbc, 0x41, 0xa7, 0x15, 0xce, 0x1c,
    0x1e, 0x27, 0xaa, 0x29, 0x38, 0xc2, 0xa9, 0xef, 0xd3, 0x60};
#define FOX "The quick brown fox jumps over the lazy dog. "

/* head -c 100000 /dev/zero | tr '\0' a | brotli -c | xxd -i */
static const uint8_t br_100k_a[] = {0x5f, 0x9f, 0x86, 0x81, 0x5f, 0x22, 0x2c,
                                    0x1e, 0x0b, 0x04, 0xb2, 0xfc, 0x02, 0x00};

typedef struct blob {
  uint8_t *p;
  size_t len;
} blob_t;

/* Deflates with zlib: window_bits 15 = zlib wrapper, -15 = raw, 31 = gzip. */
static blob_t zlib_compress(const void *data, size_t len, int window_bits) {
  z_stream z;
  blob_t out;

  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8,
                                Z_DEFAULT_STRATEGY), Z_OK);
  out.len = deflateBound(&z, len) + 32;
  out.p = malloc(out.len);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)len;
  z.next_out = out.p;
  z.avail_out = (uInt)out.len;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.len = z.total_out;
  deflateEnd(&z);
  return out;
}

static blob_t zstd_compress(const void *data, size_t len) {
  blob_t out;
  out.len = ZSTD_compressBound(len);
  out.p = malloc(out.len);
  out.len = ZSTD_compress(out.p, out.len, data, len, 3);
  assert_false(ZSTD_isError(out.len));
  return out;
}

/* Some text with structure, so that compression has work to do. */
static char *make_text(size_t len) {
  char *t = malloc(len + 1);
  for (size_t i = 0; i < len; i++) t[i] = "abcdefghij klmnop\n"[(i * i) % 18];
  t[len] = '\0';
  return t;
}

/* Decodes `in` fed in pieces of `step` bytes; returns the decoder's
 * result from finish, with the output in `out`. */
static int decode_steps(const char *enc, const uint8_t *in, size_t len,
                        size_t step, flt_strbuf_t *out) {
  flt_decoder_t *d = flt_decoder_new(enc, enc ? strlen(enc) : 0, out);
  int r = 0;
  assert_non_null(d);
  for (size_t off = 0; off < len && r == 0; off += step)
    r = flt_decoder_feed(d, in + off, len - off < step ? len - off : step);
  if (r == 0) r = flt_decoder_finish(d);
  flt_decoder_free(d);
  return r;
}

static void assert_round_trip(const char *enc, const blob_t *c,
                              const char *plain, size_t plain_len) {
  static const size_t steps[] = {1, 7, 4096, 1u << 30};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    flt_strbuf_t out;
    flt_strbuf_init(&out, 0);
    assert_int_equal(decode_steps(enc, c->p, c->len, steps[i], &out), 0);
    assert_int_equal(out.len, plain_len);
    assert_memory_equal(out.data, plain, plain_len);
    assert_false(out.truncated);
    flt_strbuf_free(&out);
  }
}

static void test_gzip_round_trip(void **state) {
  char *text = make_text(100000);
  blob_t c = zlib_compress(text, 100000, 31);
  (void)state;

  assert_round_trip("gzip", &c, text, 100000);
  assert_round_trip("x-gzip", &c, text, 100000);
  assert_round_trip(" GZip ", &c, text, 100000);
  free(c.p);
  free(text);
}

static void test_deflate_zlib_and_raw(void **state) {
  char *text = make_text(50000);
  blob_t zl = zlib_compress(text, 50000, 15);
  blob_t raw = zlib_compress(text, 50000, -15);
  (void)state;

  assert_round_trip("deflate", &zl, text, 50000);
  assert_round_trip("deflate", &raw, text, 50000);
  free(zl.p);
  free(raw.p);
  free(text);
}

static void test_brotli_fixtures(void **state) {
  blob_t fox = {(uint8_t *)br_fox, sizeof(br_fox)};
  blob_t aaa = {(uint8_t *)br_100k_a, sizeof(br_100k_a)};
  char *a = malloc(100000);
  (void)state;

  memset(a, 'a', 100000);
  assert_round_trip("br", &fox, FOX FOX FOX FOX FOX FOX FOX FOX,
                    8 * strlen(FOX));
  assert_round_trip("br", &aaa, a, 100000);
  free(a);
}

static void test_zstd_round_trip(void **state) {
  char *text = make_text(200000);
  blob_t c = zstd_compress(text, 200000);
  (void)state;

  assert_round_trip("zstd", &c, text, 200000);
  free(c.p);
  free(text);
}

static void test_identity(void **state) {
  blob_t c = {(uint8_t *)"plain bytes", 11};
  (void)state;

  assert_round_trip(NULL, &c, "plain bytes", 11);
  assert_round_trip("", &c, "plain bytes", 11);
  assert_round_trip("identity", &c, "plain bytes", 11);
}

/* "Content-Encoding: br, gzip" means br was applied first, then gzip. */
static void test_stacked_codings(void **state) {
  blob_t gz_br = zlib_compress(br_fox, sizeof(br_fox), 31);
  char *text = make_text(30000);
  blob_t inner = zlib_compress(text, 30000, 15);
  blob_t zs = zstd_compress(inner.p, inner.len);
  (void)state;

  assert_round_trip("br, gzip", &gz_br, FOX FOX FOX FOX FOX FOX FOX FOX,
                    8 * strlen(FOX));
  assert_round_trip("deflate,zstd", &zs, text, 30000);
  assert_round_trip("identity, deflate , identity,zstd", &zs, text, 30000);
  free(gz_br.p);
  free(inner.p);
  free(zs.p);
  free(text);
}

static void test_gzip_multi_member(void **state) {
  blob_t a = zlib_compress("first,", 6, 31);
  blob_t b = zlib_compress("second", 6, 31);
  blob_t both = {malloc(a.len + b.len), a.len + b.len};
  (void)state;

  memcpy(both.p, a.p, a.len);
  memcpy(both.p + a.len, b.p, b.len);
  assert_round_trip("gzip", &both, "first,second", 12);
  free(a.p);
  free(b.p);
  free(both.p);
}

/* The output cap stops decoding: no error, truncated set, work stops. */
static void test_truncates_at_cap(void **state) {
  static const char *const encs[] = {"gzip", "deflate", "br", "zstd"};
  char *zeros = calloc(1, 1 << 20);
  blob_t blobs[4];
  (void)state;

  blobs[0] = zlib_compress(zeros, 1 << 20, 31);
  blobs[1] = zlib_compress(zeros, 1 << 20, -15);
  blobs[2] = (blob_t){(uint8_t *)br_100k_a, sizeof(br_100k_a)};
  blobs[3] = zstd_compress(zeros, 1 << 20);
  for (int i = 0; i < 4; i++) {
    flt_strbuf_t out;
    flt_decoder_t *d;
    flt_strbuf_init(&out, 1000);
    d = flt_decoder_new(encs[i], strlen(encs[i]), &out);
    assert_int_equal(flt_decoder_feed(d, blobs[i].p, blobs[i].len), 0);
    assert_true(flt_decoder_stopped(d));
    assert_int_equal(flt_decoder_finish(d), 0);
    assert_null(flt_decoder_error(d));
    assert_int_equal(out.len, 1000);
    assert_true(out.truncated);
    flt_decoder_free(d);
    flt_strbuf_free(&out);
  }
  free(blobs[0].p);
  free(blobs[1].p);
  free(blobs[3].p);
  free(zeros);
}

/* Without an output buffer the decoder only counts: the whole decoded size,
 * for every coding, identity and stacks included. */
static void test_counts_without_output(void **state) {
  static const char *const encs[] = {"gzip", "deflate", "br", "zstd", "", "gzip, zstd"};
  char *zeros = calloc(1, 1 << 20);
  blob_t gz = zlib_compress(zeros, 1 << 20, 31);
  blob_t blobs[6];
  uint64_t sizes[6] = {1 << 20, 1 << 20, 100000, 1 << 20, 1 << 20, 1 << 20};
  (void)state;

  blobs[0] = gz;
  blobs[1] = zlib_compress(zeros, 1 << 20, -15);
  blobs[2] = (blob_t){(uint8_t *)br_100k_a, sizeof(br_100k_a)};
  blobs[3] = zstd_compress(zeros, 1 << 20);
  blobs[4] = (blob_t){(uint8_t *)zeros, 1 << 20};
  blobs[5] = zstd_compress(gz.p, gz.len);
  for (int i = 0; i < 6; i++) {
    flt_decoder_t *d = flt_decoder_new(encs[i], strlen(encs[i]), NULL);
    assert_non_null(d);
    for (size_t off = 0; off < blobs[i].len; off += 1000) {
      size_t n = blobs[i].len - off < 1000 ? blobs[i].len - off : 1000;
      assert_int_equal(flt_decoder_feed(d, blobs[i].p + off, n), 0);
    }
    if (flt_decoder_finish(d) != 0) fail_msg("%s: %s", encs[i], flt_decoder_error(d));
    assert_false(flt_decoder_stopped(d));
    assert_true(flt_decoder_produced(d) == sizes[i]);
    flt_decoder_free(d);
  }
  for (int i = 0; i < 6; i++)
    if (i != 2 && i != 4) free(blobs[i].p);
  free(zeros);
}

static void assert_error(const char *enc, const uint8_t *in, size_t len,
                         const char *coding, const char *reason) {
  flt_strbuf_t out;
  flt_decoder_t *d;
  int r;

  flt_strbuf_init(&out, 0);
  d = flt_decoder_new(enc, strlen(enc), &out);
  r = flt_decoder_feed(d, in, len);
  if (r == 0) r = flt_decoder_finish(d);
  assert_int_equal(r, -1);
  assert_string_equal(flt_decoder_error_coding(d), coding);
  if (reason) assert_string_equal(flt_decoder_error(d), reason);
  assert_non_null(flt_decoder_error(d));
  /* After an error, feeding is refused. */
  assert_int_equal(flt_decoder_feed(d, in, len), -1);
  flt_decoder_free(d);
  flt_strbuf_free(&out);
}

static void test_corrupt_input(void **state) {
  static const uint8_t junk[] = "this is not compressed at all";
  char *text = make_text(5000);
  blob_t gz = zlib_compress(text, 5000, 31);
  (void)state;

  assert_error("gzip", junk, sizeof(junk), "gzip", "incorrect header check");
  assert_error("br", junk, sizeof(junk), "br", NULL);
  assert_error("zstd", junk, sizeof(junk), "zstd", "Unknown frame descriptor");
  /* A gzip body cut short decodes what it can, then finish says so. */
  assert_error("gzip", gz.p, gz.len / 2, "gzip", "truncated stream");
  assert_error("br", br_fox, sizeof(br_fox) - 5, "br", "truncated stream");
  /* A flipped byte inside the deflate data. */
  gz.p[gz.len / 2] ^= 0x55;
  assert_error("gzip", gz.p, gz.len, "gzip", NULL);
  /* Second coding applied by the sender (gzip) is valid; br beneath is not. */
  blob_t gz_junk = zlib_compress(junk, sizeof(junk), 31);
  assert_error("br, gzip", gz_junk.p, gz_junk.len, "br", NULL);
  free(gz_junk.p);
  free(gz.p);
  free(text);
}

static void test_unsupported_coding(void **state) {
  (void)state;
  assert_error("compress", (const uint8_t *)"x", 1, "compress",
               "unsupported coding");
  assert_error("gzip, lzma", (const uint8_t *)"x", 1, "lzma",
               "unsupported coding");
  assert_error("gzip,gzip,gzip,gzip,gzip", (const uint8_t *)"x", 1, "gzip",
               "too many codings");
}

/* HEAD responses, 204 and 304 may carry Content-Encoding with no body. */
static void test_empty_body_is_fine(void **state) {
  flt_strbuf_t out;
  flt_decoder_t *d;
  (void)state;

  flt_strbuf_init(&out, 0);
  d = flt_decoder_new("gzip", 4, &out);
  assert_int_equal(flt_decoder_feed(d, NULL, 0), 0);
  assert_int_equal(flt_decoder_finish(d), 0);
  assert_int_equal(out.len, 0);
  flt_decoder_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gzip_round_trip),
      cmocka_unit_test(test_deflate_zlib_and_raw),
      cmocka_unit_test(test_brotli_fixtures),
      cmocka_unit_test(test_zstd_round_trip),
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_stacked_codings),
      cmocka_unit_test(test_gzip_multi_member),
      cmocka_unit_test(test_truncates_at_cap),
      cmocka_unit_test(test_counts_without_output),
      cmocka_unit_test(test_corrupt_input),
      cmocka_unit_test(test_unsupported_coding),
      cmocka_unit_test(test_empty_body_is_fine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
