/* http1.h — HTTP/1.x framing of one direction of a connection.
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
#include "filters/util/strbuf.h"

#define PX_HTTP_MAX_HEAD (64 * 1024)
#define PX_HTTP_MAX_HEADERS 256
/* Longest request method accepted (RFC 9110 sets no limit; every registered
 * method is shorter). */
#define PX_HTTP_MAX_METHOD 32
/* Empty lines tolerated before a request line (RFC 9112 §2.2). */
#define PX_HTTP_MAX_LEADING_EOL 64
/* px_http_sniff waits this long for a request line whose method is not all
 * capitals before it calls the stream something else. */
#define PX_HTTP_SNIFF_LINE (8 * 1024)
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
  char method[PX_HTTP_MAX_METHOD + 1]; /* the request's real method */
  size_t method_len;
  enum { PX_LINE_START, PX_LINE_METHOD, PX_LINE_REST } line; /* request line progress */
  size_t leading_eol;   /* empty lines skipped before this request line */
  int crlf_due;         /* bytes of a chunk's closing CRLF still to check */
  const char *in_end;   /* end of the input being parsed (chunk CRLF check) */
  char error[160];      /* why the stream was rejected */
  int upgraded;         /* the stream became raw after an Upgrade/CONNECT */
  int await_verdict;    /* PX_HTTP_HELD after a request with Upgrade */
  int raw_next;         /* px_http_set_raw came during a message */
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
/* After a request with Upgrade (or CONNECT) the framer keeps what follows
 * unparsed (PX_HTTP_HELD, await_verdict set) until the owner decides:
 * px_http_resume_http() when the server did not switch (any answer other
 * than 101): the kept bytes are parsed as HTTP (returns as px_http_feed);
 * px_http_set_raw() after 101 or CONNECT 2xx: the kept bytes and all that
 * follows go to `forward` unparsed. Called during a message (CONNECT that
 * the proxy answers itself), set_raw takes effect at its end. */
int px_http_resume_http(px_http_t *h);
void px_http_set_raw(px_http_t *h);

/* RFC 9110 §5.6.2 tchar: the characters of a method or field name. */
int px_http_is_tchar(int ch);
/* Checks a complete request head (request line through the empty line)
 * against the RFC 9112 rules http-parser does not enforce (see above).
 * Returns 0, or -1 with the reason in err. */
int px_http_check_request_head(const char *raw, size_t len, char *err, size_t errlen);
/* Hop-by-hop rules on a parsed request head: should field `i` be dropped
 * when the request is passed on? And the Connection value to send in its
 * place (options that still apply to the next hop); returns 0 when none. */
int px_hop_by_hop_drop(const flt_head_t *h, size_t i);
int px_hop_by_hop_connection(const flt_head_t *h, char *out, size_t outlen);

/* What the first bytes of a connection (or of a TLS stream) are. */
enum { PX_SNIFF_MORE = 0, PX_SNIFF_HTTP, PX_SNIFF_RAW };
/* Tells an HTTP/1 request (empty lines, then a method token and SP) from
 * other protocols. A method of capitals and '-' is enough; any other token
 * (e.g. "SSH-2.0-...") must be followed by a complete request line ending in
 * HTTP/x.y. PX_SNIFF_MORE: not enough bytes yet to tell. */
int px_http_sniff(const char *data, size_t len);

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
  int strip_hop;     /* request: drop hop-by-hop fields (RFC 9110 §7.6.1) */
} px_head_edit_t;

/* Does the request carry hop-by-hop fields that strip_hop would remove or
 * rewrite (Connection, Proxy-Connection, Keep-Alive, TE, Upgrade,
 * Proxy-Authorization)? */
int px_http_has_hop_by_hop(px_http_t *h);

/* The head serialised anew with `edit` applied. With `host`, the Host field
 * is replaced, or added when the request had none. With strip_hop, the
 * hop-by-hop fields go, and Connection is rebuilt from the options that
 * still apply to the next hop (close, keep-alive, upgrade, te). */
int px_http_head_build(px_http_t *h, const px_head_edit_t *edit, flt_strbuf_t *out);

/* http1_msg.c. The flow's absolute URL (malloc'd, NULL when out of
 * memory): the target when it is in absolute-form, else the scheme of the
 * client's connection, the Host header (or the SNI or server of `c`) and
 * the target. */
char *px_http_absolute_url(const flt_conn_t *c, const flt_head_t *h);
/* Shows <redacted> (in a head copy, never on the wire) for every header
 * named in `names`, and for Proxy-Authorization when `proxy_auth` (tlspeek's
 * own credentials, --proxyauth). */
void px_http_redact_head(const char *const *names, int n_names, int proxy_auth, flt_head_t *h);
/* An absolute-form request target (RFC 9112 §3.2.2: what a proxy gets)
 * split into its host (at most 255 bytes), port (80 when none) and the
 * origin-form target to send on (path and query, "/" when none; the
 * fragment dropped), with the parse in *pu. NULL, or why it cannot be sent
 * on (a sentence for the client's 400). */
const char *px_http_split_absolute_url(const char *url, struct http_parser_url *pu,
                                       char host[256], uint16_t *pport, char *origin,
                                       size_t origin_len);
/* "host:port", "[v6]:port" or "host" (then `default_port`) into `host`
 * (brackets removed) and `port`; 0, or -1 when malformed or too long. */
int px_http_split_authority(const char *a, char *host, size_t hostlen, uint16_t *port,
                            uint16_t default_port);
/* 1 when header `name` of `head` carries NTLM or Negotiate, which
 * authenticate the connection rather than the request. */
int px_http_binds_connection(const flt_head_t *head, const char *name);

/* A deep copy of a head (one allocation; free() it). */
flt_head_t *px_head_copy(const flt_head_t *src);

/* A deep copy of `src` (one allocation; free() it) with the --remove-header
 * and --set-header parts of `e` applied exactly as px_http_head_build
 * applies them: removed names go, the first field of a set name takes the
 * new value (later ones go), set names the head lacked are appended in
 * option order. url, host and strip_hop are ignored. head_bytes becomes
 * the size of the edited head serialised as HTTP/1.1. NULL when out of
 * memory. */
flt_head_t *px_head_edited(const flt_head_t *src, const px_head_edit_t *e);
/* The size of a head serialised as HTTP/1.x: start line, fields, CRLF. */
size_t px_head_wire_size(const flt_head_t *h);

#endif
