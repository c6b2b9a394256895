/* test_console_ws.c — one WebSocket message as the console shows it
 * (console_ws.c, console.h "WebSocket messages"), byte for byte: the line
 * per detail level, text and binary data at detail 3, control frames and
 * close codes, the --body-limit cut, and bytes that must not reach the
 * terminal raw. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "filters/console/console_internal.h"

static void expect(int detail, flt_dir_t dir, int opcode, const char *data, size_t len,
                   size_t limit, const char *want) {
  flt_con_ws_t m = {"127.0.0.1:5000", "https://example.test/chat", dir, opcode,
                    (const uint8_t *)data, len, limit, detail, 0};
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  assert_int_equal(flt_con_render_ws(&b, &m), 0);
  assert_string_equal(b.data, want);
  flt_strbuf_free(&b);
}

#define LINE "127.0.0.1:5000 \xe2\x87\x84 ws https://example.test/chat "

static void test_ws_text_and_binary(void **state) {
  (void)state;
  expect(2, FLT_DIR_REQUEST, FLT_WS_TEXT, "hello", 5, 4096, LINE "> text 5 B\n");
  expect(3, FLT_DIR_RESPONSE, FLT_WS_TEXT, "hello\nworld", 11, 4096,
         LINE "< text 11 B\n    hello\n    world\n");
  expect(3, FLT_DIR_REQUEST, FLT_WS_BINARY, "\x00\x01\x41", 3, 4096,
         LINE "> binary 3 B\n    00000000: 0001 41                                  ..A\n");
  /* Text that is not clean UTF-8 is shown as a hexdump. */
  expect(3, FLT_DIR_REQUEST, FLT_WS_TEXT, "\x1b[2J", 4, 4096,
         LINE "> text 4 B\n    00000000: 1b5b 324a                                .[2J\n");
  expect(3, FLT_DIR_REQUEST, FLT_WS_TEXT, "", 0, 4096, LINE "> text 0 B\n");
}

static void test_ws_cut_at_the_limit(void **state) {
  (void)state;
  expect(3, FLT_DIR_REQUEST, FLT_WS_TEXT, "abcdefgh", 8, 3, LINE "> text 8 B\n    abc\n"
         "    \xe2\x80\xa6 message cut at 3 of 8 bytes (--body-limit)\n");
}

static void test_ws_control_frames(void **state) {
  (void)state;
  expect(3, FLT_DIR_RESPONSE, FLT_WS_CLOSE, "\x03\xe8" "bye", 5, 4096, LINE "< close 1000 bye\n");
  expect(3, FLT_DIR_REQUEST, FLT_WS_CLOSE, "", 0, 4096, LINE "> close\n");
  expect(3, FLT_DIR_REQUEST, FLT_WS_CLOSE, "\x0f\xa1\x1b]0;x", 7, 4096,
         LINE "> close 4001 \\x1b]0;x\n");
  expect(3, FLT_DIR_REQUEST, FLT_WS_PING, "ping", 4, 4096, LINE "> ping 4 B\n");
  expect(3, FLT_DIR_RESPONSE, FLT_WS_PONG, "", 0, 4096, LINE "< pong 0 B\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ws_text_and_binary),
      cmocka_unit_test(test_ws_cut_at_the_limit),
      cmocka_unit_test(test_ws_control_frames),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
