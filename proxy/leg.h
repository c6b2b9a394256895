/* leg.h — one side of a session: a TCP connection, optionally with TLS over
 * memory BIOs (tls.h), its EOF, whether its reads are paused, and the writes
 * it has in flight (proxy/README.md).
 *
 * A session has two legs, the client's and the upstream's, of this one type.
 * The leg moves bytes; what they mean is the owner's business: it learns of
 * them through the leg's ops (function pointers), so leg.c calls into no
 * other file of the core. All of it runs on the owner's loop thread.
 *
 * Buffers: a read's bytes live in the loop's shared read buffer (`readbuf`)
 * until ops->on_read returns. px_leg_write_owned() takes a malloc'd buffer
 * and frees it when the write completes (or fails).
 */
#ifndef TLSPEEK_LEG_H
#define TLSPEEK_LEG_H

#include <stddef.h>

#include <uv.h>

#include "filters/filter.h"
#include "filters/util/strbuf.h"
#include "proxy/tls.h"

typedef struct px_leg px_leg_t;
struct px_codec;

/* What a leg tells its owner. Every callback is required unless said. */
typedef struct px_leg_ops {
  /* Bytes (or the end: nread < 0, UV_EOF or an error) read from the
   * socket, as libuv gives them. */
  void (*on_read)(px_leg_t *leg, ssize_t nread, const char *data);
  /* A write (or the shutdown of px_leg_shutdown) completed; `status` is
   * libuv's. leg->writes already counts it out; its buffer is freed. */
  void (*on_written)(px_leg_t *leg, int status, int shutdown);
  /* Plaintext decrypted by px_leg_tls_read, in order. */
  void (*on_plaintext)(px_leg_t *leg, const char *data, size_t len);
  /* Asked before each decryption of px_leg_tls_read: 0 stops it (the
   * session is closing, or the side ended meanwhile). */
  int (*may_read)(px_leg_t *leg);
  /* Optional: the bytes of every write, before it goes out (wire events). */
  void (*on_wire_out)(px_leg_t *leg, const void *data, size_t len);
} px_leg_ops_t;

struct px_leg {
  uv_tcp_t tcp; /* first: a stream's address is its leg's; tcp.data is the owner */
  px_tls_t tls; /* tls.ssl is NULL on a plain leg */
  const px_leg_ops_t *ops;
  void *owner;
  flt_leg_t side;       /* FLT_LEG_CLIENT or FLT_LEG_UPSTREAM */
  char *readbuf;        /* the loop's read buffer, PX_LEG_READ_BUF bytes */
  int tcp_open;         /* tcp is initialised (a close callback is to come) */
  int eof;              /* the peer is done sending (FIN or close_notify) */
  int paused;           /* reads stopped for backpressure */
  int writes;           /* write and shutdown requests in flight */
  int batching;         /* sends are gathered in `batch` (px_leg_batch_*) */
  flt_strbuf_t batch;   /* output gathered while one input is handled */
  flt_strbuf_t pending; /* bytes for the peer before the leg is ready */
  struct px_codec *codec; /* what the leg's bytes mean (proxy/codec/codec.h):
                             the owner's, set and freed by it; leg.c never
                             touches it */
  int wanted;           /* the owner wants reads (px_leg_read_start, px_leg_want_read) */
  int budgeted;         /* reads are rationed by `budget` (px_leg_set_budget) */
  int64_t budget;       /* bytes the leg may still read */
  size_t budget_min;    /* reads stop while fewer than this are left */
};

#define PX_LEG_READ_BUF (64 * 1024)

/* Sets the leg up (no socket yet): tcp is not initialised. `pending_cap` is
 * the cap of `pending`, what may wait before the leg is ready. */
void px_leg_init(px_leg_t *leg, flt_leg_t side, const px_leg_ops_t *ops, void *owner, char *readbuf,
                 size_t pending_cap);
/* Frees what px_leg_init and the TLS set-up allocated (the handle is
 * closed apart, by px_leg_close). */
