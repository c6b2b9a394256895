/* ca_file.c — the few file operations the CA needs, each either complete or
 * without effect: readers never see a half-written file, and creating the CA
 * key can never replace one that is already there. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ca/ca_internal.h"

int ca_file_read(const char *path, size_t cap, unsigned char **data, size_t *len, struct stat *st,
                 char *err, size_t errlen) {
  unsigned char *buf = NULL;
  size_t used = 0;
  ssize_t n;
  int fd, rc = 0;

  *data = NULL;
  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ca_err(err, errlen, errno == ENOENT ? CA_ENOENT : CA_EIO, "cannot open %s: %s", path,
                  strerror(errno));
  }
  /* fstat, not stat: the mode we judge is the mode of what we read. */
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    rc = ca_err(err, errlen, CA_EIO, "%s is not a regular file", path);
    goto Exit;
  }
  if ((size_t)st->st_size > cap) {
    rc = ca_err(err, errlen, CA_EBADCA, "%s is too large (%lld bytes)", path,
                (long long)st->st_size);
    goto Exit;
  }
  buf = OPENSSL_malloc(cap);
  if (buf == NULL) {
    rc = ca_err(err, errlen, CA_EIO, "out of memory reading %s", path);
    goto Exit;
  }
  while (used < cap && (n = read(fd, buf + used, cap - used)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = ca_err(err, errlen, CA_EIO, "cannot read %s: %s", path, strerror(errno));
      goto Exit;
    }
    used += (size_t)n;
  }
  *data = buf;
  *len = used;
  buf = NULL;
Exit:
  OPENSSL_clear_free(buf, cap);
  close(fd);
  return rc;
}

int ca_file_same(const char *path, const void *data, size_t len) {
  unsigned char *have = NULL;
  size_t have_len = 0;
  struct stat st;
  int same;

  if (ca_file_read(path, CA_FILE_MAX, &have, &have_len, &st, NULL, 0) != 0) return 0;
  same = have_len == len && memcmp(have, data, len) == 0;
  OPENSSL_clear_free(have, have_len);
  return same;
}

static int write_all(int fd, const unsigned char *p, size_t len) {
  ssize_t n;

  while (len > 0) {
    n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Moves `tmp` to `path` unless `path` exists: link() fails with EEXIST
 * rather than replace, so of two processes racing to create the CA exactly
 * one wins. Filesystems without hard links get renameat2(RENAME_NOREPLACE),
 * which has the same guarantee. Returns 0, 1 (exists) or -1 (errno). */
static int move_noclobber(const char *tmp, const char *path) {
  if (link(tmp, path) == 0) {
    unlink(tmp);
    return 0;
  }
  if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) {
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) return 0;
  }
  return errno == EEXIST ? 1 : -1;
}

/* So that a crash right after we return cannot lose the new name. */
static void sync_parent(const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int fd;

  if (slash == NULL)
    snprintf(dir, sizeof(dir), ".");
  else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path) < 0)
    return;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

int ca_file_install(const char *path, const void *data, size_t len, mode_t mode, int noclobber,
                    char *err, size_t errlen) {
  char tmp[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int dirlen = slash == NULL ? 0 : (int)(slash - path + 1);
  int fd = -1, rc = 0, tmp_live = 0, n;

  /* Same directory as the target, so the final rename/link cannot cross a
   * filesystem; the dot keeps it out of listings if a crash leaves it. */
  n = snprintf(tmp, sizeof(tmp), "%.*s.%s.XXXXXX", dirlen, path, path + dirlen);
  if (n < 0 || (size_t)n >= sizeof(tmp))
    return ca_err(err, errlen, CA_EINVAL, "path too long: %s", path);
  fd = mkstemp(tmp);
  if (fd < 0)
    return ca_err(err, errlen, CA_EIO, "cannot create a file next to %s: %s", path,
                  strerror(errno));
  tmp_live = 1;
  if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    rc = ca_err(err, errlen, CA_EIO, "cannot write %s: %s", tmp, strerror(errno));
    goto Exit;
  }
  n = close(fd);
  fd = -1;
  if (n != 0) {
    rc = ca_err(err, errlen, CA_EIO, "cannot write %s: %s", tmp, strerror(errno));
    goto Exit;
  }
  n = noclobber ? move_noclobber(tmp, path) : rename(tmp, path);
  if (n < 0) {
    rc = ca_err(err, errlen, CA_EIO, "cannot create %s: %s", path, strerror(errno));
    goto Exit;
  }
  rc = n;
  tmp_live = n == 1; /* moved unless the target already existed */
  sync_parent(path);
Exit:
  if (fd >= 0) close(fd);
  if (tmp_live) unlink(tmp);
  return rc;
}

int ca_dir_make(const char *dir, char *err, size_t errlen) {
  char buf[PATH_MAX];
  size_t len = strlen(dir), i;

  if (len == 0 || len >= sizeof(buf))
    return ca_err(err, errlen, CA_EINVAL, "bad CA directory '%s'", dir);
  memcpy(buf, dir, len + 1);
  /* Walk the components so that `--ca-dir a/b/c` works like mkdir -p. */
  for (i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    buf[i] = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return ca_err(err, errlen, CA_EIO, "cannot create directory %s: %s", buf, strerror(errno));
    buf[i] = dir[i];
  }
  return 0;
}
