/* Unit tests for `tlspeek run`'s command (proxy/runcmd.c): the environment
 * it gets, the private directory with the bundle, and the exit status. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "proxy/runcmd.h"

static char ca_path[64];

/* A writable word for an argv (string literals are const here). */
#define W(s) ((char[]){s})

static int setup(void **state) {
  (void)state;
  snprintf(ca_path, sizeof(ca_path), "/tmp/tlspeek-unit-ca-XXXXXX");
  int fd = mkstemp(ca_path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "TLSPEEK-TEST-CA\n", 16), 16);
  close(fd);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(ca_path);
  return 0;
}

/* The value of NAME in env, or NULL; fails when NAME is there twice. */
static const char *env_get(char *const *env, const char *name) {
  const char *found = NULL;
  size_t n = strlen(name);
  for (size_t i = 0; env[i]; i++)
    if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') {
      assert_null(found);
      found = env[i] + n + 1;
    }
  return found;
}

static void test_environment(void **state) {
  (void)state;
  char *argv[] = {W("true"), NULL};
  char err[600], want[4200];
  px_runcmd_t *rc = NULL;
  px_runcmd_proxy_t px = {.port = 4242, .proxyauth = "a b:c@d:e", .ca_cert = ca_path};
  setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt", 1);
  setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
  setenv("NO_PROXY", "*", 1);
  setenv("no_proxy", "*", 1);
  setenv("NODE_OPTIONS", "--no-warnings", 1);
  unsetenv("JAVA_TOOL_OPTIONS");
  setenv("TLSPEEK_UNIT_KEEP", "kept", 1);
  assert_int_equal(px_runcmd_prepare(&rc, argv, &px, err, sizeof(err)), 0);
  char *const *env = px_runcmd_env(rc);
  const char *bundle = px_runcmd_bundle(rc);

  assert_string_equal(env_get(env, "TLSPEEK_UNIT_KEEP"), "kept");
  assert_null(env_get(env, "NO_PROXY"));
  assert_null(env_get(env, "no_proxy"));
  const char *url = "http://a%20b:c%40d%3Ae@127.0.0.1:4242";
  assert_string_equal(env_get(env, "HTTPS_PROXY"), url);
  assert_string_equal(env_get(env, "http_proxy"), url);
  assert_string_equal(env_get(env, "ALL_PROXY"), url);
  assert_string_equal(env_get(env, "SSL_CERT_FILE"), bundle);
  assert_string_equal(env_get(env, "CURL_CA_BUNDLE"), bundle);
  assert_string_equal(env_get(env, "NODE_EXTRA_CA_CERTS"), bundle);
  assert_string_equal(env_get(env, "REQUESTS_CA_BUNDLE"), bundle);
  assert_string_equal(env_get(env, "GIT_SSL_CAINFO"), bundle);
  assert_non_null(strstr(env_get(env, "JAVA_TOOL_OPTIONS"), "-Dhttps.proxyPort=4242"));
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s", bundle);
  *strrchr(dir, '/') = '\0';
  snprintf(want, sizeof(want), "--no-warnings --require \"%s/node-preload.js\"", dir);
  assert_string_equal(env_get(env, "NODE_OPTIONS"), want);

  /* 0600 files in a 0700 directory; the bundle ends with tlspeek's CA. */
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(stat(bundle, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_true(st.st_size > 16);
  FILE *f = fopen(bundle, "rb");
  char tail[18] = "";
  fseek(f, -17, SEEK_END);
  assert_int_equal(fread(tail, 1, 17, f), 17);
  fclose(f);
  assert_string_equal(tail, "TLSPEEK-TEST-CA\n\n");

  px_runcmd_free(rc); /* never spawned: freed at once */
  assert_int_not_equal(stat(dir, &st), 0);
}

static int exit_status = -1;
static void on_exit_status(void *arg, int status) {
  (void)arg;
  exit_status = status;
}

/* Spawns argv, runs the loop until it exits; the spawn result. */
static int run_argv(char **argv, char *err, size_t errlen) {
  uv_loop_t loop;
  px_runcmd_t *rc = NULL;
  px_runcmd_proxy_t px = {.port = 1, .ca_cert = ca_path};
  exit_status = -1;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(px_runcmd_prepare(&rc, argv, &px, err, errlen), 0);
  int r = px_runcmd_spawn(rc, &loop, on_exit_status, NULL, err, errlen);
  if (r == 0) uv_run(&loop, UV_RUN_DEFAULT);
  px_runcmd_free(rc);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return r;
}

static void test_exit_status(void **state) {
  (void)state;
  char err[600];
  char *exit5[] = {W("sh"), W("-c"), W("exit 5"), NULL};
  char *killed[] = {W("sh"), W("-c"), W("kill -KILL $$"), NULL};
  char *missing[] = {W("tlspeek-unit-no-such-command"), NULL};
  assert_int_equal(run_argv(exit5, err, sizeof(err)), 0);
  assert_int_equal(exit_status, 5);
  assert_int_equal(run_argv(killed, err, sizeof(err)), 0);
  assert_int_equal(exit_status, 128 + 9);
  assert_int_equal(run_argv(missing, err, sizeof(err)), 127);
  assert_string_equal(err, "cannot run 'tlspeek-unit-no-such-command': no such file or "
                           "directory (not found in PATH)");
  assert_int_equal(exit_status, -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_environment),
      cmocka_unit_test(test_exit_status),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
