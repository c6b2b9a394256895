/* writer.c — the transcript writer thread (transcript_internal.h,
 * tr_writer_t): one per file.
 *
 * Why a writer of our own rather than output.h: HAR must overwrite its
 * closing tail with pwrite(2) at a known offset, and HAR and JSON lines
 * format a flow on the file's own thread from a record they may share;
 * both want "run this job on the file's own thread" rather than "append
 * these bytes". It also gives every sink the same failure rule: one
 * warning, then silence.
 *
 * Why a slot per producing thread: every worker queues a job per flow (HAR,
 * JSON lines) or per read (PCAP). With one queue under one mutex, the
 * workers and the writer thread took turns on it, and under load a worker
 * often found it held and slept in futex(2). Each worker thread now has a
 * slot of its own (its own mutex, which only the writer thread's take ever
 * touches), and the writer takes every slot's jobs at once, merged by their
 * `order` (when they were made), so a file still lists flows in the order
 * they completed. Byte sinks (PCAP, key log) append their records to the
 * slot's open chunk (tr_writer_reserve): one allocation per TR_CHUNK_SIZE
 * bytes of records instead of one per read, chunks kept for re-use, and one
 * iovec per chunk.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters/transcript/transcript_internal.h"
#include "filters/util/log.h"
#include "filters/util/output.h"

/* Producer threads with a slot of their own; more share slots (safely). */
#define WR_SLOTS 32
/* Chunks of TR_CHUNK_SIZE kept for re-use (per writer). */
#define WR_CHUNKS_KEPT 64

typedef struct wr_slot {
  pthread_mutex_t mu;
  tr_job_t *head, *tail;
  tr_chunk_t *open; /* being filled (tr_writer_reserve), not in the list */
  atomic_int pending; /* head or open is set: the writer has work here */
} __attribute__((aligned(64))) wr_slot_t;

struct tr_writer {
  char label[32];
  char path[512];
  const tr_sink_ops_t *ops;
  void *sink;

  wr_slot_t slots[WR_SLOTS];
  atomic_size_t queued;  /* cost of the jobs not yet run */
  atomic_int idle;       /* the thread sleeps on has_work: wake it */
  atomic_int stopping;
  atomic_int failed;
  atomic_int drop_warned;
  atomic_ullong dropped;

  pthread_mutex_t mu;
  pthread_cond_t has_work; /* the thread waits: jobs queued, a flush, or stopping */
  pthread_cond_t progress; /* flushers wait: `passes` advanced */
  uint64_t passes;         /* takes of every slot completed */
  int flushers;
  pthread_t thread;

  pthread_mutex_t chunks_mu; /* chunks kept for re-use */
  tr_chunk_t *chunks;
  int n_chunks;
};

/* This thread's slot number (the same for every writer). */
static int wr_slot_index(void) {
  static atomic_int next;
  static _Thread_local int idx = -1;
  if (idx < 0) idx = atomic_fetch_add(&next, 1) % WR_SLOTS;
  return idx;
}

static void wr_fail(tr_writer_t *w, int err) {
  atomic_store(&w->failed, 1);
  flt_log_warn("%s %s: %s; recording to it stopped (proxying continues)", w->label, w->path,
               strerror(err));
}

/* Counts `cost` against TR_MAX_QUEUED; 0, or -1 when over (said once). */
static int wr_charge(tr_writer_t *w, size_t cost) {
  if (cost > TR_MAX_QUEUED - atomic_load(&w->queued)) {
    atomic_fetch_add(&w->dropped, 1);
    if (!atomic_exchange(&w->drop_warned, 1))
      flt_log_warn(
          "%s %s: the disk cannot keep up (%u MiB queued); "
          "dropping records (counted)",
          w->label, w->path, TR_MAX_QUEUED >> 20);
    return -1;
  }
  size_t before = atomic_fetch_add(&w->queued, cost);
  flt_backlog_add((int64_t)cost);
  if (before < TR_GATHER_BYTES && before + cost >= TR_GATHER_BYTES) {
    /* Cut a gathering writer's wait short (wr_gather): once per crossing. */
    pthread_mutex_lock(&w->mu);
    pthread_cond_signal(&w->has_work);
    pthread_mutex_unlock(&w->mu);
  }
  return 0;
}

