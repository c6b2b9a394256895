/* http.h — HTTP/1.x framing of one direction of a connection.
 *
 * A px_http_t wraps http-parser. Bytes go in with px_http_feed(); they come
 * out through callbacks, in order:
 *   on_head     a complete head (request or status line + headers). The raw
 *               head bytes are passed along; the callback forwards them (or
 *               a rewritten head) itself. Returning 1 means "this message
 *               has no body" (a response to HEAD); PX_HTTP_HOLD means "not
 *               yet": the head and every byte after it stay unparsed until
 *               px_http_release(); -1 aborts with an error.
 *   forward     raw bytes after the head (body, chunk framing, trailers,
 *               and everything after an Upgrade), to be passed on unchanged
 *   on_body     the de-chunked body bytes, for observers
 *   on_end      the message is complete
 * Heads are held until complete (at most PX_HTTP_MAX_HEAD bytes); bodies
 * stream through without being buffered.
 */
#ifndef TLSPEEK_HTTP_H
#define TLSPEEK_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "filters/filter.h"
#include "filters/strbuf.h"

#define PX_HTTP_MAX_HEAD (64 * 1024)
#define PX_HTTP_MAX_HEADERS 256
/* Input kept back by PX_HTTP_HOLD: the held head plus what came with it.
 * The owner stops reading while it holds, so this is one read's worth. */
#define PX_HTTP_MAX_HELD (PX_HTTP_MAX_HEAD + 1024 * 1024)

/* on_head's answer "not yet" (see above). */
#define PX_HTTP_HOLD 2

typedef struct px_http px_http_t;

typedef struct px_http_cbs {
  int (*on_head)(void *ud, px_http_t *h, const char *raw, size_t len);
  void (*forward)(void *ud, const char *data, size_t len);
  void (*on_body)(void *ud, const char *data, size_t len);
  void (*on_end)(void *ud, px_http_t *h);
} px_http_cbs_t;

typedef struct px_hdr_off {
  uint32_t name_off, name_len, value_off, value_len;
} px_hdr_off_t;

struct px_http {
  http_parser parser;
  enum http_parser_type type;
  const px_http_cbs_t *cbs;
  void *ud;
  enum { PX_HTTP_HEAD, PX_HTTP_BODY, PX_HTTP_RAW, PX_HTTP_HELD, PX_HTTP_FAILED } state;
  int event;            /* which callback paused the parser */
  int skip_body;        /* set by on_head's return value */
  flt_strbuf_t raw;     /* raw head bytes held until the head is complete */
  flt_strbuf_t held;    /* PX_HTTP_HELD: input not parsed yet, head first */
  flt_strbuf_t store;   /* url, reason, header names and values */
  px_hdr_off_t *hdr;    /* grown on demand: idle connections stay small */
  size_t n_hdr, hdr_alloc;
  int last_was_value;
  uint32_t url_off, url_len, reason_off, reason_len;
  flt_header_t *view_hdr; /* px_http_head_view's storage, hdr_alloc long */
  char method[24];
  char error[160];      /* why the stream was rejected */
  int upgraded;         /* the stream became raw after an Upgrade/CONNECT */
  size_t head_bytes;    /* size of the last head on the wire */
};

void px_http_init(px_http_t *h, enum http_parser_type type,
                  const px_http_cbs_t *cbs, void *ud);
void px_http_free(px_http_t *h);
/* Between messages: gives back the head buffers and header tables. */
void px_http_trim(px_http_t *h);

/* Feeds bytes; returns 0 or -1 (h->error says why; the stream is dead).
 * While held (PX_HTTP_HELD), the bytes are only kept, up to
 * PX_HTTP_MAX_HELD. */
int px_http_feed(px_http_t *h, const char *data, size_t len);
/* After on_head answered PX_HTTP_HOLD: parses what was held, from the held
 * head's first byte (on_head sees that head again). Returns as
 * px_http_feed(); 0 when nothing is held. */
int px_http_release(px_http_t *h);
/* The peer closed: completes a close-delimited message. Returns 0 or -1
 * when a message was cut short (h->error says so). */
int px_http_eof(px_http_t *h);
/* After a request with Upgrade that the server refused: parse HTTP again. */
void px_http_resume_http(px_http_t *h);
/* Switches to raw relaying (after 101 or CONNECT 2xx). */
void px_http_set_raw(px_http_t *h);

/* The head just parsed, valid until the next message starts. */
void px_http_head_view(px_http_t *h, flt_head_t *out);
/* The head serialised anew, with the request target replaced by `url`
 * and/or the Host header's value by `host` (either may be NULL). */
int px_http_head_rewrite(px_http_t *h, const char *url, const char *host,
                         flt_strbuf_t *out);

/* Changes to a head as it is passed on (--set-header, --remove-header). */
#define PX_HEAD_MAX_EDITS 16
typedef struct px_head_edit {
  const char *url;   /* new request target, or NULL */
  const char *host;  /* new Host value, or NULL */
  const char *set_name[PX_HEAD_MAX_EDITS];  /* replace (or add) these ... */
  const char *set_value[PX_HEAD_MAX_EDITS]; /* ... with these values */
  int n_set;
  const char *remove[PX_HEAD_MAX_EDITS];    /* drop these headers */
  int n_remove;
} px_head_edit_t;

/* The head serialised anew with `edit` applied. */
int px_http_head_build(px_http_t *h, const px_head_edit_t *edit, flt_strbuf_t *out);

/* A deep copy of a head (one allocation; free() it). */
flt_head_t *px_head_copy(const flt_head_t *src);

#endif
