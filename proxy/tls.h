/* tls.h — an OpenSSL SSL object driven over memory BIOs.
 *
 * libuv owns the sockets; OpenSSL never sees a file descriptor. Bytes read
 * from the socket go in with px_tls_feed(); whatever OpenSSL wants to send
 * (handshake records, encrypted application data, alerts) comes out of
 * px_tls_take_output() and is written to the socket by the caller.
 */
#ifndef TLSPEEK_TLS_H
#define TLSPEEK_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

typedef struct px_tls {
  SSL *ssl;
  BIO *rbio; /* network -> OpenSSL (owned by ssl); NULL while asleep */
  BIO *wbio; /* OpenSSL -> network (owned by ssl); NULL while asleep */
} px_tls_t;

/* Creates the SSL from `ctx` with a fresh pair of memory BIOs. Returns 0 or
 * -1 (OpenSSL's error queue holds the cause). `server` picks accept or
 * connect state. */
int px_tls_init(px_tls_t *t, SSL_CTX *ctx, int server);
void px_tls_free(px_tls_t *t);

/* Hands ciphertext received from the peer to OpenSSL (waking the BIOs). */
int px_tls_feed(px_tls_t *t, const void *data, size_t len);

/* Returns a malloc'd buffer with everything OpenSSL wants to send (NULL and
 * *len = 0 when nothing is pending). The caller owns and frees it. */
void *px_tls_take_output(px_tls_t *t, size_t *len);
size_t px_tls_pending_output(const px_tls_t *t);

/* Gives back the memory BIOs' buffers once they are empty and have grown
 * past a few KiB (a big flight or record leaves them large): keeps idle
 * connections small. */
void px_tls_trim(px_tls_t *t);
/* For a connection that has gone quiet: both BIOs, when empty, are freed
 * (about 0.7 KiB with their buffers) until px_tls_wake makes them again. */
void px_tls_trim_all(px_tls_t *t);
/* Makes the BIOs that px_tls_trim_all freed again: call before any SSL
 * call that may read or write (px_tls_feed does it). 0, or -1 when out of
 * memory. */
int px_tls_wake(px_tls_t *t);

/* Text of the first error in OpenSSL's queue (and clears the queue), or
 * `fallback` when empty. */
const char *px_tls_error_text(char *buf, size_t len, const char *fallback);

#endif
