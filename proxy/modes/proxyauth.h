/* proxyauth.h — --proxyauth: who may use tlspeek as a proxy, and what
 * start-up says about listeners anyone on the network can reach.
 *
 * Credentials are compared through a SHA-256 digest of (user, password)
 * with CRYPTO_memcmp, so the time taken does not depend on how much of a
 * guess was right, nor on the lengths.
 */
#ifndef TLSPEEK_PROXYAUTH_H
#define TLSPEEK_PROXYAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/config.h"

/* The realm tlspeek asks for in Proxy-Authenticate. */
#define PX_PROXYAUTH_REALM "tlspeek"
/* Longest Proxy-Authorization value looked at (base64 of 255+1+255 bytes
 * fits with room to spare); a longer one is refused. */
#define PX_PROXYAUTH_MAX_VALUE 1024

/* Does --proxyauth apply to clients of this mode? Explicit, upstream
 * (explicit toward the client) and SOCKS5 do; reverse and transparent
 * clients are not proxy-aware and cannot send credentials. */
int px_proxyauth_applies(px_mode_t mode);

/* 1 when `value` (a Proxy-Authorization header value, not NUL-terminated)
 * is "Basic <base64 of USER:PASS>" matching `expect` ("USER:PASS"). */
int px_proxyauth_basic_ok(const char *expect, const char *value, size_t len);

/* 1 when the SOCKS5 (RFC 1929) username and password match `expect`. */
int px_proxyauth_pair_ok(const char *expect, const uint8_t *user, size_t ulen, const uint8_t *pass,
                         size_t plen);

/* Overwrites with '*' the value of every "Proxy-Authorization:" header line
 * in `buf` (wire bytes of a plain-HTTP proxy request, about to be shown by
 * the wire view), `buf` starting at a line's start. A line cut by the end
 * of `buf` is masked up to there. */
void px_proxyauth_mask(char *buf, size_t len);
/* The same over a stream cut anywhere into reads: `*state` (0 before the
 * first read) carries a field name or value cut by the end of one read
 * into the next. */
void px_proxyauth_mask_stream(char *buf, size_t len, int *state);

struct px_session;
/* Shows bytes read from the client in the wire view; while they are
 * requests to the proxy itself and --proxyauth is set, masked as above. */
void px_proxyauth_emit_wire(struct px_session *s, const char *data, size_t len);

/* Start-up notes: --proxyauth given to listeners it cannot protect, and
 * listeners on a non-loopback address that anyone can use unauthenticated
 * (one warning each, naming the risk). */
void px_proxyauth_startup_notes(const px_config_t *cfg);

#endif
