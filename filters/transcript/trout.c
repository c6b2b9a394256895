/* trout.c — writing a transcript file (transcript_internal.h, tr_out_t):
 * the whole blocks in the middle of a write go to the disk with O_DIRECT
 * through one reused buffer, the partial blocks at its two ends through the
 * page cache, so that the file is whole after every write and a recording
 * hardly touches the page cache.
 *
 * Why: copying a recording into the page cache is most of what writing it
 * costs. Each new page-cache page is fresh memory (on the VM the benchmark
 * runs on, fresh memory is faulted in from its host: writing 2 GB through
 * the page cache took 11–14 s of system CPU there, with write-behind
 * (tr_behind_t) about 1 s, with O_DIRECT 0.3 s). O_DIRECT hands the buffer
 * to the disk as it is; the copy into the aligned buffer, in user space,
 * costs a small part of what the kernel's copy into fresh pages did.
 *
 * How: a write of the bytes [off, end), of which those before `keep` are
 * final (all of them for JSON lines and PCAP; all but the closing brackets
 * for HAR, rewritten by the next write), is three writes in file order:
 * [off, a) with pwritev(2), where a is the first block boundary after off;
 * [a, b) with O_DIRECT, where b is the last block boundary at or before
 * keep; [b, end) with pwritev(2) again. A direct write never covers a page
 * that the page cache holds dirty (those are at most the blocks of off and
 * of keep, outside [a, b)), so the kernel has nothing to write back before
 * it. Writes with fewer than TR_DIO_MIN whole blocks stay ordinary.
 *
 * O_DIRECT is off — every write ordinary, with write-behind — when the file
 * is not a regular file, when the second descriptor cannot be opened
 * O_DIRECT (tmpfs on older kernels, some network file systems), or when the
 * first direct write is refused with EINVAL (a device whose blocks are
 * larger than TR_DIO_ALIGN). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/transcript/transcript_internal.h"

void tr_out_init(tr_out_t *o, int fd, off_t start) {
  char proc[64];
  struct stat a, b;

  memset(o, 0, sizeof(*o));
  o->fd = fd;
  o->dfd = -1;
  tr_behind_init(&o->behind, fd, start < 0 ? 0 : start);
  if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) return;
  o->regular = 1;
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  o->dfd = open(proc, O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (o->dfd < 0) return;
  if (fstat(o->dfd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) tr_out_buffered(o);
}

void tr_out_buffered(tr_out_t *o) {
  if (o->dfd >= 0) close(o->dfd);
  o->dfd = -1;
  free(o->buf);
  o->buf = NULL;
}

void tr_out_free(tr_out_t *o) {
  tr_out_buffered(o);
}

/* A view of iov's bytes from `skip` on, `len` of them, in `out` (at most
 * `max` entries); returns how many entries. */
static int iov_slice(const struct iovec *iov, int n, size_t skip, size_t len, struct iovec *out,
                     int max) {
  int k = 0;

  for (int i = 0; i < n && len > 0 && k < max; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = l - skip < len ? l - skip : len;
    out[k++] = (struct iovec){.iov_base = (char *)iov[i].iov_base + skip, .iov_len = take};
    len -= take;
    skip = 0;
  }
  return k;
}

/* Ordinary writes of iov's bytes [skip, skip + len) at `at`. */
static int out_plain(tr_out_t *o, const struct iovec *iov, int n, size_t skip, size_t len,
                     off_t at) {
  struct iovec part[64];

  while (len > 0) {
    int k = iov_slice(iov, n, skip, len, part, 64);
    size_t got = 0;
    for (int i = 0; i < k; i++)
      got += part[i].iov_len;
    int rc = tr_writev_all(o->fd, part, k, at);
    if (rc) return rc;
    skip += got;
    len -= got;
    at += (off_t)got;
  }
  return 0;
}

/* Copies iov's bytes [skip, skip + len) to `dst`. */
static void iov_copy(const struct iovec *iov, int n, size_t skip, size_t len, char *dst) {
  for (int i = 0; i < n && len > 0; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = l - skip < len ? l - skip : len;
    memcpy(dst, (const char *)iov[i].iov_base + skip, take);
    dst += take;
    len -= take;
    skip = 0;
  }
}

/* iov's bytes [skip, skip + len) at `at` (all block-aligned) with O_DIRECT,
 * TR_DIO_BUF bytes at a time; 0, errno, or EINVAL with nothing written when
 * the very first direct write is refused. */
static int out_direct(tr_out_t *o, const struct iovec *iov, int n, size_t skip, size_t len,
                      off_t at) {
  if (o->buf == NULL && posix_memalign((void **)&o->buf, TR_DIO_ALIGN, TR_DIO_BUF) != 0) {
    o->buf = NULL;
    return ENOMEM;
  }
  while (len > 0) {
    size_t k = len < TR_DIO_BUF ? len : TR_DIO_BUF, done = 0;
    iov_copy(iov, n, skip, k, o->buf);
    while (done < k) {
      ssize_t w = pwrite(o->dfd, o->buf + done, k - done, at + (off_t)done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EINVAL && !o->direct_ok) return EINVAL;
      if (w < 0) return errno;
      if (w == 0) return EIO;
      done += (size_t)w;
      o->direct_ok = 1;
    }
    skip += k;
    len -= k;
    at += (off_t)k;
  }
  return 0;
}

int tr_out_write(tr_out_t *o, struct iovec *iov, int n, off_t off, off_t keep) {
  size_t total = 0;
  off_t a, b;
  int rc;

  if (!o->regular) off = -1; /* a pipe or a terminal: at its position */
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  a = off + (off_t)(TR_DIO_ALIGN - 1);
  a -= a % (off_t)TR_DIO_ALIGN;
  b = keep < off + (off_t)total ? keep : off + (off_t)total;
  b -= b % (off_t)TR_DIO_ALIGN;
  if (o->dfd < 0 || off < 0 || b - a < (off_t)TR_DIO_MIN) {
    rc = tr_writev_all(o->fd, iov, n, off);
    if (rc == 0 && off >= 0) tr_behind_advance(&o->behind, o->fd, keep);
    return rc;
  }
  if ((rc = out_plain(o, iov, n, 0, (size_t)(a - off), off)) != 0) return rc;
  rc = out_direct(o, iov, n, (size_t)(a - off), (size_t)(b - a), a);
  if (rc == EINVAL) { /* refused before anything was written: no O_DIRECT here */
    tr_out_buffered(o);
    rc = out_plain(o, iov, n, (size_t)(a - off), (size_t)(b - a), a);
  }
  if (rc) return rc;
  rc = out_plain(o, iov, n, (size_t)(b - off), total - (size_t)(b - off), b);
  if (rc == 0) tr_behind_advance(&o->behind, o->fd, keep);
  return rc;
}
