/* worker.h — worker threads: one libuv loop each, each accepting on its own
 * SO_REUSEPORT listener, each with its own pair of SSL_CTXs. State shared by
 * all workers lives in px_shared_t and is read-only or thread-safe. */
#ifndef TLSPEEK_WORKER_H
#define TLSPEEK_WORKER_H

#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "ca/ca.h"
#include "filters/filter.h"
#include "proxy/config.h"
#include "proxy/dns.h"

#define PX_READ_BUF (64 * 1024)
#define PX_HIGH_WATER (256 * 1024) /* stop reading the other side above */
#define PX_LOW_WATER (64 * 1024)   /* resume below */

typedef struct px_shared {
  const px_config_t *cfg;
  ca_t *ca;
  ca_minter_t *minter;
  flt_chain_t chain;
  unsigned char ticket_keys[80];   /* shared so any worker resumes tickets */
  atomic_uint_fast64_t next_session_id;
  atomic_uint_fast64_t next_flow_id;
  atomic_int live_sessions;
  int want_keylog;                 /* a filter records TLS secrets */
  int want_tls_messages;           /* a filter dissects handshakes */
  int want_wire;                   /* a filter shows the bytes on the wire */
} px_shared_t;

/* Upstream TLS sessions, per worker, keyed by "name:port". */
#define PX_UPSESS_SLOTS 256
typedef struct px_upsess {
  char key[280];
  SSL_SESSION *sess;
} px_upsess_t;

struct px_worker;

#define PX_LISTEN_BACKLOG 1024

/* One listening socket of a worker, and the mode connections on it get. */
typedef struct px_listener {
  uv_poll_t poll;             /* readable: connections wait (accept.c says why not uv_listen) */
  struct px_worker *w;
  const px_listen_cfg_t *lc;
  int fd;
  int open;                   /* `poll` is initialised */
} px_listener_t;

typedef struct px_worker {
  int index;
  px_shared_t *shared;
  uv_loop_t loop;
  px_listener_t listeners[PX_MAX_LISTENERS];
  int n_listeners;
  uv_async_t wakeup;          /* "stop accepting" from the main thread */
  uv_timer_t grace;           /* shutdown grace period */
  uv_timer_t backlog_timer;   /* polls the writers' backlog while sessions wait */
  uv_timer_t accept_timer;    /* ends a pause of accepting (out of descriptors) */
  int backlog_waiters;        /* sessions paused for the backlog */
  px_dns_t *dns;              /* this loop's resolver (c-ares) */
  uv_thread_t thread;
  int stopping;
  SSL_CTX *server_ctx;        /* we are the server (client leg) */
  SSL_CTX *client_ctx;        /* we are the client (upstream leg) */
  char readbuf[PX_READ_BUF];  /* one per loop: reads are handled at once */
  struct px_session *sessions;
  int n_sessions;
  int idle_upstreams;         /* sessions holding an idle upstream open */
  int idle_fast;              /* ... of them beyond the limit: released soon */
  int up_setups;              /* sessions setting up their upstream (px_up_setup_t) */
  px_upsess_t upsess[PX_UPSESS_SLOTS];
} px_worker_t;

/* tlsctx.c (px_tlsctx_*) */
int px_tlsctx_make_server(px_worker_t *w, char *err, size_t errlen);
int px_tlsctx_make_client(px_worker_t *w, char *err, size_t errlen);
void px_tlsctx_upsess_store(px_worker_t *w, const char *key, SSL_SESSION *sess);
SSL_SESSION *px_tlsctx_upsess_get(px_worker_t *w, const char *key); /* borrowed */
void px_tlsctx_upsess_clear(px_worker_t *w);
/* The SSL ex_data slot that points back at the owning px_session_t. */
int px_tlsctx_session_index(void);
/* Allocates that slot; call once from the main thread before workers run. */
void px_tlsctx_init_index(void);

/* accept.c (px_accept_*) */
/* Listens on l->fd and accepts its connections on `w`'s loop. Call before
 * the loop runs. 0 or a negative errno. */
int px_accept_listener_start(px_worker_t *w, px_listener_t *l);
/* Stops accepting and closes l->fd; on the worker's thread. */
void px_accept_listener_close(px_listener_t *l);
/* Raises the soft RLIMIT_NOFILE to the hard limit (warns if refused). */
void px_accept_fd_limit_raise(void);
/* One info line: the limit, and how many connections it leaves room for. */
void px_accept_fd_limit_report(void);

/* worker.c */
void px_worker_session_gone(px_worker_t *w);
/* Starts polling the writers' backlog (sessions wait for it to drain). */
void px_worker_watch_backlog(px_worker_t *w);

#endif
