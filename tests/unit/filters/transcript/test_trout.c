/* test_trout.c — writing a transcript file (filters/transcript/trout.c,
 * tr_out_t): after every tr_out_write the file holds exactly what was
 * written, whether the bytes went through O_DIRECT, the page cache or
 * both; appends of any size, a rewritten tail (as HAR's closing brackets),
 * a file that already had bytes in it, O_DIRECT turned off, tmpfs, a pipe;
 * every direct write starts at or past the end of the file (so it covers no
 * page the page cache holds); a refused first direct write, a short one and
 * a failing later one (through a stand-in for pwrite). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* The stand-in for pwrite on the O_DIRECT descriptor: checks that the write
 * starts at or past the end of the file, counts it, and fails or writes
 * short when told to. */
static struct {
  int calls, refuse_first, fail_after, err, short_every;
} dw;

static ssize_t fake_dpwrite(int fd, const void *buf, size_t n, off_t at) {
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_true(at >= st.st_size); /* nothing the page cache holds is covered */
  assert_int_equal(at % 4096, 0);
  assert_int_equal(n % 4096, 0);
  dw.calls++;
  if ((dw.refuse_first && dw.calls == 1) || (dw.fail_after && dw.calls > dw.fail_after)) {
    errno = dw.err;
    return -1;
  }
  if (dw.short_every && dw.calls % dw.short_every == 0 && n > 8192) n = n / 2 / 4096 * 4096;
  return pwrite(fd, buf, n, at);
}

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
  f->out.dpwrite = fake_dpwrite;
  memset(&dw, 0, sizeof(dw));
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
  if (direct && f.out.dfd >= 0) assert_true(f.out.direct_ok && dw.calls > 0); /* direct */
  if (!direct) assert_int_equal(dw.calls, 0);
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
  if (direct && f.out.dfd >= 0) assert_true(dw.calls > 0);
  file_close(&f);
}

/* HAR's closing brackets spilling over a page boundary: the page after the
 * boundary is dirty in the page cache, and the next large write must not
 * write it directly (the stand-in checks every direct write starts at or
 * past the end of the file). */
static void test_tail_spilling_into_next_page(void **state) {
  enum { TAIL = 5 };
  file_t f;
  (void)state;
  for (size_t spill = 1; spill < TAIL; spill++) {
    file_open(&f, tmpdir, "spill.bin", 0, 1);
    /* keep = 3 pages - (TAIL - spill): the tail's last `spill` bytes are on page 4 */
    file_write(&f, 0, 3 * 4096 - (TAIL - spill) + TAIL, TAIL);
    assert_int_equal(f.size % 4096, spill);
    file_write(&f, f.size - TAIL, ((size_t)1 << 20) + TAIL, TAIL);
    file_write(&f, f.size - TAIL, ((size_t)1 << 20) + 3 + TAIL, TAIL);
    if (f.out.dfd >= 0) assert_true(dw.calls > 0);
    file_close(&f);
  }
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

/* tmpfs keeps files in memory: a direct write would be one more copy, so
 * writes there are ordinary. */
static void test_tmpfs(void **state) {
  const char *dir = shm_dir();
  file_t f;
  (void)state;
  if (dir == NULL) skip();
  file_open(&f, dir, "tmpfs.bin", 10, 1);
  assert_int_equal(f.out.dfd, -1);
  file_write(&f, f.size, (size_t)3 << 20, 0);
  assert_int_equal(dw.calls, 0);
  file_close(&f);
}

/* The first direct write is refused (EINVAL, EOPNOTSUPP: what file systems
 * without O_DIRECT answer): the bytes go the ordinary way, and so does
 * every later write. */
static void test_refused_direct_falls_back(void **state) {
  static const int errs[] = {EINVAL, EOPNOTSUPP};
  file_t f;
  (void)state;
  for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
    file_open(&f, tmpdir, "refused.bin", 24, 1);
    if (f.out.dfd < 0) skip(); /* no O_DIRECT here at all */
    dw.refuse_first = 1;
    dw.err = errs[i];
    file_write(&f, f.size, (size_t)1 << 20, 0);
    assert_int_equal(dw.calls, 1);
    assert_int_equal(f.out.dfd, -1);
    file_write(&f, f.size, (size_t)1 << 20, 0);
    assert_int_equal(dw.calls, 1);
    file_close(&f);
  }
}

/* Short direct writes: the rest goes the ordinary way, the next direct
 * write is aligned again. */
static void test_short_direct_writes(void **state) {
  file_t f;
  (void)state;
  file_open(&f, tmpdir, "short.bin", 100, 1);
  if (f.out.dfd < 0) skip();
  dw.short_every = 2;
  for (int i = 0; i < 6; i++)
    file_write(&f, f.size, (size_t)(3 << 20) + (size_t)i * 777, 0);
  assert_true(dw.calls >= 6);
  assert_true(f.out.dfd >= 0);
  file_close(&f);
}

/* A direct write that fails after others succeeded is the sink's error
 * (a full disk), not a reason to switch to ordinary writes. */
static void test_later_direct_failure_is_an_error(void **state) {
  file_t f;
  struct iovec iov;
  (void)state;
  file_open(&f, tmpdir, "full.bin", 0, 1);
  if (f.out.dfd < 0) skip();
  file_write(&f, 0, (size_t)1 << 20, 0);
  dw.fail_after = dw.calls;
  dw.err = ENOSPC;
  iov.iov_base = f.model;
  iov.iov_len = (size_t)1 << 20;
  assert_int_equal(tr_out_write(&f.out, &iov, 1, (off_t)f.size, (off_t)f.size + (1 << 20)),
                   ENOSPC);
  assert_true(f.out.dfd >= 0);
  file_close(&f);
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
      cmocka_unit_test(test_tail_spilling_into_next_page),
      cmocka_unit_test(test_tmpfs),
      cmocka_unit_test(test_refused_direct_falls_back),
      cmocka_unit_test(test_short_direct_writes),
      cmocka_unit_test(test_later_direct_failure_is_an_error),
      cmocka_unit_test(test_pipe_is_ordinary),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
