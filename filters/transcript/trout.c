/* trout.c — writing a transcript file (transcript_internal.h, tr_out_t):
 * the whole blocks of a large write go to the disk with O_DIRECT from one
 * reused buffer, everything else through the page cache, so that the file
 * is whole after every write and a bulk recording touches almost no page
 * cache.
 *
 * Why: copying a recording into the page cache is most of what recording
 * costs once the traffic is bulk. Each new page-cache page is fresh memory
 * (on the VM the benchmark runs on, fresh memory is faulted in from its
 * host: writing 2 GB through the page cache took 11–14 s of system CPU
 * there, with write-behind (tr_behind_t) about 1 s, with O_DIRECT 0.3 s).
 * O_DIRECT hands the buffer to the disk as it is; the copy into the
 * staging buffer, in user space, costs a small part of what the kernel's
 * copy into fresh pages did. Small writes (a batch of keep-alive flows)
 * stay ordinary: there a direct write cost more, because the page-cache
 * tail it covered had to be written back first every time.
 *
 * How: `stage` mirrors the file from `base` (a multiple of TR_DIO_ALIGN)
 * to its end. In a write of TR_DIO_BIG bytes or more, the bytes before
 * `keep` (what the caller will never rewrite: all of it for JSON lines and
 * PCAP, all but the closing brackets for HAR) are written directly in
 * whole blocks; whatever is then left past `shown` is written with
 * pwrite(2) on the ordinary descriptor, so a reader (or a crash) sees
 * every byte at once. A smaller write goes out with pwritev(2), and the
 * stage keeps just the last partial block. The kernel keeps the two paths
 * coherent: a direct write first writes back and drops the cached pages it
 * covers.
 *
 * O_DIRECT is off — every write ordinary, with write-behind — when the
 * file is not a regular file, when the second descriptor cannot be opened
 * O_DIRECT (tmpfs on older kernels, some network file systems), or when
 * the first direct write is refused with EINVAL (a device whose blocks
 * are larger than TR_DIO_ALIGN). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/transcript/transcript_internal.h"

/* Opens the second descriptor and loads the file's last partial block (the
 * bytes from `base` to `start`) into the stage; 0, or -1: stay buffered. */
