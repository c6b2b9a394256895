/* console.h — the traffic view on stdout (DESIGN.md §5).
 *
 * Detail levels:
 *   0  nothing
 *   1  one line per flow:
 *        127.0.0.1:51234 → GET https://example.test/path → 200 application/json 1.2 kB 35 ms
 *      (a flow that ended without a response shows "→ ERROR <reason>")
 *   2  + request and response heads (request line / status line and every
 *      header, in wire order)
 *   3  + bodies: content-decoded (gzip, deflate, br, zstd), text shown as
 *      text (charset from Content-Type: UTF-8, ISO-8859-1, US-ASCII), JSON
 *      pretty-printed, anything else as an xxd-style hexdump; cut at
 *      body_limit bytes of decoded body, and the cut is stated.
 *   4  + (later) TLS handshake dissection and the wire view.
 * Raw (non-HTTP) streams are shown at level >= 1 as one line per connection
 * and at level 3 as hexdumps per direction.
 *
 * A flow's block is assembled in memory and written in one piece when the
 * flow ends, so output of concurrent flows never interleaves inside a
 * block. Writing happens on a writer thread (filters/output.h): the event
 * loop never blocks on stdout.
 */
#ifndef TLSPEEK_CONSOLE_H
#define TLSPEEK_CONSOLE_H

#include <stddef.h>

#include "filters/filter.h"

typedef struct flt_console_opts {
  int detail;        /* 0..4 */
  size_t body_limit; /* decoded body bytes shown per message, and raw bytes
                        shown per connection (0 = the default, 4096) */
  int color;         /* -1: auto (fd is a tty and NO_COLOR unset), 0 never,
                        1 always (an explicit choice beats NO_COLOR) */
  int fd;            /* where to write (1 = stdout); not closed */
} flt_console_opts_t;

extern const flt_ops_t flt_console_ops;

/* Creates the console filter instance (`self` for flt_chain_add), with its
 * writer thread. Returns NULL when out of memory or threads. */
void *flt_console_new(const flt_console_opts_t *opts);
/* Tells the instance its slot: the index flt_chain_add returned. Call it
 * before any event; until then the instance shows nothing but errors. */
void flt_console_set_slot(void *self, int slot);
/* Frees it; call after the chain's shutdown event. */
void flt_console_free(void *self);

#endif
