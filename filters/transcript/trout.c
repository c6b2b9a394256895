/* trout.c — writing a transcript file (transcript_internal.h, tr_out_t):
 * the whole pages in the middle of a write go to the disk with O_DIRECT
 * through one reused buffer, the partial pages at its two ends through the
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
 * [off, a) with pwritev(2), where a is the first page boundary past both
 * off and everything the page cache may hold dirty (the previous write's
 * last page); [a, b) with O_DIRECT, where b is the last page boundary at or
 * before keep; [b, end) with pwritev(2) again. So a direct write never
 * covers a page the page cache holds dirty, and the kernel has nothing to
 * write back before it. Writes with less than TR_DIO_MIN between a and b
 * stay ordinary.
 *
 * A crash of the machine (not of tlspeek: the page cache survives that)
 * must not leave holes: a direct write makes the file longer at once, while
 * the page-cache page before it would reach the disk only with the next
 * writeback, up to half a minute later. So that page's writeback is started
 * (not waited for) before the direct write.
 *
 * O_DIRECT is not used — every write ordinary, with write-behind — for
 * anything but a regular file, on tmpfs (its pages are memory: a direct
 * write is one more copy), when the second descriptor cannot be opened
 * O_DIRECT, or once the first direct write fails (a file system or device
 * that refuses it: EINVAL, EOPNOTSUPP, ...; the bytes are then written the
 * ordinary way, and an error of that write is the sink's). */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "filters/transcript/transcript_internal.h"

void tr_out_init(tr_out_t *o, int fd, off_t start) {
  char proc[64];
  struct stat a, b;
  struct statfs fs;
  long page = sysconf(_SC_PAGESIZE);

  memset(o, 0, sizeof(*o));
  o->fd = fd;
  o->dfd = -1;
  o->dpwrite = pwrite;
  o->page = page >= (long)TR_DIO_ALIGN && page % (long)TR_DIO_ALIGN == 0 ? (off_t)page
                                                                        : (off_t)TR_DIO_ALIGN;
  /* Pipes, FIFOs and terminals are written at their position; a block
   * device or /dev/full, which can seek, at offsets like a file. */
  o->seekable = lseek(fd, 0, SEEK_CUR) >= 0;
  o->dirty_to = start < 0 ? 0 : start;
  tr_behind_init(&o->behind, fd, start < 0 ? 0 : start);
  if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) return;
  if (fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC) return;
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

/* Up to `max` pieces of iov's bytes [skip, skip + len) in `part`; returns
 * how many, with the bytes they hold in *got. */
static int iov_slice(const struct iovec *iov, int n, size_t skip, size_t len,
                     struct iovec *part, int max, size_t *got) {
  int k = 0;

  *got = 0;
  for (int i = 0; i < n && *got < len && k < max; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = l - skip < len - *got ? l - skip : len - *got;
    part[k++] = (struct iovec){.iov_base = (char *)iov[i].iov_base + skip, .iov_len = take};
    *got += take;
    skip = 0;
  }
  return k;
}

/* Copies iov's bytes [skip, skip + len) to `dst`. */
static void iov_copy(const struct iovec *iov, int n, size_t skip, size_t len, char *dst) {
  struct iovec part[64];
  size_t got;

  for (; len > 0; skip += got, len -= got) {
    int k = iov_slice(iov, n, skip, len, part, 64, &got);
    if (k == 0) return; /* iov ends early: cannot be */
    for (int i = 0; i < k; i++) {
      memcpy(dst, part[i].iov_base, part[i].iov_len);
      dst += part[i].iov_len;
    }
  }
}

/* Ordinary writes of iov's bytes [skip, skip + len) at `at`, 64 pieces of
 * iov at a time. */
