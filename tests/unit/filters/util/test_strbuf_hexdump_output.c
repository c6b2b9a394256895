/* test_strbuf_hexdump_output.c — strbuf, hexdump and output (filters/util/). Decoding is in
 * test_decode.c, the console view in test_console.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/util/hexdump.h"
#include "filters/util/output.h"
#include "filters/util/strbuf.h"

/* ---- strbuf ----------------------------------------------------------- */

static void test_strbuf_append_grows(void **state) {
  flt_strbuf_t b;
  (void)state;

  flt_strbuf_init(&b, 0);
  assert_null(b.data);
  for (int i = 0; i < 1000; i++) assert_int_equal(flt_strbuf_append(&b, "abc", 3), 0);
  assert_int_equal(b.len, 3000);
  assert_int_equal(b.data[3000], '\0');
  assert_false(b.truncated);
  assert_int_equal(flt_strbuf_appendf(&b, "%d-%s", 42, "x"), 0);
  assert_string_equal(b.data + 3000, "42-x");
  flt_strbuf_free(&b);
  assert_null(b.data);
}

static void test_strbuf_cap_cuts_append(void **state) {
  flt_strbuf_t b;
  (void)state;

  flt_strbuf_init(&b, 5);
  assert_int_equal(flt_strbuf_append(&b, "abc", 3), 0);
  assert_int_equal(flt_strbuf_append(&b, "defg", 4), -1);
  assert_true(b.truncated);
  assert_int_equal(b.len, 5);
  assert_string_equal(b.data, "abcde");
  assert_true(b.alloc <= 6); /* never allocates past cap + NUL */
  /* Full: nothing more fits, and the buffer stays intact. */
  assert_int_equal(flt_strbuf_append(&b, "z", 1), -1);
  assert_string_equal(b.data, "abcde");
  flt_strbuf_free(&b);
}

static void test_strbuf_cap_cuts_appendf(void **state) {
  flt_strbuf_t b;
  (void)state;

  flt_strbuf_init(&b, 8);
  assert_int_equal(flt_strbuf_appendf(&b, "%s", "12345"), 0);
  assert_int_equal(flt_strbuf_appendf(&b, "%s-%d", "abc", 99999), -1);
  assert_true(b.truncated);
  assert_int_equal(b.len, 8);
  assert_string_equal(b.data, "12345abc");
  flt_strbuf_free(&b);

  /* A long format into an empty buffer takes the grow path. */
  flt_strbuf_init(&b, 0);
  char big[3000];
  memset(big, 'q', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(flt_strbuf_appendf(&b, "<%s>", big), 0);
  assert_int_equal(b.len, sizeof(big) + 1);
  assert_int_equal(b.data[0], '<');
  assert_int_equal(b.data[b.len - 1], '>');
  flt_strbuf_free(&b);
}

static void test_strbuf_reset_and_detach(void **state) {
  flt_strbuf_t b;
  size_t len = 99;
  char *p;
  (void)state;

  flt_strbuf_init(&b, 4);
  flt_strbuf_append(&b, "hello", 5);
  assert_true(b.truncated);
  flt_strbuf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_false(b.truncated);
  assert_string_equal(b.data, "");
  flt_strbuf_append(&b, "hi", 2);
  p = flt_strbuf_detach(&b, &len);
  assert_string_equal(p, "hi");
  assert_int_equal(len, 2);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  free(p);

  /* Detaching an empty buffer yields an empty string, not NULL. */
  p = flt_strbuf_detach(&b, &len);
  assert_non_null(p);
  assert_string_equal(p, "");
  assert_int_equal(len, 0);
  free(p);
}

/* ---- hexdump ---------------------------------------------------------- */

/* The bytes the expected dumps below were made from: (i*7 + 0x1d) & 0xff,
 * dumped with `xxd` (vim 9.0). */
static void fill_pattern(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 7 + 0x1d) & 0xff);
}

static const char xxd_1[] =
    "00000000: 1d                                       .\n";
static const char xxd_15[] =
    "00000000: 1d24 2b32 3940 474e 555c 636a 7178 7f    .$+29@GNU\\cjqx.\n";
static const char xxd_16[] =
    "00000000: 1d24 2b32 3940 474e 555c 636a 7178 7f86  .$+29@GNU\\cjqx..\n";
static const char xxd_17[] =
    "00000000: 1d24 2b32 3940 474e 555c 636a 7178 7f86  .$+29@GNU\\cjqx..\n"
    "00000010: 8d                                       .\n";
static const char xxd_100[] =
    "00000000: 1d24 2b32 3940 474e 555c 636a 7178 7f86  .$+29@GNU\\cjqx..\n"
    "00000010: 8d94 9ba2 a9b0 b7be c5cc d3da e1e8 eff6  ................\n"
    "00000020: fd04 0b12 1920 272e 353c 434a 5158 5f66  ..... '.5<CJQX_f\n"
    "00000030: 6d74 7b82 8990 979e a5ac b3ba c1c8 cfd6  mt{.............\n"
    "00000040: dde4 ebf2 f900 070e 151c 232a 3138 3f46  ..........#*18?F\n"
    "00000050: 4d54 5b62 6970 777e 858c 939a a1a8 afb6  MT[bipw~........\n"
    "00000060: bdc4 cbd2                                ....\n";

static void check_hexdump(size_t n, const char *expected) {
  uint8_t data[128];
  flt_strbuf_t b;

  fill_pattern(data, n);
  flt_strbuf_init(&b, 0);
  assert_int_equal(flt_hexdump(&b, data, n, 0), 0);
  assert_string_equal(b.data ? b.data : "", expected);
  flt_strbuf_free(&b);
}

