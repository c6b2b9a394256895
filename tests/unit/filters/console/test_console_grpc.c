/* test_console_grpc.c — the console's gRPC body view (console_grpc.c,
 * console.h): length-prefixed messages as protobuf wire-format fields,
 * compared byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "filters/console/console_internal.h"

static void check(const char *body, size_t len, int cut, const char *want) {
  flt_strbuf_t out;
  flt_strbuf_init(&out, 0);
  assert_int_equal(flt_con_render_grpc(&out, (const uint8_t *)body, len, cut), 0);
  assert_string_equal(out.data ? out.data : "", want);
  flt_strbuf_free(&out);
}

static void test_fields(void **state) {
  (void)state;
  /* 1: 150, 2: "hello", 3 { 1: 1 }, 4: fixed32 1, 5: bytes 00 ff */
  static const char m[] = "\x00\x00\x00\x00\x17"
                          "\x08\x96\x01\x12\x05hello\x1a\x02\x08\x01\x25\x01\x00\x00\x00"
                          "\x2a\x02\x00\xff";
  check(m, sizeof(m) - 1, 0,
        "    gRPC message 1: 23 bytes\n"
        "      1: 150 (varint)\n"
        "      2: \"hello\"\n"
        "      3 {\n"
        "        1: 1 (varint)\n"
        "      }\n"
        "      4: 0x00000001 (fixed32)\n"
        "      5: bytes[2] 00ff\n");
}

static void test_two_messages_and_a_cut(void **state) {
  (void)state;
  static const char m[] = "\x00\x00\x00\x00\x02\x08\x01"
                          "\x00\x00\x00\x00\x09\x08";
  check(m, sizeof(m) - 1, 1,
        "    gRPC message 1: 2 bytes\n"
        "      1: 1 (varint)\n"
        "    gRPC message 2: 9 bytes (cut)\n"
        "    00000000: 08                                       .\n");
}

static void test_not_protobuf(void **state) {
  (void)state;
  static const char m[] = "\x00\x00\x00\x00\x02\x07\x07";
  flt_strbuf_t out;
  flt_strbuf_init(&out, 0);
  assert_int_equal(flt_con_render_grpc(&out, (const uint8_t *)m, sizeof(m) - 1, 0), 0);
  assert_non_null(strstr(out.data, "(not protobuf from byte 0)\n"));
  flt_strbuf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_two_messages_and_a_cut),
      cmocka_unit_test(test_not_protobuf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
