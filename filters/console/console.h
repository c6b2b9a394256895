/* console.h — the traffic view on stdout (README.md, "What is shown").
 *
 * Detail levels, and the exact lines (end-to-end tests grep them; without
 * colour the output is byte-exact as shown):
 *   0  nothing
 *   1  one line per flow, when it ends:
 *        127.0.0.1:51234 → GET https://example.test/path → 200 application/json 1.2 kB 35 ms
 *      i.e. client, method, flow URL, status, the Content-Type's media type
 *      (lower-case, no parameters; "-" when absent), the response body size
 *      as received (decimal units: "0 B", "512 B", "1.2 kB", "50.0 MB")
 *      and the time from request head to response end in whole ms.
 *      A flow that ended in an error (or without a response):
 *        127.0.0.1:51234 → GET https://example.test/path → ERROR <f->error>
 *   2  + the heads, after the line, header names and order as on the wire:
 *        "  > GET /path HTTP/1.1", "  > Name: value" ...
 *        "  < HTTP/1.1 200 OK",    "  < Name: value" ...
 *   3  + each body after its head, every line indented by four spaces:
 *      content-decoded (gzip, x-gzip, deflate, br, zstd, stacked); text
 *      (text/..., JSON, JavaScript, XML, form data, or clean UTF-8; charset
 *      ISO-8859-1 is converted) as lines; JSON re-indented two spaces per
 *      level; anything else as an xxd-style hexdump (hexdump.h). Empty
 *      bodies add nothing. Cuts and failures are stated:
 *        "    … body cut at 4096 of 52428800 bytes (--body-limit)"
 *        "    … body cut at 4096 decoded bytes of 81234 bytes gzip (--body-limit)"
 *        "    (gzip: could not decode: incorrect header check)" + a hexdump of
 *        the bytes as received
 *   4  + (later) TLS handshake dissection and the wire view.
 * Raw (non-HTTP) streams, at close, at level >= 1:
 *        127.0.0.1:51234 ⇄ raw db.test:5432 120 B in, 4096 B out
 *   and at level 3 each chunk as it passes, up to body_limit bytes per
 *   connection ("> " client to server, "< " server to client; offsets count
 *   per direction), plus a cut note after the close line:
 *        127.0.0.1:51234 ⇄ raw db.test:5432 > 6 B
 *            00000000: 4845 4c4c 4f00                           HELLO.
 *            … raw data cut at 4096 of 10000 bytes (--body-limit)
 * Connection errors (on_error), at level >= 1:
 *        127.0.0.1:51234 ✗ <message>
 * Bytes from the wire never reach the terminal raw: control characters and
 * invalid UTF-8 are shown as \xNN.
 *
 * A flow's block is assembled in memory and written in one piece when the
 * flow ends, so output of concurrent flows never interleaves inside a
 * block. Writing happens on a writer thread (filters/util/output.h): the event
 * loop never blocks on stdout. Callbacks may run on several workers at
 * once: per-flow and per-connection state lives in fctx[slot], and the
 * instance itself is read-only after flt_console_set_slot().
 */
#ifndef TLSPEEK_CONSOLE_H
#define TLSPEEK_CONSOLE_H

#include <stddef.h>

#include "filters/filter.h"
#include "filters/util/output.h"

typedef struct flt_console_opts {
  int detail;        /* 0..4 */
  size_t body_limit; /* decoded body bytes shown per message, and raw bytes
                        shown per connection (0 = the default, 4096) */
  int color;         /* -1: auto (fd is a tty and NO_COLOR unset), 0 never,
                        1 always (an explicit choice beats NO_COLOR) */
  int fd;            /* where to write (1 = stdout); not closed */
  int filtered;      /* an expression (-f) chooses the flows shown: each is
                        decided at its end, so at detail >= 2 its request
                        part waits for it too */
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
/* The console's writer and its resolved colour choice (0 or 1), for other
 * views that write to the same stdout without interleaving blocks (the
 * TLS view). Valid at any detail level, 0 included, until
 * flt_console_free(). */
flt_output_t *flt_console_output(void *console);
int flt_console_color(void *console);

#endif
