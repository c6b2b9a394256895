/* store_internal.h — what store.c (the filter and the list) and
 * store_json.c (the JSON of summaries, details and connections) share.
 *
 * Locks: the store's mutex guards the list (the ring, first, dropped,
 * cleared) and nothing else; a worker takes it once per flow, to put the
 * flow in. A flow's changing state and a connection's facts have a short
 * lock of their own (web_lock: a worker writes or the web thread copies a
 * few hundred bytes), so the workers never wait for each other on them;
 * `seq` is an atomic counter, taken inside the lock of what it stamps.
 *
 * Ownership and threads:
 *  - web_flow_t and web_conn_t are reference-counted (atomics): the list
 *    holds one reference per kept flow, a flow one on its connection, the
 *    worker one on a connection until on_conn_close, and a question on the
 *    web thread one on each flow it looks at outside the lock.
 *  - A flow's fields marked (immutable) are set before it is published in
 *    the list and never change; those marked (lock) change under its
 *    st_lock. Once `done` was seen under that lock, the record `rec` is
 *    frozen and read without it. A connection's (lock) facts change under
 *    its own lock.
 *  - A connection's messages and wire records are append-only arrays of
 *    fixed capacity: the worker fills an entry, then publishes the count
 *    (release); a reader loads the count (acquire) and reads the entries
 *    before it. */
#ifndef TLSPEEK_WEB_STORE_INTERNAL_H
#define TLSPEEK_WEB_STORE_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "filters/filter.h"
#include "filters/tls/tlsparse.h"
#include "filters/transcript/transcript_internal.h"
#include "filters/web/store.h"
#include "filters/web/wire_split.h"

enum { WEB_PENDING = 0, WEB_DONE, WEB_ERROR, WEB_ABORTED };

static inline void web_lock(atomic_flag *l) {
  while (atomic_flag_test_and_set_explicit(l, memory_order_acquire)) sched_yield();
}
static inline void web_unlock(atomic_flag *l) {
  atomic_flag_clear_explicit(l, memory_order_release);
}

#define WEB_WIRE_CHUNK 25
#define WEB_PLAIN_Q 16
#define WEB_WIRE_CHUNKS ((FLT_WEB_MAX_WIRE + WEB_WIRE_CHUNK - 1) / WEB_WIRE_CHUNK)

typedef struct web_wire {
  uint64_t t_us; /* since the connection opened */
  uint8_t leg, sent, kind; /* kind: the record's content type, WEB_KIND_PLAIN or _UNPARSED */
  uint32_t len;
  uint8_t head[FLT_WEB_WIRE_HEX];
  uint8_t head_len;
  _Atomic(char *) plain; /* set once (lock): the plaintext it carried */
  uint16_t plain_len;
} web_wire_t;

struct web_flow;

typedef struct web_conn {
  atomic_int refs;
  uint64_t id;
  uint64_t start_us;
  int file_mode; /* from a transcript: no messages, no wire */
  atomic_flag lock; /* the (lock) facts */
  /* (lock) facts of the connection, copied from flt_conn_t as they appear */
  char client[64], server[300], sni[256];
  char server_host[256];
  uint16_t server_port;
  char ja3[33], ja4[48], ja3s[33];
  char version[2][16], cipher[2][64], alpn[2][32];
  int tls[2];
  /* append-only (counts under the lock) */
  flt_tls_msg_t msgs[FLT_WEB_MAX_MSGS];
  atomic_size_t n_msgs;
  size_t msg_bytes, msgs_dropped; /* worker only */
  uint16_t record_version[2][2];
  web_wire_t *wire[WEB_WIRE_CHUNKS];
  atomic_size_t n_wire;
  atomic_ullong wire_dropped;
  /* worker only: each leg and direction's record splitter ([leg][sent]);
   * per leg, the received ApplicationData entries of the last read still
   * awaiting their plaintext (index + 1, oldest first); the last plaintext
   * per direction, for the record that forwards it */
  int facts_seen; /* a flow end copied the facts after the first request */
  web_split_t split[2][2];
  uint16_t plain_q[2][WEB_PLAIN_Q];
  uint8_t plain_qn[2];
  uint8_t last_plain[2][FLT_WEB_WIRE_PLAIN];
  size_t last_plain_len[2];
  /* worker only: flows answered after the client's EOF (references),
   * decided "done" or "aborted" at on_conn_close (flt_client_aborted) */
  struct web_flow *held;
  /* The facts its last frozen flow took (tr_conn_snap_take), shared by
   * its next flows' records while they stay the same (worker thread). */
  struct tr_conn_snap *snap;
} web_conn_t;

/* What changes while a flow is shown: copied out under the lock. */
typedef struct web_state {
  uint64_t seq;
  int state, done;
  int status; /* 0: none yet */
  char type[96];
  int64_t size, wire; /* -1: none yet */
  double duration;    /* ms; < 0: none yet */
  char proto[16];
  char tls[16];
  char error[160];
} web_state_t;

typedef struct web_flow {
  atomic_int refs;
  uint64_t id; /* (immutable) the store's, 1, 2, ... */
  tr_flow_t *rec; /* fed by the worker; frozen once done; this flow lives
                  * in its allocation (tr_flow_extra) and is freed with it */
  web_conn_t *conn; /* (immutable) a reference */
  /* (immutable) what a pending flow is shown and filtered by; the request
   * head is rec->msg[0].head, copied before the flow is published. A flow
   * kept for the page is small on purpose: 10,000 of them are recycled
   * cold, and each byte written per flow costs the workers. */
  uint64_t core_id;
  char *host; /* in strings[] */
  uint16_t port;
  char scheme[8];
  char *url;      /* (immutable), in strings[] */
  const char *path; /* into url */
  uint64_t started_us;
  uint64_t end_us;              /* worker only: when it ended */
  struct web_flow *held_next;   /* worker only: web_conn_t.held */
  atomic_flag st_lock;
  web_state_t st; /* (lock) */
  char strings[]; /* url, then host */
} web_flow_t;

struct flt_web_store {
  int slot;
  size_t body_cap;
  size_t max;
  pthread_mutex_t mu;
  web_flow_t **ring; /* max entries; the flow with id `first + i` at (first + i) % max */
  uint64_t first, next_id; /* ids first .. next_id - 1 are kept */
  uint64_t dropped, cleared;
  atomic_ullong seq; /* the last change's stamp */
  atomic_int watchers;
  void (*notify)(void *);
  void *notify_ud;
  atomic_ullong next_conn; /* file mode connections */
};

void web_flow_unref(web_flow_t *f);
void web_conn_unref(web_conn_t *c);
/* The flow with `id`, with a reference; NULL when not kept. */
web_flow_t *web_store_get(flt_web_store_t *s, uint64_t id);

/* The connection of a pending flow as expressions read it (its facts,
 * copied under the lock into *c; the rest zero). */
void web_conn_for_expr(flt_web_store_t *s, web_conn_t *wc, flt_conn_t *c);

/* The flow's (lock) fields, copied under the lock. */
void web_state_of(flt_web_store_t *s, web_flow_t *f, web_state_t *st);

/* store_json.c: a flow's SUMMARY (with its state as copied), its DETAIL
 * (SUMMARY, RECORD and CONN). */
void web_json_summary(struct tr_jw *w, const char *key, const web_flow_t *f,
                      const web_state_t *st);
void web_json_detail(flt_web_store_t *s, struct tr_jw *w, web_flow_t *f);

#endif
