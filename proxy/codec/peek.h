/* peek.h — what the first bytes of a connection are: a TLS ClientHello,
 * plain HTTP/1, or some other protocol relayed raw. Pure: no session, no
 * I/O. proxy/session.c calls it on every read until it decides;
 * tests/fuzz/fuzz_peek.c checks its promises with arbitrary splits. */
#ifndef TLSPEEK_PEEK_H
#define TLSPEEK_PEEK_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/codec/http1.h"

/* The most bytes that can arrive without a verdict: empty lines before a
 * request line (two bytes each), a method, and a request line that must
 * end in HTTP/x.y when its method is not all capitals (proxy/codec/http1.h). */
#define PX_PEEK_MAX_UNDECIDED (2 * PX_HTTP_MAX_LEADING_EOL + PX_HTTP_SNIFF_LINE)

typedef enum px_peek_kind {
  PX_PEEK_NEED_MORE = 0, /* too few bytes to tell: call again with more */
  PX_PEEK_TLS,           /* a TLS handshake record (0x16) */
  PX_PEEK_HTTP,          /* an HTTP/1 request line (px_http_sniff) */
  PX_PEEK_RAW,           /* anything else */
  PX_PEEK_H2             /* the HTTP/2 connection preface: h2c with prior knowledge */
} px_peek_kind_t;

/* Classifies the first `n` bytes of a connection; reads only p[0..n).
 * Promises: NEED_MORE only while n <= PX_PEEK_MAX_UNDECIDED; once a prefix of a
 * stream gets a verdict, every longer prefix gets the same one, so the
 * verdict never depends on how the bytes were split into reads. */
px_peek_kind_t px_peek_classify(const uint8_t *p, size_t n);

#endif
