/* Unit tests of proxy/action_replace.c: the --replace argument split into
 * expression, regex, replacement and flags (separators, escapes, an
 * expression holding ':'), the errors it names, and the substitution. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/action_replace.h"

static char err[2048];

/* The result of applying the rule `arg` to `body` ("" when nothing matched). */
static const char *apply(const char *arg, const char *body, int *count) {
  static char out[1024];
  px_replace_t *r = px_replace_parse(arg, err, sizeof(err));
  assert_non_null(r);
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  *count = px_replace_apply(r, body, strlen(body), &b, err, sizeof(err));
  snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
  flt_strbuf_free(&b);
  px_replace_free(r);
  return out;
}

static void test_split_and_substitute(void **state) {
  (void)state;
  int n;
  assert_string_equal(apply("~d api:/\"admin\":false/\"admin\":true/", "{\"admin\":false}", &n),
                      "{\"admin\":true}");
  assert_int_equal(n, 1);
  /* Every match by default; flag 1: the first only. */
  assert_string_equal(apply("~all:/a/b/", "aXa", &n), "bXb");
  assert_int_equal(n, 2);
  assert_string_equal(apply("~all:/a/b/1", "aXa", &n), "bXa");
  assert_int_equal(n, 1);
  /* Groups by number and name; $$ is a dollar. */
  assert_string_equal(apply("~all:/(\\w+)@(?<host>\\w+)/${host}:$1$$/", "ann@example", &n),
                      "example:ann$");
  /* Another separator, and an escaped one in each part. */
  assert_string_equal(apply("~all:|a\\|b|c\\|d|", "xa|by", &n), "xc|dy");
  assert_string_equal(apply("~all:#/v1/#/v2/#", "GET /v1/x", &n), "GET /v2/x");
  /* Flags: caseless. */
  assert_string_equal(apply("~all:/ADMIN/user/i", "admin", &n), "user");
  /* No match: 0 and nothing written. */
  assert_string_equal(apply("~all:/zzz/y/", "abc", &n), "");
  assert_int_equal(n, 0);
}

static void test_expression_with_colons_and_side(void **state) {
  (void)state;
  /* The expression holds ':' itself: the first split leaving a valid one wins. */
  px_replace_t *r = px_replace_parse("~h 'x-a: b' & ~d api:/a/b/", err, sizeof(err));
  assert_non_null(r);
  assert_int_equal(r->response_side, 1);
  assert_string_equal(r->shown, "/a/");
  px_replace_free(r);
  r = px_replace_parse("~q & ~m POST:/a/b/", err, sizeof(err));
  assert_non_null(r);
  assert_int_equal(r->response_side, 0);
  px_replace_free(r);
}

static void test_errors_are_named(void **state) {
  (void)state;
  assert_null(px_replace_parse("~d x:/a(/b/", err, sizeof(err)));
  assert_non_null(strstr(err, "missing closing parenthesis"));
  assert_non_null(strstr(err, "offset 2"));
  assert_null(px_replace_parse("~d x:/a/$2/", err, sizeof(err)));
  assert_non_null(strstr(err, "no group 2"));
  assert_null(px_replace_parse("~d x:/a/b/q", err, sizeof(err)));
  assert_non_null(strstr(err, "unknown flag"));
  assert_null(px_replace_parse("~d x:/a/b", err, sizeof(err)));
  assert_non_null(strstr(err, "EXPR:/REGEX/REPLACEMENT/"));
  assert_null(px_replace_parse("/a/b/", err, sizeof(err)));
  assert_null(px_replace_parse("~d x://b/", err, sizeof(err)));
  assert_non_null(strstr(err, "empty"));
  assert_null(px_replace_parse("~d x:abcad", err, sizeof(err))); /* a letter is no separator */
  assert_null(px_replace_parse("~bs admin:/a/b/", err, sizeof(err)));
  assert_non_null(strstr(err, "body term"));
}

static void test_cap_bounds_the_result(void **state) {
  (void)state;
  px_replace_t *r = px_replace_parse("~all:/a/aaaa/", err, sizeof(err));
  assert_non_null(r);
  flt_strbuf_t b;
  flt_strbuf_init(&b, 10);
  assert_int_equal(px_replace_apply(r, "aaaa", 4, &b, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "--body-cap"));
  assert_int_equal(b.len, 0);
  flt_strbuf_free(&b);
  px_replace_free(r);
}

static void test_runaway_regex_is_stopped(void **state) {
  (void)state;
  /* Catastrophic backtracking: PCRE2's match limit ends it with a reason. */
  px_replace_t *r = px_replace_parse("~all:/(a+)+$/b/", err, sizeof(err));
  assert_non_null(r);
  char body[64];
  memset(body, 'a', sizeof(body) - 2);
  body[sizeof(body) - 2] = '!';
  body[sizeof(body) - 1] = '\0';
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  assert_int_equal(px_replace_apply(r, body, strlen(body), &b, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "limit"));
  flt_strbuf_free(&b);
  px_replace_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_and_substitute),
      cmocka_unit_test(test_expression_with_colons_and_side),
      cmocka_unit_test(test_errors_are_named),
      cmocka_unit_test(test_cap_bounds_the_result),
      cmocka_unit_test(test_runaway_regex_is_stopped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
