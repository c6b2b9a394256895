/* transcript_internal.h — the pieces the recording filters (har.c,
 * jsonl.c, pcap.c, keylog.c) share, implemented in writer.c, flowjson.c
 * and (bodies) flowbody.c:
 *
 *  - tr_writer_t (writer.c): one writer thread per transcript file. The
 *    event loops queue jobs (or append records to chunks) and return; the
 *    thread runs them in order. The first failure is reported once
 *    (flt_log_warn, naming the file and strerror) and stops that sink for
 *    good; proxying goes on.
 *  - tr_flow_t: one flow as a transcript records it — copies of both heads,
 *    the bodies decoded as they stream in (capped at body_cap), and at flow
 *    end a frozen copy of the flow and its connection, so that the writer
 *    thread can format it after the core has freed the original.
 *  - tr_recorder_t: the flow-event handlers HAR and JSON lines have in
 *    common (collect a tr_flow_t per flow, queue it at flow end). Two
 *    recorders can share their records (tr_rec_share): each flow is then
 *    copied once, and its bodies encoded once, for both files.
 *  - tr_body_t: a body as both formats store it (text or base64), escaped
 *    for JSON once for both.
 *  - tr_jw_t: the JSON writer both formats print entries with (jsonw.c).
 */
#ifndef TLSPEEK_TRANSCRIPT_INTERNAL_H
#define TLSPEEK_TRANSCRIPT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "filters/util/decode.h"
#include "filters/filter.h"
#include "filters/util/strbuf.h"

/* Bytes of jobs a writer holds before it drops new ones (and says so
 * once): a disk that cannot keep up must not eat the machine. */
#define TR_MAX_QUEUED (256u * 1024 * 1024)
/* Encoded body bytes fed to a decoder, as a multiple of body_cap: a body
 * that decodes to (almost) nothing must not keep a worker busy forever. */
#define TR_MAX_ENCODED_RATIO 2
/* How long a writer thread waits for more jobs before it runs them (it
 * takes them at most this often): a file is about this much behind its last
 * flow at most. Sooner when TR_GATHER_BYTES are queued (a bulk download).
 * writer.c says why. */
#define TR_GATHER_NS (20 * 1000000L)
#define TR_GATHER_BYTES ((size_t)8 << 20)
/* Bytes of a head copy (its header array and strings), and of a URL, that a
 * flow's record holds without an allocation. */
#define TR_INLINE_HEAD 1024
#define TR_INLINE_URL 256
/* Longest ISO 8601 time we print: "2024-01-31T23:59:59.123Z". */
#define TR_ISO_LEN 32

/* ---- the writer thread ------------------------------------------------ */

/* Every job starts with this header (the queue is intrusive). */
typedef struct tr_job {
  struct tr_job *next;
  size_t cost;    /* bytes it holds, counted against TR_MAX_QUEUED */
  uint64_t order; /* when it was made (µs): the jobs of different threads
                   * are run in this order, each thread's in its own */
  int is_chunk;   /* a tr_chunk_t (tr_writer_reserve); set by the writer */
} tr_job_t;

/* Records of a byte sink (PCAP, key log), appended by tr_writer_reserve /
 * tr_writer_commit: the job its write_list gets. Freed (kept for re-use)
 * by the writer, never by free_job. */
#define TR_CHUNK_SIZE ((size_t)128 << 10)
typedef struct tr_chunk {
  tr_job_t job;
  size_t len, size; /* bytes in data; room */
  char data[];
} tr_chunk_t;

typedef struct tr_sink_ops {
  /* Runs on the writer thread, in queue order. Returns 0 or an errno
   * value; after a failure no job of this sink runs again. */
  int (*write)(void *sink, tr_job_t *job);
  /* Optional, replaces `write`: runs every job the thread took from the
   * queue at once (linked by `next`, in queue order), so that a sink of
   * many small jobs can write them with one writev(2). The jobs are freed
   * afterwards by the writer, not by this. 0 or an errno value. */
  int (*write_list)(void *sink, tr_job_t *list);
  /* Optional: runs when the queue has drained (e.g. fflush). */
  int (*flush)(void *sink);
  /* Frees a job, whether it ran or not. */
  void (*free_job)(tr_job_t *job);
} tr_sink_ops_t;

