/* answer_serve.h — --serve-from FILE.har|FILE.jsonl: a recording loaded at
 * start-up (filters/transcript/reader.h) and indexed by request, so that
 * session_answer.c can answer matching requests with the recorded
 * responses without contacting the server (proxy/README.md).
 *
 * Entries are keyed by method and absolute URL (exactly as recorded), and
 * with --serve-match url+body also by a hash of the request body (as the
 * recording holds it: decoded). Entries without a response are skipped.
 * Repeated identical requests cycle through the recorded responses of their
 * key in recording order: the 1st request gets the 1st response, the Nth
 * the Nth, then it starts again at the first (one counter per key, shared
 * by every worker thread). The index is read-only after loading, apart from
 * those atomic counters. */
#ifndef TLSPEEK_ANSWER_SERVE_H
#define TLSPEEK_ANSWER_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"

typedef struct px_serve px_serve_t;

/* One recorded response, ready to send: hop-by-hop fields and
 * Content-Length removed, Content-Encoding too when the recording holds
 * the body decoded. */
typedef struct px_served {
  int status;
  const char *reason;
  const flt_header_t *headers;
  size_t n_headers;
  const uint8_t *body;
  size_t body_len;
  int truncated;   /* the recording cut the body (its --body-cap) */
  int decoded;     /* the recording holds the body decoded (or holds none) */
  char dropped_encoding[32]; /* the Content-Encoding dropped for that, or "" */
  char where[48];  /* "log.entries[3]" or "line 4" */
} px_served_t;

/* FNV-1a, 64 bits: the request-body hash of --serve-match url+body. */
#define PX_SERVE_HASH_INIT 0xcbf29ce484222325ull
uint64_t px_serve_hash(uint64_t h, const void *data, size_t len);

/* Loads `path` with the transcript readers. NULL with the reader's
 * sentence in err (prefixed by the file's name) when it cannot be read or
 * holds no entry with a response. */
px_serve_t *px_serve_load(const char *path, int match_body, char *err, size_t errlen);
void px_serve_free(px_serve_t *sv);
size_t px_serve_count(const px_serve_t *sv);
/* Whether any entry has this method and URL (whatever its body). */
int px_serve_has(const px_serve_t *sv, const char *method, const char *url);
/* The next response for the request (body_hash: ignored unless match_body),
 * or NULL on a miss. *nth (1-based) and *of say which of the key's
 * responses it is. */
const px_served_t *px_serve_pick(px_serve_t *sv, const char *method, const char *url,
                                 uint64_t body_hash, unsigned *nth, unsigned *of);

#endif
