/* wire_split.h — a leg's bytes cut into the entries of the page's Wire tab
 * (filters/web/store.c): one entry per TLS record, whatever the reads.
 *
 * A TLS leg's reads (or writes) are fed in order to one web_split_t per leg
 * and direction. Each record (5-byte header: content type, version,
 * length) gives one entry with its content type as kind and its whole
 * length (header included), made as soon as its first FLT_WEB_WIRE_HEX
 * bytes (or the whole record, when shorter) have been seen: a record may
 * span reads, a read may hold several records. The state is bounded: a
 * partial header and the first bytes of the record in progress.
 *
 * Not TLS: while no record was seen on the stream and its leg is not
 * known to be TLS, a read that does not begin with a plausible record
 * header (flt_tls_record_header) is plain: one entry, kind WEB_KIND_PLAIN
 * (the CONNECT before a ClientHello, every read of a plain leg). A TLS stream
 * whose next header is not plausible (unknown type or version, a length
 * over FLT_TLS_MAX_RECORD) is lost: that read's rest, and every later
 * read, is one entry of kind WEB_KIND_UNPARSED (the proxy's TLS library
 * rejects such a stream anyway). Parses untrusted bytes: fuzzed by
 * tests/fuzz/fuzz_wire_split.c. */
#ifndef TLSPEEK_WEB_WIRE_SPLIT_H
#define TLSPEEK_WEB_WIRE_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "filters/web/store.h"

enum { WEB_KIND_PLAIN = 0, WEB_KIND_UNPARSED = 255 };

typedef struct web_split {
  uint8_t head[FLT_WEB_WIRE_HEX]; /* the current record's first bytes */
  uint8_t head_len;
  uint8_t kind;    /* its content type, once its header is complete */
  uint8_t emitted; /* its entry was made */
  uint8_t lost;    /* a bogus header was seen: no more splitting */
  uint32_t total;  /* its length with the header; 0 while the header is partial */
  uint32_t need;   /* its bytes still to come */
  uint64_t records; /* records seen */
} web_split_t;

/* One entry: kind (a content type, WEB_KIND_PLAIN or WEB_KIND_UNPARSED),
 * its length on the wire, and its first bytes (at most FLT_WEB_WIRE_HEX). */
typedef void (*web_split_fn)(void *ud, uint8_t kind, uint32_t len, const uint8_t *head,
                             size_t head_len);

/* Feeds one read (or write) of len bytes; calls fn for every entry it
 * completes, in order. tls: the leg is known to carry TLS. */
void web_split_feed(web_split_t *sp, const uint8_t *p, size_t len, int tls, web_split_fn fn,
                    void *ud);

#endif