typedef struct tr_writer tr_writer_t;

/* `label` ("HAR file") and `path` name the sink in messages (and the
 * thread: "tlspeek-har"). Returns NULL with a sentence in err when the
 * thread cannot start. */
tr_writer_t *tr_writer_new(const char *label, const char *path, const tr_sink_ops_t *ops,
                           void *sink, char *err, size_t errlen);
/* Queues `job` (ownership passes to the writer; set job->order first).
 * Thread-safe, never waits for the disk, takes no lock another producer
 * takes (writer.c says why). A failed or full writer frees the job at once. */
void tr_writer_put(tr_writer_t *w, tr_job_t *job);
/* For byte sinks: room for `n` bytes of records at the end of this thread's
 * open chunk (a new chunk, ordered by `order`, when they do not fit);
 * write them there, then call tr_writer_commit with the bytes used, on the
 * same thread, before any other call of this writer. NULL (and no commit)
 * when the writer failed or is full. The chunk goes to the writer thread
 * when full or when the thread next takes the queue (within about
 * TR_GATHER_NS). */
char *tr_writer_reserve(tr_writer_t *w, size_t n, uint64_t order);
void tr_writer_commit(tr_writer_t *w, size_t used);
/* Non-zero once a write failed: callers may skip building jobs. */
int tr_writer_failed(tr_writer_t *w);
/* Waits until every job queued (and every record committed) so far has
 * run. */
void tr_writer_flush(tr_writer_t *w);
/* Flushes, stops the thread, frees. The sink itself is the caller's. */
void tr_writer_free(tr_writer_t *w);

/* Helpers for sinks: write(2)/writev(2) everything; 0 or errno.
 * tr_writev_all writes at `off` (pwritev), or at the file position when
 * `off` < 0 (writev); it consumes `iov` (advances past what was written). */
int tr_write_all(int fd, const void *data, size_t len);
struct iovec;
int tr_writev_all(int fd, struct iovec *iov, int n, off_t off);
/* Write-behind for a transcript file (written once, front to back, up to
 * gigabytes): each time another TR_BEHIND_WINDOW bytes were appended, the
 * sink starts writing them back to disk, waits for the window before them
 * to be on disk and drops that one from the page cache. The file then
 * holds at most about two windows of dirty or cached pages, and its next
 * writes can reuse pages it just freed instead of touching fresh memory.
 * On the VM the benchmark runs on (which hands free memory back to its
 * host), writing 3 GB into fresh page-cache pages took about seven times
 * the CPU of writing it this way, and in the bulk benchmark the PCAP
 * writer's CPU fell to a third. Advice only: off for anything but a
 * regular file, and off for good after the first error (the data is
 * written either way). A disk slower than the traffic now slows the
 * writer (and so, through backpressure, the traffic) after two windows
 * rather than after the kernel's dirty-page limits. Writer thread only. */
#define TR_BEHIND_WINDOW ((off_t)32 << 20)
typedef struct tr_behind {
  int on;
  off_t queued;  /* writeback started up to here */
  off_t dropped; /* dropped from the page cache up to here */
} tr_behind_t;
/* `start`: the offset up to which the file is written already. */
void tr_behind_init(tr_behind_t *b, int fd, off_t start);
/* The file is now written up to `end` (and never rewritten before it). */
void tr_behind_advance(tr_behind_t *b, int fd, off_t end);

/* Writing a transcript file (trout.c): the whole pages in the middle of a
 * write go to the disk with O_DIRECT through a reused buffer, the partial
 * pages at its ends through the page cache (with write-behind), so the
 * file is whole after every tr_out_write and no direct write covers a page
 * the page cache holds dirty; where O_DIRECT is not available (or not
 * worth it: tmpfs) every write is an ordinary one. Writer thread only. */
