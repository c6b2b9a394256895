/* replay_internal.h — what replay_load.c, replay_send.c and
 * replay_filter.c share (replay.h is the contract). */
#ifndef TLSPEEK_REPLAY_INTERNAL_H
#define TLSPEEK_REPLAY_INTERNAL_H

#include <pthread.h>

#include <openssl/evp.h>

#include "filters/util/decode.h"
#include "filters/util/strbuf.h"
#include "proxy/replay/replay.h"

#define PX_REPLAY_HASH_CHUNK (16u << 20) /* decoded bytes per body read, at most */

/* One selected entry: what to send, what was recorded, what came back.
 * The sender fills `client` (under the lock) before it connects; the
 * filter, on a worker's thread, claims the entry by that address and
 * fills the results (under the lock); the sender then reads them. */
typedef struct px_replay_item {
  size_t entry;             /* 1-based position in the file */
  char *method, *url;
  int tls;                  /* https:// */
  char host[256], port[8], authority[300];
  char *request;            /* the bytes after the tunnel, or NULL: not sent */
  size_t request_len;
  char *not_sent;           /* why it is not sent, when request is NULL */
  /* The recording. */
  int rec_status;           /* 0: recorded without a response */
  size_t rec_len;
  int rec_hashed;           /* rec_sha is the whole decoded body's */
  char rec_sha[65];
  /* The replay. */
  char client[64];          /* "127.0.0.1:PORT" of its connection, once connected */
  int claimed;              /* the filter saw its flow */
  int ended;                /* its flow ended */
  int status;               /* 0: no response */
  uint64_t len;             /* decoded response body bytes */
  int hashed;               /* sha is the whole decoded body's */
  char sha[65];
  char *error;              /* the flow's error, or the sender's */
  EVP_MD_CTX *md;           /* while the response body arrives */
  flt_decoder_t *dec;
  flt_strbuf_t decoded;
} px_replay_item_t;

struct px_replay {
  char *file;               /* the name given, for the action line */
  px_replay_item_t *items;
  size_t n_items;
  int concurrency;
  int slot;                 /* the filter's index into fctx[] */
  pthread_mutex_t lock;
  pthread_cond_t cond;      /* an item ended (filter), a sender finished */
  size_t next;              /* the next item a sender takes */
  int running;              /* senders not yet finished */
  int stopping;             /* tlspeek stopped (a signal): take no more entries */
  pthread_t threads[PX_REPLAY_MAX_CONCURRENCY];
  int n_threads;
  px_replay_proxy_t px;
  char *proxyauth_b64;      /* "Basic ..." */
  uv_async_t async;         /* "all done", to the main loop */
  int async_open;           /* under the lock: a sender may signal it */
  void (*done)(void *);
  void *done_arg;
};

/* The hex SHA-256 of `len` bytes into out[65]. */
void px_replay_sha256_hex(const void *data, size_t len, char out[65]);
/* Sets it->error (once; later calls are ignored). Call under the lock. */
void px_replay_item_fail(px_replay_item_t *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
