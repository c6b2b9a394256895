/* store.h — the flow store behind the web page (`--web`, `tlspeek web FILE`):
 * a filter that keeps the last `max_flows` flows (older ones are dropped and
 * counted), their heads and bodies (up to body_cap each, decoded as the
 * transcripts decode them), and per connection the TLS messages of both
 * legs, the certificates, JA3/JA4/JA3S and the first FLT_WEB_MAX_WIRE
 * records on the wire with the plaintext they carried. The JSON it prints
 * is the contract of /work/.../web-api.md, written with the transcripts'
 * JSON writer (filters/transcript/jsonw.c).
 *
 * Threads: flows arrive on worker threads through the flt_ops_t; the web
 * server's thread asks the questions below. Both sides take one mutex for
 * short, bounded steps only (no JSON is built and no expression runs while
 * it is held), so a worker never waits for a page. A flow is visible from
 * its request head on ("pending"); its record is frozen at flow end and
 * then read without the lock. With no watcher (no page connected) a flow
 * costs its record's copies and a few lock/unlock pairs: no wake-up and no
 * JSON (`make bench`, row tlspeek-web).
 */
#ifndef TLSPEEK_WEB_STORE_H
#define TLSPEEK_WEB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "filters/transcript/reader.h"

#define FLT_WEB_DEFAULT_FLOWS 10000
/* Wire records kept per connection (then only counted: wire_dropped). */
#define FLT_WEB_MAX_WIRE 200
/* Bytes of a wire record shown as hex, and of its plaintext. */
#define FLT_WEB_WIRE_HEX 64
#define FLT_WEB_WIRE_PLAIN 256
/* TLS messages kept per connection, and their bytes. */
#define FLT_WEB_MAX_MSGS 48
#define FLT_WEB_MAX_MSG_BYTES (1024u * 1024)

typedef struct flt_web_store flt_web_store_t;
struct flt_expr;
struct tr_jw;

extern const flt_ops_t flt_web_ops;

/* `max_flows` 0 means FLT_WEB_DEFAULT_FLOWS. NULL when out of memory. */
flt_web_store_t *flt_web_store_new(size_t max_flows, size_t body_cap);
void flt_web_store_set_slot(void *self, int slot);
/* After the chain's on_shutdown and the server's stop. */
void flt_web_store_free(flt_web_store_t *s);

/* `notify(ud)` is called after a change (on the thread that made it,
 * outside the lock) while at least one watcher is registered: the server
 * passes uv_async_send. flt_web_store_watch(+1/-1) counts watchers. */
void flt_web_store_set_notify(flt_web_store_t *s, void (*notify)(void *), void *ud);
void flt_web_store_watch(flt_web_store_t *s, int delta);

/* `tlspeek web FILE`: one flow read back by the transcript reader, stored
 * as if it had just ended (bodies as recorded, already decoded). */
int flt_web_store_add_recorded(flt_web_store_t *s, const flt_rec_flow_t *rf);

/* ---- questions (the web thread) ------------------------------------------ */

typedef struct flt_web_counts {
  uint64_t count;   /* flows kept */
  uint64_t dropped; /* flows dropped since the start (memory bound) */
  uint64_t max;     /* max_flows */
  uint64_t seq;     /* the last change */
  uint64_t cleared; /* how many times the list was cleared */
} flt_web_counts_t;
void flt_web_store_counts(flt_web_store_t *s, flt_web_counts_t *out);

/* Appends to w, as elements of an array the caller opened, the SUMMARY of
 * each kept flow with seq > after that `filter` (may be NULL) matches, in
 * list order. *last_seq gets the store's seq at the time of the snapshot.
 * Returns how many were written, or -1 when out of memory. */
long flt_web_store_summaries(flt_web_store_t *s, struct tr_jw *w, const struct flt_expr *filter,
                             uint64_t after, uint64_t *last_seq);

/* Appends DETAIL of flow `id` (an object). 0, or -1 when not kept. */
int flt_web_store_detail(flt_web_store_t *s, uint64_t id, struct tr_jw *w);

/* A copy of one body (malloc()ed, free() it; may be NULL with len 0 for
 * an empty body): decoded unless `raw`. ctype gets the message's
 * Content-Type without parameters (or ""). 0; -1 when the flow is not
 * kept; -2 when the message has no body. */
int flt_web_store_body(flt_web_store_t *s, uint64_t id, flt_dir_t dir, int raw, char **data,
                       size_t *len, char *ctype, size_t ctype_len);

/* A request as recorded, for copy-as-curl and resend: a copy owned by the
 * caller (flt_web_request_free). `complete` is 0 when the body was cut
 * (body_cap) or could not be decoded. */
typedef struct flt_web_request {
  char *method;
  char *url;
  char **names, **values; /* headers in wire order, as the client sent them */
  size_t n_headers;
  char *body;
  size_t body_len;
  int has_body;
  int complete;
} flt_web_request_t;
int flt_web_store_request(flt_web_store_t *s, uint64_t id, flt_web_request_t *out);
void flt_web_request_free(flt_web_request_t *r);

/* Appends a HAR 1.2 document (the --har writer's entries) holding the
 * finished flows among `ids` (n of them; ids NULL: every kept flow).
 * Returns the number of entries, or -1 when out of memory. */
long flt_web_store_har(flt_web_store_t *s, const uint64_t *ids, size_t n, const char *version,
                       struct tr_jw *w);

/* --intercept: tlspeek's flow id (RECORD.id) of the list's flow `id`, and
 * the list id of tlspeek's flow `flow_id` (newest first); 0 when not kept. */
uint64_t flt_web_store_flow_id(flt_web_store_t *s, uint64_t id);
uint64_t flt_web_store_list_id(flt_web_store_t *s, uint64_t flow_id);

/* Empties the list (ids and seq go on growing). */
void flt_web_store_clear(flt_web_store_t *s);

#endif
