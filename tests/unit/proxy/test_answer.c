/* Unit tests of proxy/answer_local.c (--map-local: the rule's split, the
 * content types, a request path resolved below a directory, traversal
 * refused) and proxy/answer_serve.c (--serve-from: a HAR loaded and
 * indexed, responses cycled in order, hop-by-hop fields and a decoded
 * body's Content-Encoding dropped, url+body keys). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/answer_local.h"
#include "proxy/answer_serve.h"

static char base[64];

static void put(const char *rel, const char *text) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", base, rel);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  char path[PATH_MAX];
  (void)state;
  snprintf(base, sizeof(base), "/tmp/test_answer.XXXXXX");
  assert_non_null(mkdtemp(base));
  snprintf(path, sizeof(path), "%s/site", base);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/site/d", base);
  assert_int_equal(mkdir(path, 0700), 0);
  put("secret", "SECRET");
  put("site/index.html", "home");
  put("site/d/index.html", "d home");
  put("site/a b.json", "{}");
  snprintf(path, sizeof(path), "%s/site/out", base);
  assert_int_equal(symlink("../secret", path), 0);
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_rule_split(void **state) {
  char spec[PATH_MAX], err[512];
  px_map_local_t m;
  (void)state;
  /* The expression holds a colon of its own: the split is where a path follows. */
  snprintf(spec, sizeof(spec), "~h 'x: 1' & ~d a.test:%s/site", base);
  assert_int_equal(px_map_local_parse(spec, &m, err, sizeof(err)), 0);
  assert_true(m.is_dir);
  assert_non_null(strstr(m.root, "/site"));
  px_map_local_free(&m);
  snprintf(spec, sizeof(spec), "~u /x:%s/site/index.html", base);
  assert_int_equal(px_map_local_parse(spec, &m, err, sizeof(err)), 0);
  assert_false(m.is_dir);
  px_map_local_free(&m);
  assert_int_equal(px_map_local_parse("~d a.test:/no/such/dir", &m, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "no existing file or directory"));
  snprintf(spec, sizeof(spec), "~nope x:%s/site", base);
  assert_int_equal(px_map_local_parse(spec, &m, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "does not compile"));
}

static void test_types(void **state) {
  (void)state;
  assert_string_equal(px_map_local_type("/a/b.HTML"), "text/html; charset=utf-8");
  assert_string_equal(px_map_local_type("x.woff2"), "font/woff2");
  assert_string_equal(px_map_local_type("x.wasm"), "application/wasm");
  assert_string_equal(px_map_local_type("dir.d/noext"), "application/octet-stream");
  assert_string_equal(px_map_local_type("x."), "application/octet-stream");
}

static int resolve(const char *url, px_local_file_t *out) {
  char spec[PATH_MAX], err[512];
  px_map_local_t m;
  snprintf(spec, sizeof(spec), "~all:%s/site", base);
  assert_int_equal(px_map_local_parse(spec, &m, err, sizeof(err)), 0);
  px_map_local_resolve(&m, url, out);
  px_map_local_free(&m);
  if (out->fd >= 0) close(out->fd);
  return out->status;
}

static void test_resolve(void **state) {
  px_local_file_t f;
  (void)state;
  assert_int_equal(resolve("http://h/", &f), 200);
  assert_non_null(strstr(f.path, "/site/index.html"));
  assert_int_equal(f.size, 4);
  assert_int_equal(resolve("https://h:8443/d?q=1", &f), 200);
  assert_non_null(strstr(f.path, "/site/d/index.html"));
  assert_int_equal(resolve("http://h/a%20b.json#frag", &f), 200);
  assert_string_equal(f.type, "application/json");
  assert_int_equal(resolve("http://h/missing", &f), 404);
  assert_string_equal(f.why, "no such file");
  static const char *const refused[] = {
      "http://h/../secret", "http://h/d/../../secret", "http://h/%2e%2e/secret",
      "http://h/%2E%2e/secret", "http://h/d%2f..%2f..%2fsecret", "http://h/..%5csecret",
      "http://h/..\\secret", "http://h/index.html%00", "http://h/out", "http://h/%zz",
      "http://h/..", "http://h/d/.."};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
    assert_int_equal(resolve(refused[i], &f), 403);
  assert_int_equal(resolve("http://h/out", &f), 403);
  assert_non_null(strstr(f.why, "outside the directory"));
}