/* After a slot got work: wakes the thread if it sleeps. The slot's
 * `pending` was stored before `idle` is read, and the thread stores `idle`
 * before it looks at the slots again (both sequentially consistent), so
 * one of the two sees the other. */
static void wr_wake(tr_writer_t *w) {
  if (!atomic_load(&w->idle)) return;
  pthread_mutex_lock(&w->mu);
  pthread_cond_signal(&w->has_work);
  pthread_mutex_unlock(&w->mu);
}

static void chunk_recycle(tr_writer_t *w, tr_chunk_t **list) {
  tr_chunk_t *keep = NULL, *c, *next;
  for (c = *list; c; c = next) {
    next = (tr_chunk_t *)c->job.next;
    if (c->size != TR_CHUNK_SIZE) {
      free(c);
      continue;
    }
    c->job.next = (tr_job_t *)keep; /* job is the first member */
    keep = c;
  }
  pthread_mutex_lock(&w->chunks_mu);
  for (c = keep; c; c = next) {
    next = (tr_chunk_t *)c->job.next;
    if (w->n_chunks >= WR_CHUNKS_KEPT) {
      free(c);
      continue;
    }
    c->job.next = (tr_job_t *)w->chunks;
    w->chunks = c;
    w->n_chunks++;
  }
  pthread_mutex_unlock(&w->chunks_mu);
  *list = NULL;
}

/* Runs a detached list of jobs in order; returns their total cost. */
static size_t wr_run_list(tr_writer_t *w, tr_job_t *list) {
  tr_chunk_t *done_chunks = NULL;
  size_t cost = 0;

  if (w->ops->write_list && !atomic_load(&w->failed)) {
    int rc = w->ops->write_list(w->sink, list);
    if (rc) wr_fail(w, rc);
  }
  while (list) {
    tr_job_t *next = list->next;
    if (!w->ops->write_list && !atomic_load(&w->failed)) {
      int rc = w->ops->write(w->sink, list);
      if (rc) wr_fail(w, rc);
    }
    cost += list->cost;
    if (list->is_chunk) {
      list->next = (tr_job_t *)done_chunks;
      done_chunks = (tr_chunk_t *)list;
    } else {
      w->ops->free_job(list);
    }
    list = next;
  }
  if (done_chunks) chunk_recycle(w, &done_chunks);
  if (!atomic_load(&w->failed) && w->ops->flush) {
    int rc = w->ops->flush(w->sink);
    if (rc) wr_fail(w, rc);
  }
  return cost;
}

static int wr_has_work(tr_writer_t *w) {
  for (int i = 0; i < WR_SLOTS; i++)
    if (atomic_load(&w->slots[i].pending)) return 1;
  return 0;
}

/* Takes every slot's jobs (the open chunks too), merged by `order`; each
 * slot's own jobs stay in the order they were queued. */
static tr_job_t *wr_take(tr_writer_t *w) {
  tr_job_t *lists[WR_SLOTS], *out = NULL, **tail = &out;
  int n = 0;

  for (int i = 0; i < WR_SLOTS; i++) {
    wr_slot_t *s = &w->slots[i];
    if (!atomic_load(&s->pending)) continue;
    pthread_mutex_lock(&s->mu);
    if (s->open) {
      tr_job_t *j = &s->open->job;
      j->next = NULL;
      if (s->tail)
        s->tail->next = j;
      else
        s->head = j;
      s->tail = j;
      s->open = NULL;
    }
    if (s->head) lists[n++] = s->head;
    s->head = s->tail = NULL;
    atomic_store(&s->pending, 0);
    pthread_mutex_unlock(&s->mu);
  }
  while (n > 0) {
    int best = 0;
    for (int i = 1; i < n; i++)
      if (lists[i]->order < lists[best]->order) best = i;
    *tail = lists[best];
    tail = &lists[best]->next;
    lists[best] = lists[best]->next;
    if (lists[best] == NULL) lists[best] = lists[--n];
  }
  *tail = NULL;
  return out;
}

/* "tlspeek-har" for "HAR file", "tlspeek-keylog" for "key log": the name
 * top(1) and `make bench` (its CPU by thread) show for the writer. */
