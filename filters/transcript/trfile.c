/* trfile.c — the file side of the transcript writers (transcript_internal.h):
 * opening a transcript (private mode, a re-used name stated), writing all
 * of a buffer, and the write-behind that keeps a long recording from
 * filling the page cache. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/transcript/transcript_internal.h"
#include "filters/util/log.h"

int tr_write_all(int fd, const void *data, size_t len) {
  const char *p = data;

  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int tr_writev_all(int fd, struct iovec *iov, int n, off_t off) {
  while (n > 0) {
    int cnt = n > IOV_MAX ? IOV_MAX : n;
    ssize_t w = off < 0 ? writev(fd, iov, cnt) : pwritev(fd, iov, cnt, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (off >= 0) off += w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

void tr_behind_init(tr_behind_t *b, int fd, off_t start) {
  struct stat st;

  memset(b, 0, sizeof(*b));
  b->on = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  b->queued = b->dropped = start;
}

/* One whole window at a time (the rest waits for the next call), so that
 * where the windows fall does not depend on how much each write held: a
 * write of many windows at once (a batch of flows) drops the ones before it
 * as many small writes would. */
void tr_behind_advance(tr_behind_t *b, int fd, off_t end) {
  while (b->on && end - b->queued >= TR_BEHIND_WINDOW) {
    off_t upto = b->queued + TR_BEHIND_WINDOW;
    if (sync_file_range(fd, b->queued, upto - b->queued, SYNC_FILE_RANGE_WRITE) != 0) {
      b->on = 0;
      return;
    }
    if (b->queued - b->dropped >= TR_BEHIND_WINDOW) {
      off_t n = b->queued - b->dropped;
      if (sync_file_range(fd, b->dropped, n,
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                              SYNC_FILE_RANGE_WAIT_AFTER) != 0 ||
          posix_fadvise(fd, b->dropped, n, POSIX_FADV_DONTNEED) != 0) {
        b->on = 0;
        return;
      }
      b->dropped = b->queued;
    }
    b->queued = upto;
  }
}

/* A transcript path that names a file with something in it: overwritten
 * (O_TRUNC) or appended to (O_APPEND, the key log), said once at start-up
 * so that a re-used name never loses an earlier run silently. */
static int tr_open_reuse(const char *label, const char *path, int fd, int flags,
                         const struct stat *st, char *err, size_t errlen) {
  if (st->st_size <= 0) return 0;
  if (flags & O_APPEND) {
    flt_log_info("%s %s exists (%lld B): appending to it", label, path, (long long)st->st_size);
    return 0;
  }
  if (!(flags & O_TRUNC)) return 0;
  flt_log_warn("overwriting existing %s %s (%lld B)", label, path, (long long)st->st_size);
  if (ftruncate(fd, 0) != 0) {
    snprintf(err, errlen, "cannot empty %s %s: %s", label, path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Transcripts hold decrypted traffic or TLS secrets: a new file is created
 * with `mode` (0600), and an existing regular file that group or others may
 * access is made 0600 with one line saying so (O_CREAT's mode does not
 * apply to it). Devices and pipes (/dev/stdout, a FIFO) are left alone. */
int tr_open(const char *label, const char *path, int flags, int mode, char *err, size_t errlen) {
  struct stat st;
  /* O_TRUNC is done below, once the file's size has been stated. */
  int fd = open(path, (flags & ~O_TRUNC) | O_CREAT | O_CLOEXEC, mode);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s %s: %s", label, path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fd;
  if (tr_open_reuse(label, path, fd, flags, &st, err, errlen) != 0) {
    close(fd);
    return -1;
  }
  if ((st.st_mode & 077) == 0) return fd;
  if (fchmod(fd, st.st_mode & 0600) != 0) {
    snprintf(err, errlen,
             "%s %s is accessible to other users (mode %04o) and cannot be made private (%s); "
             "fix it with: chmod 600 %s",
             label, path, (unsigned)(st.st_mode & 07777), strerror(errno), path);
    close(fd);
    return -1;
  }
  flt_log_warn(
      "%s %s was accessible to other users (mode %04o); made it %04o: it holds "
      "decrypted traffic or TLS secrets",
      label, path, (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 0600));
  return fd;
}
