/* fuzz_map_local.c — libFuzzer target for the --map-local path resolution
 * (proxy/answer_local.h): a request URL, untrusted, resolved below a
 * directory that sits next to a secret file and holds symbolic links to it.
 *
 * The input is the URL's path (NUL bytes included: the codec stops at
 * none of them here). Checks:
 *   - 200 only for a regular file whose real path is inside the directory,
 *     and never for the secret (its content is never readable through fd);
 *   - 403 and 404 come with no open file and a reason;
 *   - the status is one of 200, 403, 404.
 * The directory is made once, under $TMPDIR. Corpus: tests/fuzz/corpus/map_local/. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/answer_local.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_map_local_t rule;
static char root[PATH_MAX];
static char dir[64];

/* The directory goes with the process. */
static void cleanup(void) {
  static const char *const made[] = {"site/out", "site/up", "site/sub/a.txt", "site/sub",
                                     "site/index.html", "site", "secret"};
  char path[PATH_MAX];
  for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
    if (unlink(path) != 0) rmdir(path);
  }
  rmdir(dir);
  px_map_local_free(&rule);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) abort();
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  char base[] = "/tmp/fuzz_map_local.XXXXXX", path[PATH_MAX + 64], err[256];
  if (mkdtemp(base) == NULL) abort();
  snprintf(dir, sizeof(dir), "%s", base);
  atexit(cleanup);
  snprintf(root, sizeof(root), "%s/site", base);
  if (mkdir(root, 0700) != 0) abort();
  snprintf(path, sizeof(path), "%s/secret", base);
  put(path, "SECRET");
  snprintf(path, sizeof(path), "%s/index.html", root);
  put(path, "index");
  snprintf(path, sizeof(path), "%s/sub", root);
  mkdir(path, 0700);
  snprintf(path, sizeof(path), "%s/sub/a.txt", root);
  put(path, "a");
  snprintf(path, sizeof(path), "%s/out", root);
  if (symlink("../secret", path) != 0) abort();
  snprintf(path, sizeof(path), "%s/up", root);
  if (symlink("..", path) != 0) abort();
  char spec[PATH_MAX + 8];
  snprintf(spec, sizeof(spec), "~all:%s", root);
  if (px_map_local_parse(spec, &rule, err, sizeof(err)) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  char url[4200];
  if (!ready) {
    setup();
    ready = 1;
  }
  if (size > 4000) return 0;
  memcpy(url, "http://h/", 9);
  memcpy(url + 9, data, size);
  url[9 + size] = '\0';
  px_local_file_t out;
  px_map_local_resolve(&rule, url, &out);
  if (out.status == 200) {
    char buf[16] = "";
    size_t n = strlen(rule.root);
    if (out.fd < 0 || strncmp(out.path, rule.root, n) != 0 || out.path[n] != '/') abort();
    ssize_t got = read(out.fd, buf, sizeof(buf) - 1);
    if (got > 0 && strncmp(buf, "SECRET", 6) == 0) abort();
    close(out.fd);
  } else if (out.status == 403 || out.status == 404) {
    if (out.fd >= 0 || out.why[0] == '\0') abort();
  } else {
    abort();
  }
  return 0;
}