#define TR_DIO_ALIGN ((size_t)4096)    /* at least: offsets, lengths, buffer address */
#define TR_DIO_MIN ((size_t)64 << 10)  /* less in whole pages: an ordinary write */
#define TR_DIO_BUF ((size_t)2 << 20)   /* the aligned buffer */
typedef struct tr_out {
  int fd;             /* the sink's descriptor */
  int seekable;       /* written at offsets (else at its position: a pipe) */
  int dfd;            /* the same file opened O_DIRECT; -1: ordinary writes */
  int direct_ok;      /* a direct write succeeded (a failure after it is an error) */
  off_t page;         /* the alignment: the page size, at least TR_DIO_ALIGN */
  off_t dirty_to;     /* the end of the last write: pages the cache may hold dirty */
  char *buf;          /* TR_DIO_BUF bytes, page-aligned, made on first use */
  /* pwrite(2) on dfd; tests put a failing one in its place. */
  ssize_t (*dpwrite)(int fd, const void *buf, size_t n, off_t at);
  tr_behind_t behind; /* for what goes through the page cache */
} tr_out_t;
/* `start`: the file's size now. */
void tr_out_init(tr_out_t *o, int fd, off_t start);
/* Writes iov at `off` (at most the end of what was written: the bytes from
 * `off` on are replaced), or at the file's position when it cannot seek (a
 * pipe, /dev/stdout); the bytes before `keep` will not be written again.
 * 0, or errno (the sink's warning then says it). iov may be consumed. */
int tr_out_write(tr_out_t *o, struct iovec *iov, int n, off_t off, off_t keep);
/* Ordinary writes from now on (tests use it to compare both ways). */
void tr_out_buffered(tr_out_t *o);
/* Closes the second descriptor; the sink's stays the sink's. */
void tr_out_free(tr_out_t *o);

/* Opens `path` with `flags` (O_CREAT implied) and `mode`; on failure -1
 * and "cannot open <label> <path>: <strerror>" in err. A regular file that
 * is not empty is stated on stderr first: with O_TRUNC the warning
 * "overwriting existing <label> <path> (<size> B)", with O_APPEND the info
 * line "<label> <path> exists (<size> B): appending to it". */
int tr_open(const char *label, const char *path, int flags, int mode, char *err, size_t errlen);

/* Large buffers (bodies near body_cap, and their base64) kept for the next
 * flow instead of freed: malloc serves blocks this large from fresh pages
 * (mmap, or a heap it trims), and in a bulk download touching those pages
 * (a fault and a zeroed page every 4 KiB) cost more than encoding them.
 * Blocks from TR_BIG_MIN to TR_BIG_MAX bytes; at most TR_BIG_KEEP are kept
 * (so at most 48 MiB stay allocated after a burst of large bodies). */
#define TR_BIG_MIN ((size_t)1 << 20)
#define TR_BIG_MAX ((size_t)16 << 20)
#define TR_BIG_KEEP 3
/* A block of at least `size` bytes (its size in *got), or NULL. Any thread. */
char *tr_big_get(size_t size, size_t *got);
/* Frees `p` (of `size` bytes, from malloc or tr_big_get), or keeps it. */
void tr_big_put(char *p, size_t size);

/* ---- one recorded flow -------------------------------------------------- */