static int out_plain(tr_out_t *o, const struct iovec *iov, int n, size_t skip, size_t len,
                     off_t at) {
  struct iovec part[64];
  size_t got;

  for (; len > 0; skip += got, len -= got, at += (off_t)got) {
    int k = iov_slice(iov, n, skip, len, part, 64, &got);
    if (k == 0) return EIO; /* iov ends early: cannot be */
    int rc = tr_writev_all(o->fd, part, k, at);
    if (rc) return rc;
  }
  return 0;
}

/* One chunk of the buffer at `at` with O_DIRECT; what a short direct write
 * left (it would leave the next one misaligned) goes the ordinary way.
 * 0, or -errno of a direct write (nothing of the chunk written then), or
 * errno of an ordinary one. */
static int out_direct_chunk(tr_out_t *o, size_t k, off_t at) {
  ssize_t w;

  do {
    w = o->dpwrite(o->dfd, o->buf, k, at);
  } while (w < 0 && errno == EINTR);
  if (w <= 0) return w == 0 ? -EIO : -errno;
  o->direct_ok = 1;
  if ((size_t)w == k) return 0;
  struct iovec rest = {.iov_base = o->buf + w, .iov_len = k - (size_t)w};
  return tr_writev_all(o->fd, &rest, 1, at + w);
}

/* iov's bytes [skip, skip + len) at `at` (page-aligned) with O_DIRECT,
 * TR_DIO_BUF bytes at a time. A failure of the very first direct write
 * turns O_DIRECT off, and the bytes go the ordinary way. */
static int out_direct(tr_out_t *o, const struct iovec *iov, int n, size_t skip, size_t len,
                      off_t at) {
  if (o->buf == NULL && posix_memalign((void **)&o->buf, (size_t)o->page, TR_DIO_BUF) != 0) {
    o->buf = NULL;
    tr_out_buffered(o); /* no memory for the buffer: ordinary writes need none */
    return out_plain(o, iov, n, skip, len, at);
  }
  while (len > 0) {
    size_t k = len < TR_DIO_BUF ? len : TR_DIO_BUF;
    iov_copy(iov, n, skip, k, o->buf);
    int rc = out_direct_chunk(o, k, at);
    if (rc < 0 && !o->direct_ok) { /* refused here: ordinary writes from now on */
      tr_out_buffered(o);
      return out_plain(o, iov, n, skip, len, at);
    }
    if (rc) return rc < 0 ? -rc : rc;
    skip += k;
    len -= k;
    at += (off_t)k;
  }
  return 0;
}

int tr_out_write(tr_out_t *o, struct iovec *iov, int n, off_t off, off_t keep) {
  size_t total = 0;
  off_t a, b, end;
  int rc;

  if (!o->seekable) off = -1; /* a pipe or a terminal: at its position */
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  end = off + (off_t)total;
  a = off > o->dirty_to ? off : o->dirty_to;
  a += o->page - 1;
  a -= a % o->page;
  b = keep < end ? keep : end;
  b -= b % o->page;
  if (o->dfd < 0 || off < 0 || b - a < (off_t)TR_DIO_MIN) {
    rc = tr_writev_all(o->fd, iov, n, off);
    if (rc == 0 && off >= 0) {
      o->dirty_to = end;
      tr_behind_advance(&o->behind, o->fd, keep);
    }
    return rc;
  }
  if ((rc = out_plain(o, iov, n, 0, (size_t)(a - off), off)) != 0) return rc;
  /* Advice only: the page before the direct write on its way to the disk
   * first (see the top of the file). */
  off_t from = off - off % o->page;
  if (a > from) (void)sync_file_range(o->fd, from, a - from, SYNC_FILE_RANGE_WRITE);
  if ((rc = out_direct(o, iov, n, (size_t)(a - off), (size_t)(b - a), a)) != 0) return rc;
  if ((rc = out_plain(o, iov, n, (size_t)(b - off), (size_t)(end - b), b)) != 0) return rc;
  o->dirty_to = end;
  tr_behind_advance(&o->behind, o->fd, keep);
  return 0;
}
