/* replay.h — `tlspeek replay FILE`: the recorded requests of a transcript
 * sent again through the running proxy, and a comparison of the new
 * answers with the recorded ones (README.md, "Replay").
 *
 * How a replayed request travels: the proxy runs as `tlspeek run` runs it,
 * one explicit (or upstream-mode) listener on 127.0.0.1 at a port the
 * kernel picks, and a sender (replay_send.c) is its client: for an
 * https:// entry it sends CONNECT, then TLS verified against tlspeek's own
 * CA, then the request; for http:// the absolute-form request. So each
 * request takes exactly the path a live client's takes — the codecs, the
 * flows, every action, DNS, connect, upstream TLS with its verification,
 * --upstream-ca, -k, the next proxy, the console, the transcripts and the
 * flow browser — and the core needs no second way in. (A socketpair handed
 * to a worker as a client was the other choice; it would need the core
 * to create sessions outside its accept path and to name a client that
 * has no address.) The cost is one loopback listener for the run's
 * duration, as `tlspeek run` has.
 *
 * Each request gets a connection of its own (Connection: close), so the
 * replay filter (replay_filter.c), the first filter in the chain, knows
 * the entry of a flow by its connection's client address: it tags the
 * flow with flt_flow_action(f, "replayed", "from FILE entry N (recorded
 * 200, 1234 bytes, sha256 0123456789ab…)") and keeps its status, its
 * error and the SHA-256 of its decoded response body for the summary.
 *
 * What is sent (replay_load.c): the method, the URL (absolute), the
 * request's headers as the client sent them when recorded without
 * hop-by-hop fields (Connection and what it names, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-*), Host from the URL and
 * Content-Length recomputed; HTTP/2 pseudo-headers and Expect dropped (the
 * body follows the head at once). The body as
 * the transcript keeps it: decoded, so Content-Encoding is dropped and the
 * body goes as identity; a body the recorder could not decode is kept as
 * received and sent with its Content-Encoding. An entry recorded over
 * HTTP/2 is sent as HTTP/1.1. An entry whose request body was cut by
 * --body-cap when recorded is not sent (a failure in the summary). */
#ifndef TLSPEEK_REPLAY_H
#define TLSPEEK_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "filters/filter.h"
#include "filters/transcript/reader.h"

struct flt_expr;

#define PX_REPLAY_MAX_CONCURRENCY 64
#define PX_REPLAY_IO_TIMEOUT_S 120  /* one read or write of a sender */
#define PX_REPLAY_FLOW_WAIT_MS 5000 /* after its EOF, for the flow's end event */

typedef struct px_replay px_replay_t;

/* Reads `path` ("-": standard input) and makes the requests of the flows
 * `select` matches (NULL: all; body terms see the recorded bodies). The
 * replay does not own `select`. Returns NULL with a sentence in err (the
 * reader's, naming the line or JSON path) when the file is not a
 * readable transcript or memory ran out. */
px_replay_t *px_replay_load(const char *path, const struct flt_expr *select, int concurrency,
                            char *err, size_t errlen);
/* The same from an open reader (not freed here); `name` is the file's name
 * for the action lines. For the fuzz target (tests/fuzz/fuzz_replay_load.c). */
px_replay_t *px_replay_load_reader(flt_reader_t *rd, const char *name,
                                   const struct flt_expr *select, int concurrency, char *err,
                                   size_t errlen);
/* How many entries were selected (each one is sent, or fails). */
size_t px_replay_count(const px_replay_t *r);

/* The replay filter; add it first to the chain, then tell it its slot. */
extern const flt_ops_t px_replay_filter_ops;
void px_replay_set_slot(px_replay_t *r, int slot);

/* What the senders need from the running proxy. */
typedef struct px_replay_proxy {
  uint16_t port;         /* the listener on 127.0.0.1 */
  const char *ca_pem;    /* tlspeek's CA certificate: the senders verify with it */
  const char *proxyauth; /* --proxyauth USER:PASS, or NULL */
} px_replay_proxy_t;

/* Starts the senders (threads with blocking sockets; at most `concurrency`
 * requests in flight, in file order). `done(arg)` runs on `loop`'s thread
 * once every entry is finished (worker.c then stops tlspeek, unless --web
 * keeps the flow browser up until a signal). 0, or -1 (no thread could start). */
int px_replay_start(px_replay_t *r, uv_loop_t *loop, const px_replay_proxy_t *px,
                    void (*done)(void *arg), void *arg);
/* tlspeek is stopping (a signal): the senders take no more entries (those
 * left are "not sent: tlspeek stopped first"). Any thread; NULL is fine. */
void px_replay_stop(px_replay_t *r);
/* Closes the handle px_replay_start made on `loop`; before the loop's last
 * run. Safe when it was not started. */
void px_replay_close(px_replay_t *r);

/* Waits for the senders, then writes the comparison to `out`: one line per
 * entry and the totals, e.g.
 *   replay: entry 2 GET https://api.test/x: 200 -> 404, body differs
 *   replay: 3 requests, 2 same status, 1 changed (GET https://api.test/x:
 *   200 -> 404), 1 body differs
 * Returns the exit status: 0 when every request was sent and answered, 1
 * when one was not (changed answers are reported, not failures). */
int px_replay_report(px_replay_t *r, FILE *out);
void px_replay_free(px_replay_t *r);

#endif