typedef struct tr_msg {
  int present;     /* a head was seen */
  flt_head_t head; /* deep copy; strings live in `store` */
  char *store;     /* `inline_store`, or malloc'd when the head is larger */
  /* Most heads fit: a flow's record then takes no allocation of its own
   * for them (nor for its URL, url_inline). */
  _Alignas(flt_header_t) char inline_store[TR_INLINE_HEAD];
  char cenc[128];         /* Content-Encoding ("" = identity) */
  flt_decoder_t *dec;     /* created with the first body byte */
  flt_strbuf_t decoded;   /* cap: body_cap */
  flt_strbuf_t raw;       /* encoded bytes, for a failed decode; cap body_cap */
  uint64_t fed;           /* encoded bytes handed to the decoder */
  uint64_t size_hint;     /* Content-Length of an identity body, else 0 */
  int truncated;          /* body_cap (or the encoded-input cap) cut it */
  char decode_error[160]; /* "gzip: incorrect header check", or "" */
} tr_msg_t;

/* A message body as a transcript stores it. */
typedef struct tr_body {
  const char *text; /* UTF-8 text, or base64 when `base64`; NUL-terminated */
  size_t len;       /* of text */
  char *alloc;      /* tr_big_put this (text, when it is not the record's) */
  size_t alloc_size;
  int base64;
  uint64_t size; /* decoded size (lower bound when truncated) */
  int decoded;   /* a Content-Encoding was removed */
  int truncated;
  const char *decode_error; /* then `text` is the body as received */
  /* `text` as the inside of a JSON string, escaped as cJSON escapes it;
   * `text` itself when nothing needs escaping (base64 never does). */
  const char *json;
  size_t json_len;
  char *json_alloc; /* free() this */
} tr_body_t;

struct tr_recorder;
struct tr_flow;

/* The job a recorder queues: the frozen flow. It lives in the record (one
 * per recorder sharing it), so queueing a flow allocates nothing. */
typedef struct tr_flow_job {
  tr_job_t job;
  struct tr_flow *rec;
} tr_flow_job_t;

/* A connection's facts as a flow ended, shared (reference-counted, any
 * thread) by the records of the flows that ended while they stayed the
 * same: a keep-alive connection's flows take one copy, not one each.
 * Only the facts up to bytes_in are compared and kept; the counters, the
 * filters' contexts and the client's EOF times after them are zero. */
/* JSON text made from a snapshot once, for every flow that shares it
 * (tr_jw_kcached): the TLS facts are the same for every flow of a
 * keep-alive connection, and escaping them (the JA3 string alone is about
 * a hundred bytes) was about a tenth of each writer's work per flow. */
enum { TR_FRAG_HAR_TLS, TR_FRAG_JSONL_TLS, TR_FRAG_N };
typedef struct tr_frag {
  size_t len;
  char text[];
} tr_frag_t;
typedef struct tr_conn_snap {
  atomic_int refs;
  _Atomic(tr_frag_t *) frag[TR_FRAG_N]; /* set once, by whichever writer is first */
  flt_conn_t conn;
} tr_conn_snap_t;
/* A reference to a snapshot of `c`: the one in *cache when c's facts are
 * still those (*cache then keeps its own reference), else a new one that
 * replaces it there. `cache` may be NULL (a new one every time). NULL when
 * out of memory. Only on the thread of c's events. */
tr_conn_snap_t *tr_conn_snap_take(tr_conn_snap_t **cache, const flt_conn_t *c);
/* Drops a reference (NULL is fine; any thread). */
void tr_conn_snap_release(tr_conn_snap_t *s);