static void test_hexdump_matches_xxd_literals(void **state) {
  (void)state;
  check_hexdump(0, "");
  check_hexdump(1, xxd_1);
  check_hexdump(15, xxd_15);
  check_hexdump(16, xxd_16);
  check_hexdump(17, xxd_17);
  check_hexdump(100, xxd_100);
}

/* When xxd is installed, compare against it for every length up to 100. */
static void test_hexdump_matches_xxd_binary(void **state) {
  char path[] = "/tmp/tlspeek-hexdump-XXXXXX";
  uint8_t data[100];
  (void)state;

  if (access("/usr/bin/xxd", X_OK) != 0) skip();
  fill_pattern(data, sizeof(data));
  for (size_t n = 0; n <= sizeof(data); n++) {
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);

    char cmd[128], got[4096];
    snprintf(cmd, sizeof(cmd), "/usr/bin/xxd %s", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t glen = fread(got, 1, sizeof(got) - 1, p);
    got[glen] = '\0';
    pclose(p);
    unlink(path);
    strcpy(path + strlen(path) - 6, "XXXXXX");

    flt_strbuf_t b;
    flt_strbuf_init(&b, 0);
    flt_hexdump(&b, data, n, 0);
    assert_string_equal(b.data ? b.data : "", got);
    flt_strbuf_free(&b);
  }
}

static void test_hexdump_offset_and_prefix(void **state) {
  const uint8_t data[] = "AB\x00\x7f~ ";
  flt_strbuf_t b;
  (void)state;

  flt_strbuf_init(&b, 0);
  assert_int_equal(flt_hexdump(&b, data, 6, 0x123456789ull), 0);
  /* Offsets past 32 bits grow, as `xxd -o` prints them. */
  assert_string_equal(b.data,
                      "123456789: 4142 007f 7e20                           "
                      "AB..~ \n");
  flt_strbuf_reset(&b);
  assert_int_equal(flt_hexdump_prefixed(&b, "    ", data, 2, 16), 0);
  assert_string_equal(b.data,
                      "    00000010: 4142                                     AB\n");
  flt_strbuf_free(&b);
}

static void test_hexdump_reports_cap(void **state) {
  uint8_t data[64];
  flt_strbuf_t b;
  (void)state;

  fill_pattern(data, sizeof(data));
  flt_strbuf_init(&b, 100);
  assert_int_equal(flt_hexdump(&b, data, sizeof(data), 0), -1);
  assert_true(b.truncated);
  assert_int_equal(b.len, 100);
  flt_strbuf_free(&b);
}

/* ---- output ----------------------------------------------------------- */

static char *read_all(int fd, size_t *len) {
  static char buf[1 << 20];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  assert_true(n >= 0);
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

static void test_output_writes_in_order(void **state) {
  FILE *tmp = tmpfile();
  int fd = fileno(tmp);
  flt_output_t *o;
  size_t len;
  (void)state;

  o = flt_output_new(fd, "test", 0, 0);
  assert_non_null(o);
  flt_output_write(o, "one\n", 4);
  char *owned = strdup("two\n");
  flt_output_write_owned(o, owned, 4);
  for (int i = 0; i < 200; i++) flt_output_write(o, "x", 1);
  flt_output_write(o, "\n", 1);
  flt_output_flush(o);
  char *got = read_all(fd, &len);
  assert_int_equal(len, 8 + 200 + 1);
  assert_memory_equal(got, "one\ntwo\nxxx", 11);
  assert_int_equal(flt_output_dropped(o), 0);
  flt_output_free(o);
  fclose(tmp);
}

static void test_output_drops_when_queue_full(void **state) {
  int p[2];
  flt_output_t *o;
  char block[1000];
  (void)state;

  /* Nobody reads the pipe until the end, so the writer stalls once the
   * pipe is full and the small queue fills up behind it. */
  assert_int_equal(pipe(p), 0);
  o = flt_output_new(p[1], "pipe", 1, 4096);
  assert_non_null(o);
  memset(block, 'b', sizeof(block));
  for (int i = 0; i < 300; i++) flt_output_write(o, block, sizeof(block));
  assert_true(flt_output_dropped(o) > 0);

  /* Drain the pipe so the writer can finish, then stop it. */
  close(p[0]);
  flt_output_free(o); /* EPIPE from here on: reported, not fatal */
}

static void test_output_write_error_is_counted(void **state) {
  int p[2];
  flt_output_t *o;
  (void)state;

  assert_int_equal(pipe(p), 0);
  close(p[0]); /* writes fail with EPIPE (SIGPIPE is blocked) */
  o = flt_output_new(p[1], "closed pipe", 1, 0);
  flt_output_write(o, "a", 1);
  flt_output_flush(o);
  flt_output_write(o, "b", 1);
  flt_output_flush(o);
  assert_int_equal(flt_output_dropped(o), 2);
  flt_output_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strbuf_append_grows),
      cmocka_unit_test(test_strbuf_cap_cuts_append),
      cmocka_unit_test(test_strbuf_cap_cuts_appendf),
      cmocka_unit_test(test_strbuf_reset_and_detach),
      cmocka_unit_test(test_hexdump_matches_xxd_literals),
      cmocka_unit_test(test_hexdump_matches_xxd_binary),
      cmocka_unit_test(test_hexdump_offset_and_prefix),
      cmocka_unit_test(test_hexdump_reports_cap),
      cmocka_unit_test(test_output_writes_in_order),
      cmocka_unit_test(test_output_drops_when_queue_full),
      cmocka_unit_test(test_output_write_error_is_counted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