static const char har[] =
    "{\"log\": {\"version\": \"1.2\", \"entries\": ["
    "{\"request\": {\"method\": \"GET\", \"url\": \"http://a.test/n\", \"headers\": []},"
    " \"response\": {\"status\": 200, \"statusText\": \"OK\", \"headers\": ["
    "  {\"name\": \"Content-Encoding\", \"value\": \"gzip\"},"
    "  {\"name\": \"Transfer-Encoding\", \"value\": \"chunked\"},"
    "  {\"name\": \"Connection\", \"value\": \"keep-alive\"},"
    "  {\"name\": \"X-Kept\", \"value\": \"yes\"}],"
    "  \"content\": {\"size\": 3, \"mimeType\": \"text/plain\", \"text\": \"one\"}}},"
    "{\"request\": {\"method\": \"GET\", \"url\": \"http://a.test/n\", \"headers\": []},"
    " \"response\": {\"status\": 201, \"statusText\": \"Created\", \"headers\": [],"
    "  \"content\": {\"size\": 3, \"mimeType\": \"text/plain\", \"text\": \"two\"}}},"
    "{\"request\": {\"method\": \"POST\", \"url\": \"http://a.test/p\", \"headers\": [],"
    "  \"postData\": {\"mimeType\": \"text/plain\", \"text\": \"body-a\"}},"
    " \"response\": {\"status\": 200, \"statusText\": \"OK\", \"headers\": [],"
    "  \"content\": {\"size\": 1, \"mimeType\": \"text/plain\", \"text\": \"A\"}}}"
    "]}}";

static px_serve_t *load(int match_body) {
  char path[PATH_MAX], err[512];
  put("rec.har", har);
  snprintf(path, sizeof(path), "%s/rec.har", base);
  px_serve_t *sv = px_serve_load(path, match_body, err, sizeof(err));
  if (sv == NULL) fail_msg("%s", err);
  return sv;
}

static void test_serve_cycles(void **state) {
  unsigned nth, of;
  (void)state;
  px_serve_t *sv = load(0);
  assert_int_equal(px_serve_count(sv), 3);
  assert_true(px_serve_has(sv, "GET", "http://a.test/n"));
  assert_false(px_serve_has(sv, "HEAD", "http://a.test/n"));
  const px_served_t *r = px_serve_pick(sv, "GET", "http://a.test/n", 0, &nth, &of);
  assert_non_null(r);
  assert_int_equal(r->status, 200);
  assert_int_equal(nth, 1);
  assert_int_equal(of, 2);
  assert_memory_equal(r->body, "one", 3);
  /* Only X-Kept is left: hop-by-hop fields go, and the decoded body's
   * Content-Encoding. */
  assert_int_equal(r->n_headers, 1);
  assert_memory_equal(r->headers[0].name, "X-Kept", 6);
  assert_true(r->decoded);
  r = px_serve_pick(sv, "GET", "http://a.test/n", 0, &nth, &of);
  assert_int_equal(r->status, 201);
  assert_string_equal(r->reason, "Created");
  assert_int_equal(nth, 2);
  r = px_serve_pick(sv, "GET", "http://a.test/n", 0, &nth, &of);
  assert_int_equal(r->status, 200);
  assert_null(px_serve_pick(sv, "GET", "http://a.test/other", 0, &nth, &of));
  /* url: the body does not matter. */
  assert_non_null(px_serve_pick(sv, "POST", "http://a.test/p", 42, &nth, &of));
  px_serve_free(sv);
}

static void test_serve_url_body(void **state) {
  unsigned nth, of;
  (void)state;
  px_serve_t *sv = load(1);
  uint64_t a = px_serve_hash(PX_SERVE_HASH_INIT, "body-a", 6);
  uint64_t b = px_serve_hash(PX_SERVE_HASH_INIT, "body-b", 6);
  /* The hash runs over pieces as they come. */
  assert_true(px_serve_hash(px_serve_hash(PX_SERVE_HASH_INIT, "bod", 3), "y-a", 3) == a);
  assert_non_null(px_serve_pick(sv, "POST", "http://a.test/p", a, &nth, &of));
  assert_null(px_serve_pick(sv, "POST", "http://a.test/p", b, &nth, &of));
  assert_true(px_serve_has(sv, "POST", "http://a.test/p"));
  assert_non_null(px_serve_pick(sv, "GET", "http://a.test/n", PX_SERVE_HASH_INIT, &nth, &of));
  px_serve_free(sv);
}

static void test_serve_refuses(void **state) {
  char path[PATH_MAX], err[512];
  (void)state;
  put("empty.har", "{\"log\": {\"version\": \"1.2\", \"entries\": []}}");
  snprintf(path, sizeof(path), "%s/empty.har", base);
  assert_null(px_serve_load(path, 0, err, sizeof(err)));
  assert_non_null(strstr(err, "no recorded request has a response"));
  snprintf(path, sizeof(path), "%s/none.har", base);
  assert_null(px_serve_load(path, 0, err, sizeof(err)));
  assert_non_null(strstr(err, path));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule_split),     cmocka_unit_test(test_types),
      cmocka_unit_test(test_resolve),        cmocka_unit_test(test_serve_cycles),
      cmocka_unit_test(test_serve_url_body), cmocka_unit_test(test_serve_refuses)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