typedef struct tr_flow {
  size_t body_cap;
  int first_on_conn; /* this flow paid for the upstream set-up */
  tr_msg_t msg[2];   /* by flt_dir_t */
  /* Filled by tr_flow_freeze(): the flow as it ended, self-contained.
   * flow.conn points at conn->conn (at zeros when the flow had no
   * connection); flow.req/resp at msg[].head. */
  tr_conn_snap_t *conn;
  flt_flow_t flow;
  char *url; /* url_inline, or malloc'd */
  char url_inline[TR_INLINE_URL];
  char *error;
  char *actions; /* flow.actions, copied */
  int frozen; /* 1 after tr_flow_freeze, -1 when it ran out of memory */
  /* Also filled by tr_flow_freeze(): msg[].head is the head as forwarded;
   * when an action (--set-header, --remove-header) changed it, the head
   * as received is here (has_received[dir]). And the interim (1xx)
   * responses, in order. */
  flt_head_t received[2];
  char *received_store[2];
  int has_received[2];
  flt_head_t interim[FLT_MAX_INTERIM];
  char *interim_store[FLT_MAX_INTERIM];
  size_t n_interim;
  /* The response's trailers (HTTP/2), when it had any. */
  flt_head_t trailers;
  char *trailers_store;
  int has_trailers;
  /* Sharing (tr_rec_share): the recorder that made the record feeds it;
   * every recorder given it holds a reference and queues it; the writer
   * that drops the last one frees it. `sharers` is how many were given it. */
  const struct tr_recorder *owner;
  int sharers;
  atomic_int refs;
  tr_flow_job_t jobs[2]; /* one per sharer; n_jobs used (event thread) */
  int n_jobs;
  /* The bodies, prepared once by the first writer that asks (any thread). */
  pthread_mutex_t body_mu;
  int bodies_state; /* 0 not yet, 1 ready, -1 out of memory */
  tr_body_t bodies[2];
  /* The WebSocket messages of an upgraded flow (wslog.c), or NULL. */
  struct tr_ws_log *ws;
} tr_flow_t;

/* A record with one reference. */
tr_flow_t *tr_flow_new(size_t body_cap);
/* The same, with `extra` bytes after it (aligned for any type; not
 * initialised) in the same allocation, freed with it: tr_flow_extra(r). */
tr_flow_t *tr_flow_new_extra(size_t body_cap, size_t extra);
#define TR_FLOW_EXTRA_OFF \
  ((sizeof(tr_flow_t) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t))
static inline void *tr_flow_extra(tr_flow_t *r) {
  return (char *)r + TR_FLOW_EXTRA_OFF;
}
/* A deep copy of `h` into *out, its arrays and strings in one block that
 * replaces *store: `inl` (inl_size bytes, aligned for flt_header_t) when
 * the copy fits there, else malloc()ed (free() it when it is not `inl`).
 * `inl` may be NULL. 0, or -1 when out of memory (*out stays as it was). */
int tr_head_copy(const flt_head_t *h, flt_head_t *out, char **store, char *inl,
                 size_t inl_size);
/* Copies a head (its arrays are only borrowed for the event). A second
 * head in the same direction (after a 1xx) replaces the first. */
int tr_flow_head(tr_flow_t *r, flt_dir_t dir, const flt_head_t *h);
void tr_flow_body(tr_flow_t *r, flt_dir_t dir, const uint8_t *p, size_t n);
/* Ends the decoders and copies `f` and its connection (a snapshot from
 * tr_conn_snap_take(conn_cache, f->conn)). Only on the thread of the
 * flow's events, before the record is queued. */
int tr_flow_freeze(tr_flow_t *r, const flt_flow_t *f, tr_conn_snap_t **conn_cache);
/* Bytes the record holds (for the writer's queue bound). */
size_t tr_flow_cost(const tr_flow_t *r);
/* Drops a reference (any thread); the last one frees the record. */
void tr_flow_release(tr_flow_t *r);

/* Both bodies of a frozen record (by flt_dir_t), prepared on the first
 * call and kept with the record: valid until it is released. Thread-safe.
 * 0, or -1 when out of memory. */
int tr_flow_bodies(tr_flow_t *r, const tr_body_t **bodies);
/* Frees what tr_flow_bodies prepared (tr_flow_release does). */
void tr_flow_bodies_free(tr_flow_t *r);

/* ---- the shared HAR / JSONL event handlers ------------------------------ */

typedef struct tr_recorder {
  int slot; /* -1 until set */
  size_t body_cap;
  tr_writer_t *w;
  struct tr_recorder *peer; /* shares its records with this one */
} tr_recorder_t;

/* From now on `a` and `b` (two recorders of one chain, slots set, same
 * body_cap) record each flow once, for both. */
