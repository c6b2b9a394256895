#include "filters/util/output.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/util/log.h"

#define OUT_DEFAULT_MAX_QUEUED (64u * 1024 * 1024)
/* Blocks gathered into one writev(2). */
#define OUT_IOV_BATCH 64

typedef struct out_block {
  struct out_block *next;
  char *data;
  size_t len;
} out_block_t;

struct flt_output {
  int fd;
  int close_fd;
  char name[256];
  size_t max_queued;

  pthread_mutex_t mu;
  pthread_cond_t has_work; /* writer waits: queue non-empty or stopping */
  int writer_idle;         /* the writer sleeps on has_work: wake it */
  pthread_cond_t progress; /* flushers wait: blocks_done advanced */
  out_block_t *head, *tail;
  size_t queued_bytes;
  uint64_t blocks_queued;  /* ever queued */
  uint64_t blocks_done;    /* written or discarded by the writer */
  int stopping;
  int drop_reported;
  pthread_t thread;

  /* Only the writer thread touches these. */
  int failed;              /* a write failed: discard from now on */

  atomic_uint_fast64_t dropped;
};

/* Counts a block that will never be written, and says so once. */
static void out_count_drop(flt_output_t *o, const char *why) {
  atomic_fetch_add(&o->dropped, 1);
  pthread_mutex_lock(&o->mu);
  int first = !o->drop_reported;
  o->drop_reported = 1;
  pthread_mutex_unlock(&o->mu);
  if (first)
    flt_log_warn("output to %s: %s; dropping output (counted)", o->name, why);
}

/* Waits until fd is writable again, for descriptors someone else made
 * non-blocking (a terminal shared with libuv, for instance). */
static void out_wait_writable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
}

/* Writes the iovecs completely. Returns 0 or an errno value. */
static int out_writev_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        out_wait_writable(fd);
        continue;
      }
      return errno;
    }
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

/* Writes a detached list of blocks in order, in batches, then frees them.
 * Returns how many blocks it consumed. */
static uint64_t out_write_list(flt_output_t *o, out_block_t *list,
                               size_t *bytes) {
  struct iovec iov[OUT_IOV_BATCH];
  uint64_t count = 0;

  *bytes = 0;
  while (list) {
    out_block_t *batch = list;
    int n = 0;
    for (out_block_t *b = list; b && n < OUT_IOV_BATCH; b = b->next) {
      iov[n].iov_base = b->data;
      iov[n].iov_len = b->len;
      n++;
    }
    if (!o->failed) {
      int err = out_writev_all(o->fd, iov, n);
      if (err) {
        o->failed = 1;
        flt_log_error("writing to %s: %s; further output is dropped",
                      o->name, strerror(err));
      }
    }
    for (int i = 0; i < n; i++) {
      out_block_t *next = batch->next;
      /* After a failure, every block not written counts as dropped. */
      if (o->failed) atomic_fetch_add(&o->dropped, 1);
      *bytes += batch->len;
      free(batch->data);
      free(batch);
      batch = next;
      count++;
    }
    list = batch;
  }
  return count;
}

static atomic_int_fast64_t backlog_bytes;

uint64_t flt_backlog(void) {
  int_fast64_t v = atomic_load(&backlog_bytes);
  return v > 0 ? (uint64_t)v : 0;
}

void flt_backlog_add(int64_t delta) { atomic_fetch_add(&backlog_bytes, delta); }

static void *out_writer_main(void *arg) {
  flt_output_t *o = arg;

  pthread_mutex_lock(&o->mu);
  for (;;) {
    while (o->head == NULL && !o->stopping) {
      o->writer_idle = 1;
      pthread_cond_wait(&o->has_work, &o->mu);
      o->writer_idle = 0;
      if (o->head && !o->stopping) {
        /* Let a burst of blocks gather: one wake-up and one write for many
         * flows instead of a context switch per flow (costly at 10k+/s). */
        pthread_mutex_unlock(&o->mu);
        struct timespec gather = {0, 1000000}; /* 1 ms: unnoticeable on screen */
        nanosleep(&gather, NULL);
        pthread_mutex_lock(&o->mu);
      }
    }
    if (o->head == NULL) break; /* stopping, and everything is written */
    /* Take the whole queue: writers never wait on the disk or terminal. */
    out_block_t *list = o->head;
    o->head = o->tail = NULL;
    pthread_mutex_unlock(&o->mu);

    size_t bytes;
    uint64_t n = out_write_list(o, list, &bytes);

    pthread_mutex_lock(&o->mu);
    o->queued_bytes -= bytes;
    flt_backlog_add(-(int64_t)bytes);
    o->blocks_done += n;
    pthread_cond_broadcast(&o->progress);
  }
  pthread_mutex_unlock(&o->mu);
  return NULL;
}