static void wr_name_thread(const tr_writer_t *w) {
  char name[16] = "tlspeek-";
  size_t n = strlen(name);
  for (const char *p = w->label; *p && n < sizeof(name) - 1; p++) {
    if (strncmp(p, " file", 5) == 0) break;
    if (*p != ' ') name[n++] = (char)tolower((unsigned char)*p);
  }
  name[n] = '\0';
  pthread_setname_np(pthread_self(), name);
}

static void ts_add_ns(struct timespec *t, long ns) {
  t->tv_nsec += ns;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

/* Until `until` (CLOCK_MONOTONIC), unless a flush or a stop comes first,
 * or the queue holds TR_GATHER_BYTES (w->mu held). The producers do not
 * signal meanwhile (`idle` is 0), except the one whose job makes the queue
 * reach TR_GATHER_BYTES (wr_charge): gathering costs them nothing. */
static void wr_gather(tr_writer_t *w, const struct timespec *until) {
  while (!atomic_load(&w->stopping) && w->flushers == 0 &&
         atomic_load(&w->queued) < TR_GATHER_BYTES)
    if (pthread_cond_timedwait(&w->has_work, &w->mu, until) != 0) break; /* ETIMEDOUT */
}

/* Sleeps until there is work, a flush or a stop (w->mu held). Jobs are
 * taken at most once per TR_GATHER_NS: one wake-up and one write for many
 * flows, not one each. Each wake-up costs the event loop that queued the
 * job a futex call and both threads a context switch, and each take a
 * write (and with O_DIRECT, a disk request) per file: taking whatever
 * arrived while the last batch was written made hundreds of small batches
 * a second under steady load. `*last` is when the last take began. */
static void wr_wait(tr_writer_t *w, struct timespec *last) {
  struct timespec until = *last;

  ts_add_ns(&until, TR_GATHER_NS);
  while (!atomic_load(&w->stopping) && w->flushers == 0 && !wr_has_work(w)) {
    atomic_store(&w->idle, 1);
    if (wr_has_work(w)) { /* queued between the look and `idle` */
      atomic_store(&w->idle, 0);
      break;
    }
    pthread_cond_wait(&w->has_work, &w->mu);
    atomic_store(&w->idle, 0);
    /* Woken from sleep: the burst that began gets TR_GATHER_NS. */
    clock_gettime(CLOCK_MONOTONIC, &until);
    ts_add_ns(&until, TR_GATHER_NS);
  }
  wr_gather(w, &until);
  clock_gettime(CLOCK_MONOTONIC, last);
}

static void *wr_main(void *arg) {
  tr_writer_t *w = arg;
  struct timespec last = {0, 0};

  wr_name_thread(w);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    wr_wait(w, &last);
    pthread_mutex_unlock(&w->mu);
    tr_job_t *list = wr_take(w);
    size_t cost = list ? wr_run_list(w, list) : 0;
    atomic_fetch_sub(&w->queued, cost);
    flt_backlog_add(-(int64_t)cost);
    pthread_mutex_lock(&w->mu);
    w->passes++;
    pthread_cond_broadcast(&w->progress);
    if (list == NULL && atomic_load(&w->stopping)) break;
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

tr_writer_t *tr_writer_new(const char *label, const char *path, const tr_sink_ops_t *ops,
                           void *sink, char *err, size_t errlen) {
  tr_writer_t *w = calloc(1, sizeof(*w));
  sigset_t all, old;
  int rc;

  if (w == NULL) {
    snprintf(err, errlen, "%s %s: out of memory", label, path);
    return NULL;
  }
  snprintf(w->label, sizeof(w->label), "%s", label);
  snprintf(w->path, sizeof(w->path), "%s", path);
  w->ops = ops;
  w->sink = sink;
  for (int i = 0; i < WR_SLOTS; i++)
    pthread_mutex_init(&w->slots[i].mu, NULL);
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_init(&w->chunks_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->has_work, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&w->progress, NULL);
  /* Signals belong to the main thread; a FIFO reader that goes away must
   * come back as EPIPE, not SIGPIPE. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&w->thread, NULL, wr_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    snprintf(err, errlen, "%s %s: cannot start a writer thread: %s", label, path, strerror(rc));
    w->thread = pthread_self();
    tr_writer_free(w);
    return NULL;
  }
  return w;
}

void tr_writer_put(tr_writer_t *w, tr_job_t *job) {
  wr_slot_t *s = &w->slots[wr_slot_index()];

  job->next = NULL;
  job->is_chunk = 0;
  if (atomic_load(&w->failed) || atomic_load(&w->stopping) || wr_charge(w, job->cost) < 0) {
    w->ops->free_job(job);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = job;
  else
    s->head = job;
  s->tail = job;
  atomic_store(&s->pending, 1);
  pthread_mutex_unlock(&s->mu);
  wr_wake(w);
}

/* A chunk of at least `need` bytes: a kept one when TR_CHUNK_SIZE does. */
static tr_chunk_t *chunk_get(tr_writer_t *w, size_t need) {
  size_t size = need > TR_CHUNK_SIZE ? need : TR_CHUNK_SIZE;
  tr_chunk_t *c = NULL;

  if (size == TR_CHUNK_SIZE) {
    pthread_mutex_lock(&w->chunks_mu);
    if ((c = w->chunks) != NULL) {
      w->chunks = (tr_chunk_t *)c->job.next;
      w->n_chunks--;
    }
    pthread_mutex_unlock(&w->chunks_mu);
  }
  if (c == NULL && (size > SIZE_MAX - sizeof(*c) || (c = malloc(sizeof(*c) + size)) == NULL))
    return NULL;
  memset(&c->job, 0, sizeof(c->job));
  c->job.is_chunk = 1;
  c->job.cost = sizeof(*c) + size;
  c->len = 0;
  c->size = size;
  return c;
}

char *tr_writer_reserve(tr_writer_t *w, size_t n, uint64_t order) {
  wr_slot_t *s = &w->slots[wr_slot_index()];
  tr_chunk_t *c;

  if (atomic_load(&w->failed) || atomic_load(&w->stopping)) return NULL;
  pthread_mutex_lock(&s->mu);
  c = s->open;
  if (c == NULL || c->size - c->len < n) {
    tr_chunk_t *fresh = chunk_get(w, n);
    if (fresh == NULL)
      flt_log_error("%s %s: out of memory; records lost", w->label, w->path);
    if (fresh == NULL || wr_charge(w, fresh->job.cost) < 0) {
      if (fresh) chunk_recycle(w, &fresh);
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    if (c) { /* full: queued behind the slot's jobs */
      if (s->tail)
        s->tail->next = &c->job;
      else
        s->head = &c->job;
      s->tail = &c->job;
    }
    s->open = c = fresh;
    c->job.order = order;
    atomic_store(&s->pending, 1);
  }
  return c->data + c->len; /* the slot stays locked until tr_writer_commit */
}

void tr_writer_commit(tr_writer_t *w, size_t used) {
  wr_slot_t *s = &w->slots[wr_slot_index()];
  s->open->len += used;
  pthread_mutex_unlock(&s->mu);
  wr_wake(w);
}

int tr_writer_failed(tr_writer_t *w) {
  return w == NULL || atomic_load(&w->failed);
}

/* Two takes that start after this call: the second takes every job
 * queued before it (the first may have begun just before). */
void tr_writer_flush(tr_writer_t *w) {
  if (w == NULL) return;
  pthread_mutex_lock(&w->mu);
  uint64_t target = w->passes + 2;
  w->flushers++;
  pthread_cond_signal(&w->has_work);
  while (w->passes < target)
    pthread_cond_wait(&w->progress, &w->mu);
  w->flushers--;
  pthread_mutex_unlock(&w->mu);
}

void tr_writer_free(tr_writer_t *w) {
  if (w == NULL) return;
  if (!pthread_equal(w->thread, pthread_self())) {
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stopping, 1);
    pthread_cond_signal(&w->has_work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* the thread drains the slots first */
    tr_job_t *left = wr_take(w);   /* none: every producer has stopped */
    if (left) wr_run_list(w, left);
  }
  if (atomic_load(&w->dropped))
    flt_log_warn("%s %s: %llu record(s) dropped", w->label, w->path,
                 (unsigned long long)atomic_load(&w->dropped));
  while (w->chunks) {
    tr_chunk_t *c = w->chunks;
    w->chunks = (tr_chunk_t *)c->job.next;
    free(c);
  }
  for (int i = 0; i < WR_SLOTS; i++)
    pthread_mutex_destroy(&w->slots[i].mu);
  pthread_cond_destroy(&w->progress);
  pthread_cond_destroy(&w->has_work);
  pthread_mutex_destroy(&w->chunks_mu);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