void tr_rec_share(tr_recorder_t *a, tr_recorder_t *b);

/* `self` of these is a struct whose first member is a tr_recorder_t. */
void tr_rec_on_request_head(void *self, flt_flow_t *f);
void tr_rec_on_request_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len);
void tr_rec_on_response_head(void *self, flt_flow_t *f);
void tr_rec_on_response_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len);
void tr_rec_on_flow_end(void *self, flt_flow_t *f);
void tr_rec_on_conn_close(void *self, flt_conn_t *c);
void tr_rec_on_shutdown(void *self);
void tr_rec_set_slot(tr_recorder_t *rec, int slot);
/* Drops the job's reference to its record. */
void tr_flow_job_free(tr_job_t *job);

/* ---- WebSocket messages (wslog.c) ----------------------------------------- */

/* Messages listed per flow at most (the rest are counted). */
#define TR_WS_MAX_MESSAGES 100000
typedef struct tr_ws_log tr_ws_log_t;
/* The recorders' on_ws_message: the message joins the flow's record. */
void tr_rec_on_ws_message(void *self, flt_flow_t *f, flt_dir_t dir, int opcode,
                          const uint8_t *data, size_t len);
void tr_ws_log_free(tr_ws_log_t *log);
size_t tr_ws_log_cost(const tr_ws_log_t *log);


/* ---- JSON ---------------------------------------------------------------- */

/* "HTTP/1.1" (or "HTTP/2.0"); "" for a missing head. */
void tr_http_version(const flt_head_t *h, char *buf, size_t size);
/* "2024-01-31T23:59:59.123Z" */
void tr_iso_time(uint64_t us, char *buf, size_t size);
/* Non-zero when `p` is valid UTF-8 without NUL bytes. */
int tr_utf8_valid(const uint8_t *p, size_t len);
/* Standard base64 with padding; NULL when out of memory. The buffer is
 * from tr_big_get: its size is in *size (may be NULL: then free() it). */
char *tr_base64(const uint8_t *p, size_t len, size_t *size);

/* Writes the JSON escape of `c` (a quote, a backslash or a control byte)
 * at `o`: two bytes ("\\n") or six ("\\u001b"); returns the byte after it.
 * One table for the JSON writer and the body texts, so both print what
 * cJSON printed. */
static inline char *tr_json_escape_byte(char *o, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  *o++ = '\\';
  switch (c) {
  case '"': *o++ = '"'; break;
  case '\\': *o++ = '\\'; break;
  case '\b': *o++ = 'b'; break;
  case '\f': *o++ = 'f'; break;
  case '\n': *o++ = 'n'; break;
  case '\r': *o++ = 'r'; break;
  case '\t': *o++ = 't'; break;
  default:
    memcpy(o, "u00", 3);
    o[3] = hex[c >> 4];
    o[4] = hex[c & 15];
    o += 5;
    break;
  }
  return o;
}

/* tr_jw_t (jsonw.c): JSON text appended to one growing buffer, which a
 * sink keeps from batch to batch, for the entries of one write. Each value
 * takes the key it has in its object, or NULL in an array; commas are
 * placed by the writer. Out of memory sets `oom` and the rest of the
 * calls do nothing: check it once after an entry (tr_jw_mark/tr_jw_rewind
 * take the failed entry back out). Bodies (tr_jw_body) up to
 * TR_JW_INLINE_MAX bytes are copied in; larger ones stay where they are,
 * and the buffer keeps a hole for them that tr_jw_iov fills: a body of
 * body_cap bytes (10 MiB by default) is never copied or scanned again. */