flt_output_t *flt_output_new(int fd, const char *name, int close_fd,
                             size_t max_queued) {
  flt_output_t *o = calloc(1, sizeof(*o));
  sigset_t all, old;
  int err;

  if (o == NULL) return NULL;
  o->fd = fd;
  o->close_fd = close_fd;
  snprintf(o->name, sizeof(o->name), "%s", name ? name : "output");
  o->max_queued = max_queued ? max_queued : OUT_DEFAULT_MAX_QUEUED;
  atomic_init(&o->dropped, 0);
  pthread_mutex_init(&o->mu, NULL);
  pthread_cond_init(&o->has_work, NULL);
  pthread_cond_init(&o->progress, NULL);

  /* The writer blocks every signal: SIGINT/SIGTERM belong to the main
   * thread, and a closed pipe must come back as EPIPE, not SIGPIPE. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(&o->thread, NULL, out_writer_main, o);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) {
    flt_log_error("output to %s: cannot start writer thread: %s", o->name,
                  strerror(err));
    pthread_cond_destroy(&o->progress);
    pthread_cond_destroy(&o->has_work);
    pthread_mutex_destroy(&o->mu);
    free(o);
    return NULL;
  }
  return o;
}

void flt_output_write_owned(flt_output_t *o, void *data, size_t len) {
  out_block_t *b;

  if (o == NULL || len == 0) {
    free(data);
    return;
  }
  b = malloc(sizeof(*b));
  if (b == NULL) {
    free(data);
    out_count_drop(o, "out of memory");
    return;
  }
  b->next = NULL;
  b->data = data;
  b->len = len;

  pthread_mutex_lock(&o->mu);
  if (len > o->max_queued - o->queued_bytes || o->stopping) {
    pthread_mutex_unlock(&o->mu);
    free(data);
    free(b);
    out_count_drop(o, "writer cannot keep up (queue full)");
    return;
  }
  if (o->tail)
    o->tail->next = b;
  else
    o->head = b;
  o->tail = b;
  o->queued_bytes += len;
  flt_backlog_add((int64_t)len);
  o->blocks_queued++;
  if (o->writer_idle) pthread_cond_signal(&o->has_work);
  pthread_mutex_unlock(&o->mu);
}

void flt_output_write(flt_output_t *o, const void *data, size_t len) {
  char *copy;

  if (o == NULL || len == 0) return;
  copy = malloc(len);
  if (copy == NULL) {
    out_count_drop(o, "out of memory");
    return;
  }
  memcpy(copy, data, len);
  flt_output_write_owned(o, copy, len);
}

void flt_output_flush(flt_output_t *o) {
  if (o == NULL) return;
  pthread_mutex_lock(&o->mu);
  uint64_t target = o->blocks_queued;
  while (o->blocks_done < target) pthread_cond_wait(&o->progress, &o->mu);
  pthread_mutex_unlock(&o->mu);
}

void flt_output_free(flt_output_t *o) {
  uint64_t dropped;

  if (o == NULL) return;
  pthread_mutex_lock(&o->mu);
  o->stopping = 1;
  pthread_cond_signal(&o->has_work);
  pthread_mutex_unlock(&o->mu);
  /* The writer drains the queue before it sees `stopping`. */
  pthread_join(o->thread, NULL);

  dropped = flt_output_dropped(o);
  if (dropped)
    flt_log_warn("output to %s: %llu block(s) dropped", o->name,
                 (unsigned long long)dropped);
  if (o->close_fd && close(o->fd) < 0)
    flt_log_error("closing %s: %s", o->name, strerror(errno));
  pthread_cond_destroy(&o->progress);
  pthread_cond_destroy(&o->has_work);
  pthread_mutex_destroy(&o->mu);
  free(o);
}

uint64_t flt_output_dropped(const flt_output_t *o) {
  /* atomic_load on a const object is fine in C17 but not every libc's
   * C11 <stdatomic.h> accepts it, so cast the const away. */
  return o ? atomic_load(&((flt_output_t *)o)->dropped) : 0;
}
