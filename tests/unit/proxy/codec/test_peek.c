/* Unit tests for the first-bytes classifier (proxy/codec/peek.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/codec/peek.h"

static px_peek_kind_t classify(const char *s) {
  return px_peek_classify((const uint8_t *)s, strlen(s));
}

static void test_kinds(void **state) {
  (void)state;
  static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
  assert_int_equal(px_peek_classify(hello, 1), PX_PEEK_TLS);
  assert_int_equal(px_peek_classify(hello, sizeof(hello)), PX_PEEK_TLS);
  assert_int_equal(classify("GET / HTTP/1.1\r\n"), PX_PEEK_HTTP);
  assert_int_equal(classify("OPTIONS * HTTP/1.1\r\n"), PX_PEEK_HTTP);
  assert_int_equal(classify("SSH-2.0-OpenSSH_9.2\r\n"), PX_PEEK_RAW);
  /* Any token is a method (RFC 9110 §9.1); one not all capitals needs its
   * request line to end in HTTP/x.y. */
  assert_int_equal(classify("get / HTTP/1.1\r\n"), PX_PEEK_HTTP);
  assert_int_equal(classify("get / SSH/1.1\r\n"), PX_PEEK_RAW);
  assert_int_equal(classify("GE / HTTP/1.1\r\n"), PX_PEEK_HTTP);
  assert_int_equal(classify("\r\n\r\nGET / HTTP/1.1\r\n"), PX_PEEK_HTTP); /* RFC 9112 §2.2 */
  assert_int_equal(px_peek_classify((const uint8_t *)"\0", 1), PX_PEEK_RAW);
}

static void test_need_more(void **state) {
  (void)state;
  assert_int_equal(px_peek_classify(NULL, 0), PX_PEEK_NEED_MORE);
  assert_int_equal(classify("G"), PX_PEEK_NEED_MORE);
  assert_int_equal(classify("GET"), PX_PEEK_NEED_MORE);
  assert_int_equal(classify("GET "), PX_PEEK_HTTP);
  assert_int_equal(classify("\r\n"), PX_PEEK_NEED_MORE);
  assert_int_equal(classify("get / HTTP/1."), PX_PEEK_NEED_MORE);
}

/* Empty lines, or bare CRs, are not waited for without end. */
static void test_leading_line_ends_are_bounded(void **state) {
  (void)state;
  char in[PX_PEEK_MAX_UNDECIDED + 1];
  memset(in, '\r', sizeof(in));
  size_t n = 0;
  while (n < sizeof(in) && px_peek_classify((const uint8_t *)in, n + 1) == PX_PEEK_NEED_MORE) n++;
  assert_true(n < sizeof(in));
  assert_int_equal(px_peek_classify((const uint8_t *)in, sizeof(in)), PX_PEEK_RAW);
}

/* A method of exactly PX_HTTP_MAX_METHOD letters: the verdict must not
 * depend on whether the space came in the same read. */
static void test_longest_method_any_split(void **state) {
  (void)state;
  char in[PX_HTTP_MAX_METHOD + 2];
  memset(in, 'A', PX_HTTP_MAX_METHOD);
  in[PX_HTTP_MAX_METHOD] = ' ';
  in[PX_HTTP_MAX_METHOD + 1] = '\0';
  for (size_t n = 1; n <= PX_HTTP_MAX_METHOD; n++)
    assert_int_equal(px_peek_classify((const uint8_t *)in, n), PX_PEEK_NEED_MORE);
  assert_int_equal(classify(in), PX_PEEK_HTTP);
  /* One letter more is no method: decided without waiting for the space. */
  char longer[PX_HTTP_MAX_METHOD + 3];
  memset(longer, 'A', PX_HTTP_MAX_METHOD + 1);
  longer[PX_HTTP_MAX_METHOD + 1] = ' ';
  longer[PX_HTTP_MAX_METHOD + 2] = '\0';
  assert_int_equal(px_peek_classify((const uint8_t *)longer, PX_HTTP_MAX_METHOD + 1), PX_PEEK_RAW);
  assert_int_equal(classify(longer), PX_PEEK_RAW);
}

/* The HTTP/2 preface (h2c with prior knowledge): waited for whole, however
 * it is split; a line that leaves it is HTTP/1 again. */
static void test_h2_preface(void **state) {
  (void)state;
  static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04";
  for (size_t n = 1; n < 24; n++)
    assert_int_equal(px_peek_classify((const uint8_t *)pre, n), PX_PEEK_NEED_MORE);
  assert_int_equal(px_peek_classify((const uint8_t *)pre, 24), PX_PEEK_H2);
  assert_int_equal(px_peek_classify((const uint8_t *)pre, sizeof(pre) - 1), PX_PEEK_H2);
  assert_int_equal(classify("PRI * HTTP/2.0\r\nHost: x\r\n"), PX_PEEK_HTTP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_need_more),
      cmocka_unit_test(test_longest_method_any_split),
      cmocka_unit_test(test_leading_line_ends_are_bounded),
      cmocka_unit_test(test_h2_preface),
  };
  return cmocka_run_group_tests_name("peek", tests, NULL, NULL);
}