#define TR_JW_INLINE_MAX (64u * 1024)
typedef struct tr_jw_hole {
  size_t off; /* in buf: the body goes before this byte */
  const char *data;
  size_t len;
} tr_jw_hole_t;
typedef struct tr_jw {
  char *buf;
  size_t len, alloc;
  tr_jw_hole_t *holes;
  size_t n_holes, holes_alloc;
  size_t hole_bytes; /* bytes of the bodies in holes */
  struct iovec *iov; /* tr_jw_iov's array, kept */
  size_t iov_alloc;
  int oom;
} tr_jw_t;
typedef struct tr_jw_mark {
  size_t len, n_holes, hole_bytes;
} tr_jw_mark_t;

void tr_jw_init(tr_jw_t *w);
/* Empties it for the next batch (keeps the memory unless it grew large). */
void tr_jw_reset(tr_jw_t *w);
void tr_jw_free(tr_jw_t *w);
/* Text as it is (no comma, no escaping). */
void tr_jw_raw(tr_jw_t *w, const char *s, size_t n);
/* The functions below are inline so that the lengths of literal keys and
 * values (nearly all of them) are known when compiling; each calls a
 * tr_jw_k* function that takes the key's length (klen). */
void tr_jw_kopen(tr_jw_t *w, const char *key, size_t klen, char bracket);
void tr_jw_kbytes(tr_jw_t *w, const char *key, size_t klen, const char *s, size_t len);
void tr_jw_klit(tr_jw_t *w, const char *key, size_t klen, const char *literal, size_t len);
void tr_jw_knum(tr_jw_t *w, const char *key, size_t klen, double d);
void tr_jw_kbody(tr_jw_t *w, const char *key, size_t klen, const tr_body_t *b);
#define TR_JW_KLEN(key) ((key) ? strlen(key) : 0)
/* Opens ('{' or '[') and closes a container. */
static inline void tr_jw_open(tr_jw_t *w, const char *key, char bracket) {
  tr_jw_kopen(w, key, TR_JW_KLEN(key), bracket);
}
static inline void tr_jw_close(tr_jw_t *w, char bracket) {
  tr_jw_raw(w, &bracket, 1);
}
/* s[0..len) as a string, made valid UTF-8: invalid bytes are read as
 * ISO-8859-1 (what obs-text in headers usually is), NUL becomes U+FFFD.
 * NULL is "". */
static inline void tr_jw_bytes(tr_jw_t *w, const char *key, const char *s, size_t len) {
  tr_jw_kbytes(w, key, TR_JW_KLEN(key), s, len);
}
static inline void tr_jw_str(tr_jw_t *w, const char *key, const char *s) {
  tr_jw_kbytes(w, key, TR_JW_KLEN(key), s, s ? strlen(s) : 0);
}
/* A literal value: "null", "true", "{}". */
static inline void tr_jw_lit(tr_jw_t *w, const char *key, const char *literal) {
  tr_jw_klit(w, key, TR_JW_KLEN(key), literal, strlen(literal));
}
static inline void tr_jw_str_or_null(tr_jw_t *w, const char *key, const char *s) {
  if (s)
    tr_jw_str(w, key, s);
  else
    tr_jw_lit(w, key, "null");
}
static inline void tr_jw_num(tr_jw_t *w, const char *key, double d) {
  tr_jw_knum(w, key, TR_JW_KLEN(key), d);
}
static inline void tr_jw_bool(tr_jw_t *w, const char *key, int v) {
  if (v)
    tr_jw_lit(w, key, "true");
  else
    tr_jw_lit(w, key, "false");
}
/* The body's text as a string (it is escaped already: b->json). */
static inline void tr_jw_body(tr_jw_t *w, const char *key, const tr_body_t *b) {
  tr_jw_kbody(w, key, TR_JW_KLEN(key), b);
}
/* The lines of flt_flow_t.actions as an array of strings. */
void tr_jw_actions(tr_jw_t *w, const char *key, const char *actions);
/* `key` and the value `fmt` appends (one JSON value, from `arg`, which
 * must depend only on snapshot `s`'s facts): taken from s->frag[which]
 * when an earlier flow put it there, else formatted and put there. `s`
 * may be NULL (formatted every time). Any thread. */
