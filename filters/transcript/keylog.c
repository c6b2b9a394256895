/* keylog.c — the NSS key log (transcript.h): one line per on_keylog event,
 * for both TLS legs, so Wireshark can decrypt a capture of either.
 *
 * The file holds the secrets of every session: it is created 0600 and a
 * pre-existing file that others may read is made 0600 (tr_open). Lines are appended
 * (O_APPEND, so another writer of the same file, e.g. the client's own
 * SSLKEYLOGFILE, never overwrites ours), every line the writer thread found
 * with one writev(2), so a line is in the kernel within about TR_GATHER_NS
 * of the handshake that produced it. Lines are appended to the writer's
 * chunk of the worker's thread (tr_writer_reserve), whole: one write(2) of
 * many lines never splits a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "filters/transcript/transcript.h"
#include "filters/transcript/transcript_internal.h"

/* An NSS line is a label and two hex strings (< 300 bytes); anything much
 * longer is not a key log line. */
#define KEYLOG_MAX_LINE 4096
/* Chunks of lines handed to one writev(2). */
#define KEYLOG_IOV_BATCH 256

typedef struct flt_keylog {
  int fd;
  char path[512];
  tr_writer_t *w;
} flt_keylog_t;

/* Every line the writer found (in chunks of lines), with one writev(2)
 * (IOV_MAX chunks at most each). */
static int keylog_write_list(void *sink, tr_job_t *list) {
  flt_keylog_t *kl = sink;
  struct iovec iov[KEYLOG_IOV_BATCH];

  while (list) {
    int n = 0;
    for (; list && n < KEYLOG_IOV_BATCH; list = list->next, n++) {
      tr_chunk_t *c = (tr_chunk_t *)list;
      iov[n] = (struct iovec){.iov_base = c->data, .iov_len = c->len};
    }
    int rc = tr_writev_all(kl->fd, iov, n, -1);
    if (rc) return rc;
  }
  return 0;
}

static void keylog_job_free(tr_job_t *job) {
  free(job); /* not reached: every job is a chunk */
}

static const tr_sink_ops_t keylog_sink = {
    .write_list = keylog_write_list,
    .free_job = keylog_job_free,
};

static void on_keylog(void *self, flt_conn_t *c, const char *line) {
  flt_keylog_t *kl = self;
  size_t len = line ? strnlen(line, KEYLOG_MAX_LINE + 1) : 0;
  char *p;

  (void)c;
  if (len == 0 || len > KEYLOG_MAX_LINE || tr_writer_failed(kl->w)) return;
  p = tr_writer_reserve(kl->w, len + 1, flt_now_us());
  if (p == NULL) return; /* the writer said why */
  memcpy(p, line, len);
  p[len] = '\n';
  tr_writer_commit(kl->w, len + 1);
}

static void on_shutdown(void *self) {
  flt_keylog_t *kl = self;
  tr_writer_flush(kl->w);
}

void *flt_keylog_new(const char *path, char *err, size_t errlen) {
  flt_keylog_t *kl = calloc(1, sizeof(*kl));

  if (kl == NULL) {
    snprintf(err, errlen, "key log %s: out of memory", path);
    return NULL;
  }
  snprintf(kl->path, sizeof(kl->path), "%s", path);
  kl->fd = tr_open("key log", path, O_WRONLY | O_APPEND, 0600, err, errlen);
  if (kl->fd < 0) {
    free(kl);
    return NULL;
  }
  kl->w = tr_writer_new("key log", path, &keylog_sink, kl, err, errlen);
  if (kl->w == NULL) {
    close(kl->fd);
    free(kl);
    return NULL;
  }
  return kl;
}

void flt_keylog_free(void *self) {
  flt_keylog_t *kl = self;

  if (kl == NULL) return;
  tr_writer_free(kl->w);
  if (close(kl->fd) < 0) flt_log_warn("key log %s: close: %s", kl->path, strerror(errno));
  free(kl);
}

const flt_ops_t flt_keylog_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "keylog",
    .on_keylog = on_keylog,
    .on_shutdown = on_shutdown,
};