static int out_direct_open(tr_out_t *o, off_t start) {
  char proc[64];
  struct stat a, b;
  ssize_t got;

  if (fstat(o->fd, &a) != 0 || !S_ISREG(a.st_mode)) return -1;
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
  o->dfd = open(proc, O_RDWR | O_DIRECT | O_CLOEXEC);
  if (o->dfd < 0) return -1;
  if (fstat(o->dfd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) return -1;
  if (posix_memalign((void **)&o->stage, TR_DIO_ALIGN, TR_DIO_STAGE) != 0) {
    o->stage = NULL;
    return -1;
  }
  o->cap = TR_DIO_STAGE;
  o->base = start - start % TR_DIO_ALIGN;
  o->len = (size_t)(start - o->base);
  o->shown = start;
  if (o->len == 0) return 0;
  /* A direct read of the whole block (the bytes past `start` are beyond
   * the end of the file, or rewritten before they are written again). */
  got = pread(o->dfd, o->stage, TR_DIO_ALIGN, o->base);
  return got >= (ssize_t)o->len ? 0 : -1;
}

void tr_out_init(tr_out_t *o, int fd, off_t start) {
  memset(o, 0, sizeof(*o));
  o->fd = fd;
  o->dfd = -1;
  tr_behind_init(&o->behind, fd, start);
  if (start < 0 || out_direct_open(o, start) != 0) tr_out_buffered(o);
}

void tr_out_buffered(tr_out_t *o) {
  if (o->dfd >= 0) close(o->dfd);
  o->dfd = -1;
  free(o->stage);
  o->stage = NULL;
  o->len = o->cap = 0;
}

void tr_out_free(tr_out_t *o) {
  tr_out_buffered(o);
}

/* Writes the whole blocks of the stage that lie before `keep` directly and
 * drops them from the stage; 0, or errno. EINVAL on the first direct write
 * turns O_DIRECT off: the stage is then written through the page cache. */
static int out_flush_direct(tr_out_t *o, off_t keep) {
  off_t upto = o->base + (off_t)o->len;
  size_t n, done = 0;

  if (o->refused) return EINVAL;
  if (keep < upto) upto = keep;
  if (upto <= o->base) return 0;
  n = (size_t)(upto - o->base);
  n -= n % TR_DIO_ALIGN;
  while (done < n) {
    ssize_t w = pwrite(o->dfd, o->stage + done, n - done, o->base + (off_t)done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && !o->direct_ok && done == 0) {
      o->refused = 1;
      return EINVAL;
    }
    if (w < 0) return errno;
    if (w == 0) return EIO;
    done += (size_t)w;
    o->direct_ok = 1;
  }
  if (done == 0) return 0;
  memmove(o->stage, o->stage + done, o->len - done);
  o->len -= done;
  o->base += (off_t)done;
  if (o->shown < o->base) o->shown = o->base;
  return 0;
}

/* Writes what the stage holds past `shown` through the page cache. */
static int out_show(tr_out_t *o) {
  off_t end = o->base + (off_t)o->len;

  while (o->shown < end) {
    ssize_t w = pwrite(o->fd, o->stage + (o->shown - o->base), (size_t)(end - o->shown),
                       o->shown);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;
    o->shown += w;
  }
  return 0;
}

/* O_DIRECT refused: everything staged goes through the page cache from
 * now on (still at its place in the file). */
static int out_fall_back(tr_out_t *o) {
  int rc;

  o->shown = o->base < o->shown ? o->base : o->shown;
  rc = out_show(o);
  tr_out_buffered(o);
  return rc;
}

/* Room for more in a full stage: whole blocks written, else a larger one
 * (also when O_DIRECT was refused: the batch is then staged whole, and
 * written through the page cache by tr_out_write). */
static int out_make_room(tr_out_t *o, off_t keep) {
  char *p;
  int rc = out_flush_direct(o, keep);

  if (rc && !(rc == EINVAL && o->refused)) return rc;
  if (o->len < o->cap) return 0;
  if (o->cap > ((size_t)1 << 30)) return ENOMEM;
  if (posix_memalign((void **)&p, TR_DIO_ALIGN, o->cap * 2) != 0) return ENOMEM;
  memcpy(p, o->stage, o->len);
  free(o->stage);
  o->stage = p;
  o->cap *= 2;
  return 0;
}

static int out_write_direct(tr_out_t *o, const struct iovec *iov, int n, off_t off,
                            off_t keep) {
  int rc;

  if (off < o->base || off > o->base + (off_t)o->len) return ESPIPE; /* cannot be */
  o->len = (size_t)(off - o->base);
  if (o->shown > off) o->shown = off;
  for (int i = 0; i < n; i++) {
    const char *p = iov[i].iov_base;
    size_t left = iov[i].iov_len;
    while (left > 0) {
      size_t k = o->cap - o->len;
      if (k == 0) {
        if ((rc = out_make_room(o, keep)) != 0) return rc;
        continue;
      }
      if (k > left) k = left;
      memcpy(o->stage + o->len, p, k);
      o->len += k;
      p += k;
      left -= k;
    }
  }
  if (o->refused) return EINVAL;
  if (keep - o->base >= (off_t)TR_DIO_MIN && (rc = out_flush_direct(o, keep)) != 0) return rc;
  return out_show(o);
}

/* A write of less than TR_DIO_BIG: through the page cache, straight from
 * iov, with write-behind; the stage keeps only the file's bytes from the
 * block `keep` falls in to the end, where the next large write starts. A
 * direct write of every small batch cost more than this: the page-cache
 * tail it covered had to be written back first, every time. */
static int out_write_small(tr_out_t *o, struct iovec *iov, int n, off_t off, off_t keep,
                           size_t total) {
  off_t nb = keep - keep % (off_t)TR_DIO_ALIGN, at = off, from = off;
  size_t len = 0;
  int rc;

  if (nb > off) {
    at = nb; /* the stage starts inside this write */
  } else {
    len = (size_t)(off - nb);
    memmove(o->stage, o->stage + (nb - o->base), len);
  }
  for (int i = 0; i < n; from += (off_t)iov[i].iov_len, i++) {
    const char *p = iov[i].iov_base;
    size_t k = iov[i].iov_len;
    if (from + (off_t)k <= at) continue;
    if (from < at) {
      p += at - from;
      k -= (size_t)(at - from);
    }
    memcpy(o->stage + len, p, k);
    len += k;
  }
  o->base = nb;
  o->len = len;
  if ((rc = tr_writev_all(o->fd, iov, n, off)) != 0) return rc;
  o->shown = off + (off_t)total;
  tr_behind_advance(&o->behind, o->fd, keep);
  return 0;
}

int tr_out_write(tr_out_t *o, struct iovec *iov, int n, off_t off, off_t keep) {
  size_t total = 0;
  int rc;

  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (o->dfd >= 0 && total < TR_DIO_BIG && off >= o->base &&
      off <= o->base + (off_t)o->len && keep >= off && keep <= off + (off_t)total &&
      off + (off_t)total - (keep - keep % (off_t)TR_DIO_ALIGN) <= (off_t)o->cap) {
    rc = out_write_small(o, iov, n, off, keep, total);
    if (rc) tr_out_buffered(o);
    return rc;
  }
  if (o->dfd >= 0) {
    rc = out_write_direct(o, iov, n, off, keep);
    if (rc == 0) return 0;
    if (rc != EINVAL || o->direct_ok) {
      tr_out_buffered(o); /* what the file holds is what it holds */
      return rc;
    }
    /* The staged bytes are whole (the copy finished or the stage grew
     * before the refused write): put them in place through the page cache. */
    return out_fall_back(o);
  }
  rc = tr_writev_all(o->fd, iov, n, off);
  if (rc == 0) tr_behind_advance(&o->behind, o->fd, keep);
  return rc;
}