typedef void (*tr_jw_fmt_fn)(tr_jw_t *w, const void *arg);
void tr_jw_kcached(tr_jw_t *w, const char *key, size_t klen, tr_conn_snap_t *s, int which,
                   tr_jw_fmt_fn fmt, const void *arg);
void tr_jw_mark(const tr_jw_t *w, tr_jw_mark_t *m);
void tr_jw_rewind(tr_jw_t *w, const tr_jw_mark_t *m);
/* The whole text as iovecs: the buffer cut at the holes, the bodies
 * between; room for `extra` more after them. Valid until the next call
 * or reset. Returns the count, or -1 when out of memory. */
int tr_jw_iov(tr_jw_t *w, int extra, struct iovec **iov);

/* A batch is written once it holds this much (text and bodies) or this
 * many large bodies (each takes two iovecs; a write takes IOV_MAX). */
#define TR_BATCH_MAX ((size_t)8 << 20)
#define TR_BATCH_HOLES 128
int tr_jw_full(const tr_jw_t *w);

/* How one format writes its flows: `entry` appends flow `r` (the n-th of
 * the batch, from 0) to w; `append` writes what w holds, `n` flows, to the
 * file (0 or an errno). `label` and `path` name the file in messages. */
typedef struct tr_batch_ops {
  void (*entry)(void *sink, tr_jw_t *w, tr_flow_t *r, const tr_body_t *bodies, int n);
  int (*append)(void *sink, int n);
  const char *label;
} tr_batch_ops_t;
/* The sinks' write_list for HAR and JSONL: every queued flow formatted into
 * w and written in one go (or a few, for batches past TR_BATCH_MAX), a
 * syscall per batch rather than per flow. A flow that runs out of memory
 * while formatted is taken back out and named on stderr. */
int tr_jw_write_list(void *sink, tr_jw_t *w, tr_job_t *list, const char *path,
                     const tr_batch_ops_t *ops);

/* The formats' own printers, for other views of a frozen record (the web
 * page, filters/web/): one HAR entry (har.c), the start of a HAR document
 * up to and including `"entries":[` (NUL-terminated, malloc()ed; NULL when
 * out of memory), and one JSONL object without its newline, under `key`
 * (NULL in an array or at the top) (jsonl.c). */
void tr_har_entry(tr_jw_t *w, tr_flow_t *r, const tr_body_t bodies[2]);
char *tr_har_head(const char *creator_version, size_t body_cap);
void tr_jsonl_object(tr_jw_t *w, const char *key, tr_flow_t *r, const tr_body_t bodies[2]);
/* wslog.c: The messages of a frozen record under `key`, as HAR (jsonl 0: Chrome's
 * {"type", "time", "opcode", "data"}, and _closeCode / _truncated) or as
 * JSONL (jsonl 1: the same and "encoding", "size", "closeCode",
 * "closeReason", "truncated"), and the count of messages not listed when
 * there were any. Nothing when the flow had no WebSocket. */
void tr_ws_log_write(tr_jw_t *w, const char *key, const tr_flow_t *r, int jsonl);

/* [{"name": ..., "value": ...}] in wire order. */
void tr_jw_headers(tr_jw_t *w, const char *key, const flt_head_t *h);
/* The interim responses of a frozen record: [{"status", "reason",
 * "httpVersion", "headers"}], in order; [] when none. */
void tr_jw_interim(tr_jw_t *w, const char *key, const tr_flow_t *r);

/* Timings in milliseconds, as HAR defines them: -1 = not applicable; the
 * set-up times only for the flow that paid for them. `connect` includes
 * `ssl` (HAR 1.2 asks for that, for HAR 1.1 readers). */
typedef struct tr_timings {
  double dns, connect, ssl, send, wait, receive;
  double total; /* sum of the available timings, excluding ssl */
} tr_timings_t;
void tr_timings_of(const tr_flow_t *r, tr_timings_t *t);

#endif
