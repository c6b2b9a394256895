/* Unit tests for flt_flow_action() and flt_flow_action_next() (filters/chain.c,
 * filters/filter.h): the tag, the "tag: detail" lines, and details of any
 * length kept whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/filter.h"

static void test_lines_and_tags(void **state) {
  (void)state;
  flt_flow_t f;
  memset(&f, 0, sizeof(f));
  const char *p = f.actions;
  size_t n = 0;
  assert_null(flt_flow_action_next(&p, &n)); /* none yet */
  flt_flow_action(&f, "map-remote", "%s -> %s", "https://a.test/x", "https://b.test/x");
  flt_flow_action(&f, "throttled", "response at %d KiB/s", 512);
  assert_string_equal(f.tags, "map-remote throttled");
  p = f.actions;
  const char *line = flt_flow_action_next(&p, &n);
  assert_non_null(line);
  assert_int_equal(n, strlen("map-remote: https://a.test/x -> https://b.test/x"));
  assert_memory_equal(line, "map-remote: https://a.test/x -> https://b.test/x", n);
  line = flt_flow_action_next(&p, &n);
  assert_non_null(line);
  assert_int_equal(n, strlen("throttled: response at 512 KiB/s"));
  assert_memory_equal(line, "throttled: response at 512 KiB/s", n);
  assert_null(flt_flow_action_next(&p, &n));
  free(f.actions);
}

static void test_long_detail_is_kept_whole(void **state) {
  (void)state;
  flt_flow_t f;
  memset(&f, 0, sizeof(f));
  char url[5000];
  memset(url, 'u', sizeof(url) - 1);
  url[sizeof(url) - 1] = '\0';
  flt_flow_action(&f, "map-remote", "%s -> x", url);
  const char *p = f.actions;
  size_t n = 0;
  const char *line = flt_flow_action_next(&p, &n);
  assert_non_null(line);
  assert_int_equal(n, strlen("map-remote: ") + strlen(url) + strlen(" -> x"));
  assert_memory_equal(line + n - 5, " -> x", 5);
  free(f.actions);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines_and_tags),
      cmocka_unit_test(test_long_detail_is_kept_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
