/* test_trout.c — writing a transcript file (filters/transcript/trout.c,
 * tr_out_t): after every tr_out_write the file holds exactly what was
 * written, whether the bytes went through O_DIRECT, the page cache or
 * both; appends of any size, a rewritten tail (as HAR's closing brackets),
 * a file that already had bytes in it, O_DIRECT turned off, and a file
 * system where O_DIRECT may not be available (/dev/shm). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/transcript/transcript_internal.h"
#include "tests/unit/filters/transcript/fixtures/transcriptfixtures.h"

#define MODEL_MAX ((size_t)24 << 20)

typedef struct {
  char path[256];
  int fd;
  tr_out_t out;
  unsigned char *model; /* what the file must hold */
  size_t size;
  uint32_t rnd;
} file_t;

static uint32_t next_rnd(file_t *f) {
  f->rnd = f->rnd * 1103515245u + 12345u;
  return f->rnd >> 8;
}

/* Opens a file holding `prefix` bytes already (written the ordinary way). */
static void file_open(file_t *f, const char *dir, const char *name, size_t prefix, int direct) {
  memset(f, 0, sizeof(*f));
  snprintf(f->path, sizeof(f->path), "%s/%s", dir, name);
  f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(f->fd >= 0);
  f->model = malloc(MODEL_MAX);
  assert_non_null(f->model);
  f->rnd = (uint32_t)prefix * 2654435761u + 7;
  for (size_t i = 0; i < prefix; i++)
    f->model[i] = (unsigned char)next_rnd(f);
  assert_int_equal(tr_write_all(f->fd, f->model, prefix), 0);
  f->size = prefix;
  tr_out_init(&f->out, f->fd, (off_t)prefix);
  if (!direct) tr_out_buffered(&f->out);
}

static void file_check(file_t *f) {
  size_t len = 0;
  char *got = slurp(f->path, &len);

  assert_int_equal(len, f->size);
  assert_memory_equal(got, f->model, f->size);
  free(got);
}

static void file_close(file_t *f) {
  tr_out_free(&f->out);
  close(f->fd);
  unlink(f->path);
  free(f->model);
}

/* Writes `n` new bytes at `off` (as pieces of a few iovecs), of which the
 * last `tail` bytes will be rewritten by the next write. */
static void file_write(file_t *f, size_t off, size_t n, size_t tail) {
  struct iovec iov[4];
  size_t left = n, at = off;
  int k = 0;

  assert_true(off + n <= MODEL_MAX);
  for (size_t i = 0; i < n; i++)
    f->model[off + i] = (unsigned char)next_rnd(f);
  while (left > 0 && k < 4) {
    size_t piece = k == 3 ? left : (left * (next_rnd(f) % 100)) / 100;
    iov[k].iov_base = f->model + at;
    iov[k].iov_len = piece;
    at += piece;
    left -= piece;
    k++;
  }
  assert_int_equal(tr_out_write(&f->out, iov, k, (off_t)off, (off_t)(off + n - tail)), 0);
  f->size = off + n;
  file_check(f);
}

/* Appends of sizes from a byte to more than the staging buffer. */
static void run_appends(const char *dir, size_t prefix, int direct) {
  static const size_t sizes[] = {1, 4095, 4097, 70000, 3, 65536, 1 << 20, 100,
                                 (size_t)5 << 20, 12345, 8192, 200000};
  file_t f;

  file_open(&f, dir, "appends.bin", prefix, direct);
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
    file_write(&f, f.size, sizes[i], 0);
  if (direct && f.out.dfd >= 0) assert_true(f.out.direct_ok); /* it did go direct */
  file_close(&f);
}

/* HAR's pattern: each write replaces the previous tail (a few bytes) with
 * entries and a new tail. */
static void run_tail_rewrites(const char *dir, size_t prefix, int direct) {
  enum { TAIL = 5 };
  file_t f;

  file_open(&f, dir, "tail.bin", prefix, direct);
  file_write(&f, f.size, TAIL, TAIL);
  for (int i = 0; i < 60; i++) {
    size_t n = i % 7 == 6 ? (size_t)(next_rnd(&f) % (3u << 20)) : next_rnd(&f) % 90000;
    file_write(&f, f.size - TAIL, n + TAIL, TAIL);
  }
  file_close(&f);
}

static const char *shm_dir(void) {
  struct stat st;
  return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : NULL;
}

static void test_appends_direct(void **state) {
  const char *dir = tmpdir;
  (void)state;
  run_appends(dir, 0, 1);
  run_appends(dir, 24, 1);   /* a PCAP's file header */
  run_appends(dir, 5000, 1); /* past a block */
}

static void test_appends_buffered(void **state) {
  const char *dir = tmpdir;
  (void)state;
  run_appends(dir, 24, 0);
}

static void test_tail_rewrites(void **state) {
  const char *dir = tmpdir;
  (void)state;
  run_tail_rewrites(dir, 137, 1);
  run_tail_rewrites(dir, 4096, 1);
  run_tail_rewrites(dir, 137, 0);
}

/* tmpfs may refuse O_DIRECT (then the writes are ordinary) or take it:
 * either way the file is whole. */
static void test_tmpfs(void **state) {
  const char *dir = shm_dir();
  (void)state;
  if (dir == NULL) skip();
  run_appends(dir, 24, 1);
  run_tail_rewrites(dir, 137, 1);
}

/* A pipe (--jsonl /dev/stdout, a FIFO) is not a regular file: ordinary
 * writes at its position, whatever offsets the sink keeps count of. */
static void test_pipe_is_ordinary(void **state) {
  int p[2];
  tr_out_t o;
  char buf[8], abc[] = "abc", de[] = "de";
  struct iovec iov = {.iov_base = abc, .iov_len = 3};
  (void)state;

  assert_int_equal(pipe(p), 0);
  tr_out_init(&o, p[1], 0);
  assert_int_equal(o.dfd, -1);
  assert_int_equal(tr_out_write(&o, &iov, 1, 0, 3), 0);
  iov = (struct iovec){.iov_base = de, .iov_len = 2};
  assert_int_equal(tr_out_write(&o, &iov, 1, 3, 5), 0);
  assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
  assert_memory_equal(buf, "abcde", 5);
  tr_out_free(&o);
  close(p[0]);
  close(p[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_appends_direct),
      cmocka_unit_test(test_appends_buffered),
      cmocka_unit_test(test_tail_rewrites),
      cmocka_unit_test(test_tmpfs),
      cmocka_unit_test(test_pipe_is_ordinary),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
