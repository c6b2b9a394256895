/* test_log.c — the diagnostics log (filters/util/log.c): escaping of control
 * bytes and invalid UTF-8, and the repeat limiter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/util/log.h"

/* ---- escaping ----------------------------------------------------------- */

/* CHECK_ESCAPE("in", "want"): the length of "in" counts its NUL bytes. */
#define CHECK_ESCAPE(in, want) check_escape(in, sizeof(in) - 1, want)

static void check_escape(const char *in, size_t len, const char *want) {
  char out[256];
  size_t n = flt_log_escape(out, sizeof(out), in, len);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
}

static void test_escape_controls(void **state) {
  (void)state;
  CHECK_ESCAPE("evil\n\x1b[31mX", "evil\\n\\x1b[31mX");
  CHECK_ESCAPE("a\rb\tc\x7f" "d", "a\\rb\\tc\\x7fd");
  CHECK_ESCAPE("nul\0end", "nul\\x00end");
  CHECK_ESCAPE("back\\slash", "back\\slash"); /* printable: kept */
}

static void test_escape_utf8(void **state) {
  (void)state;
  /* Valid UTF-8 is kept: é, €, U+1F600. */
  CHECK_ESCAPE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
               "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* C1 controls (U+0085, U+009B CSI) are escaped byte by byte. */
  CHECK_ESCAPE("a\xc2\x85" "b\xc2\x9b" "c", "a\\xc2\\x85b\\xc2\\x9bc");
  /* Raw bytes that are not UTF-8: lone 0xff, an overlong, a cut sequence. */
  CHECK_ESCAPE("\xff\xfe", "\\xff\\xfe");
  CHECK_ESCAPE("\xc0\xaf", "\\xc0\\xaf");
  CHECK_ESCAPE("x\xe2\x82", "x\\xe2\\x82");
}

static void test_escape_never_overflows(void **state) {
  char out[8];
  (void)state;
  /* "ab" + "\n" fits (4 bytes), the next escape (4 bytes) would not. */
  size_t n = flt_log_escape(out, sizeof(out), "ab\n\x1b", 4);
  assert_string_equal(out, "ab\\n");
  assert_int_equal(n, 4);
  n = flt_log_escape(out, 1, "abc", 3);
  assert_int_equal(n, 0);
  assert_string_equal(out, "");
}

/* ---- lines on stderr ------------------------------------------------------ */

static int64_t fake_now;
static int64_t fake_clock(void) { return fake_now; }

/* Runs `fn` with stderr sent to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void)) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
  fn();
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  off_t len = lseek(fileno(tmp), 0, SEEK_END);
  assert_true(len >= 0);
  char *buf = calloc(1, (size_t)len + 1);
  assert_non_null(buf);
  assert_int_equal(pread(fileno(tmp), buf, (size_t)len, 0), len);
  fclose(tmp);
  return buf;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void log_injection(void) {
  flt_log_warn("upstream %s: cannot resolve", "evil\n\x1b[31mX\xff");
  flt_log_flush();
}

static void test_log_line_is_escaped(void **state) {
  (void)state;
  char *out = capture_stderr(log_injection);
  assert_string_equal(out, "tlspeek: warning: upstream evil\\n\\x1b[31mX\\xff: cannot resolve\n");
  free(out);
}

static void log_flood(void) {
  fake_now = 1000000;
  for (int i = 0; i < 10000; i++) {
    flt_log_warn("accept paused: %s", "too many open files");
    if (i % 100 == 0) flt_log_info("other line %d", i / 1000); /* 10 distinct texts */
    fake_now += 1; /* 10,000 repeats over 10 s */
  }
  fake_now += 2 * FLT_LOG_REPEAT_WINDOW_MS;
  flt_log_info("after the flood");
  flt_log_flush();
}

static void test_repeats_are_rate_limited(void **state) {
  (void)state;
  flt_log_set_clock(fake_clock);
  char *out = capture_stderr(log_flood);
  flt_log_set_clock(NULL);

  /* Per second and text: one line, then one "suppressed" line. */
  int accept_lines = 0, suppressed_lines = 0;
  unsigned long suppressed_total = 0;
  for (const char *p = out; (p = strstr(p, "tlspeek: warning: ")) != NULL; p++) {
    const char *msg = p + strlen("tlspeek: warning: ");
    unsigned long n;
    if (strncmp(msg, "accept paused: too many open files\n", 35) == 0) accept_lines++;
    if (sscanf(msg, "suppressed %lu repeats of: accept paused: too many open files", &n) == 1) {
      suppressed_lines++;
      suppressed_total += n;
    }
  }
  assert_int_equal(accept_lines, 10);
  assert_int_equal(suppressed_lines, 10);
  assert_int_equal(accept_lines + suppressed_total, 10000);
  /* The ten distinct info texts each appear once; their repeats are summed. */
  for (int i = 0; i < 10; i++) {
    char want[64];
    snprintf(want, sizeof(want), "tlspeek: info: other line %d\n", i);
    assert_non_null(strstr(out, want));
  }
  assert_non_null(strstr(out, "tlspeek: info: after the flood\n"));
  assert_true(count_lines(out) < 60);
  free(out);
}

static void log_distinct(void) {
  fake_now = 5000000;
  for (int i = 0; i < 200; i++) flt_log_warn("session %d: closed", i);
  flt_log_flush();
}

static void test_distinct_lines_pass(void **state) {
  (void)state;
  flt_log_set_clock(fake_clock);
  char *out = capture_stderr(log_distinct);
  flt_log_set_clock(NULL);
  assert_int_equal(count_lines(out), 200);
  assert_null(strstr(out, "suppressed"));
  free(out);
}

static void log_distinct_flood(void) {
  fake_now = 9000000;
  for (int i = 0; i < 5000; i++) flt_log_warn("session %d: 127.0.0.1:%d: malformed", i, i);
  fake_now += FLT_LOG_REPEAT_WINDOW_MS;
  flt_log_info("after the flood");
  flt_log_flush();
}

/* Lines that each differ (a session number) are bounded too: the budget
 * per window, then one line with the count of the others. */
static void test_distinct_flood_is_bounded(void **state) {
  (void)state;
  flt_log_set_clock(fake_clock);
  char *out = capture_stderr(log_distinct_flood);
  flt_log_set_clock(NULL);
  assert_int_equal(count_lines(out), FLT_LOG_BURST_LINES + 2);
  char want[160];
  snprintf(want, sizeof(want),
           "tlspeek: warning: %d more lines were dropped in the last 1.0 s: over %d lines per "
           "1.0 s\ntlspeek: info: after the flood\n",
           5000 - FLT_LOG_BURST_LINES, FLT_LOG_BURST_LINES);
  assert_non_null(strstr(out, want));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escape_controls),
      cmocka_unit_test(test_escape_utf8),
      cmocka_unit_test(test_escape_never_overflows),
      cmocka_unit_test(test_log_line_is_escaped),
      cmocka_unit_test(test_repeats_are_rate_limited),
      cmocka_unit_test(test_distinct_lines_pass),
      cmocka_unit_test(test_distinct_flood_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