void px_leg_free(px_leg_t *leg);

/* Initialises the TCP handle (uv_tcp_init_ex with `family`, AF_UNSPEC for
 * none): 0, or libuv's negative error when no socket could be made (the
 * handle then needs no close). */
int px_leg_open(px_leg_t *leg, uv_loop_t *loop, unsigned family);
/* Closes the handle when it is open and not closing; `cb` runs with the
 * handle (its data is the owner). Returns 1 when a close was started. */
int px_leg_close(px_leg_t *leg, uv_close_cb cb);
/* The handle's close callback ran: the leg has no socket any more. */
void px_leg_closed(px_leg_t *leg);

/* Starts reading (and clears `paused`); 0 or libuv's error. */
int px_leg_read_start(px_leg_t *leg);
/* Backpressure: stops reads when `want` is 0, starts them again when 1;
 * does nothing when already so. */
void px_leg_want_read(px_leg_t *leg, int want);
/* A read budget (throttle.c): while `on`, each read takes at most the
 * bytes left in the budget, reads stop when fewer than `min` are left
 * (whatever px_leg_want_read asks) and start again, when wanted, once the
 * budget is topped up here. `add` is added to what is left, which is kept
 * at or below `cap`; off, reads are as wanted again. */
void px_leg_set_budget(px_leg_t *leg, int on, int64_t add, int64_t cap, size_t min);
/* Whether the leg may read on while its peer has `queued` bytes waiting:
 * below the high-water mark while reading, below the low-water mark to
 * start again (hysteresis). */
int px_leg_room(const px_leg_t *leg, size_t queued, size_t low, size_t high);
/* Bytes waiting in the kernel-bound queue of the handle (0 when closed). */
size_t px_leg_queued(const px_leg_t *leg);

/* Writes `buf` (malloc'd, owned from here on; freed when done). Returns 0,
 * or libuv's negative error (buf freed, nothing in flight). */
int px_leg_write_owned(px_leg_t *leg, void *buf, size_t len);
/* Writes out whatever TLS wants to send; 0 or libuv's negative error. */
int px_leg_flush_tls(px_leg_t *leg);
/* Sends application bytes: through TLS when the leg has it, else a copy
 * written as they are. 0; -1 when TLS refused them (OpenSSL's error queue
 * says why); or libuv's negative error. */
int px_leg_send(px_leg_t *leg, const void *data, size_t len);
/* Ends sending: close_notify first on a TLS leg whose handshake is done
 * (when `notify`), then a FIN after the queued writes (counted in writes;
 * ops->on_written with shutdown = 1). 0 or libuv's negative error. */
int px_leg_shutdown(px_leg_t *leg, int notify);
/* Best effort close_notify written at once (uv_try_write, no request
 * outlives the call), for a leg about to close: a clean end keeps a TLS
 * session resumable. Returns the bytes written, 0 when nothing was. */
int px_leg_tls_close_now(px_leg_t *leg);

/* Result of px_leg_tls_read. */
typedef enum px_leg_read {
  PX_LEG_READ_AGAIN = 0, /* all decrypted; more needs more bytes */
  PX_LEG_READ_STOPPED,   /* ops->may_read said stop */
  PX_LEG_READ_CLOSED,    /* close_notify received */
  PX_LEG_READ_ERROR      /* a TLS error: OpenSSL's error queue says which */
} px_leg_read_t;
/* Decrypts everything fed so far, giving each piece to ops->on_plaintext
 * (in the leg's read buffer). Unless stopped, the caller then writes out
 * what TLS wants to send (alerts, key updates: px_leg_flush_tls). */
px_leg_read_t px_leg_tls_read(px_leg_t *leg);

/* Output gathering: between begin and end, px_leg_gather() keeps the bytes;
 * px_leg_batch_take() hands the gathered bytes over (and ends gathering). */
static inline void px_leg_batch_begin(px_leg_t *leg) {
  leg->batching = 1;
}
flt_strbuf_t px_leg_batch_take(px_leg_t *leg);

#endif
