/* peek.h — what the first bytes of a connection are: a TLS ClientHello,
 * plain HTTP/1, or some other protocol relayed raw. Pure: no session, no
 * I/O. proxy/session.c calls it on every read until it decides;
 * tests/fuzz/fuzz_peek.c checks its promises with arbitrary splits. */
#ifndef TLSPEEK_PEEK_H
#define TLSPEEK_PEEK_H

#include <stddef.h>
#include <stdint.h>

/* The longest HTTP method we wait for: an upper-case token of 3 to this many
 * letters, then a space, is HTTP. */
#define PX_PEEK_MAX_METHOD 24

typedef enum px_peek_kind {
  PX_PEEK_NEED_MORE = 0, /* too few bytes to tell: call again with more */
  PX_PEEK_TLS,           /* a TLS handshake record (0x16) */
  PX_PEEK_HTTP,          /* an HTTP method, then a space */
  PX_PEEK_RAW            /* anything else */
} px_peek_kind_t;

/* Classifies the first `n` bytes of a connection; reads only p[0..n).
 * Promises: NEED_MORE only while n <= PX_PEEK_MAX_METHOD; once a prefix of a
 * stream gets a verdict, every longer prefix gets the same one, so the
 * verdict never depends on how the bytes were split into reads. */
px_peek_kind_t px_peek_classify(const uint8_t *p, size_t n);

#endif
