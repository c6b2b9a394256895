/* socks5.h — the SOCKS5 wire messages as pure parsers (RFC 1928 greeting and
 * request, RFC 1929 username/password). No I/O, no session: bytes in, a
 * parsed message or a verdict out. proxy/modes/socks.c drives them and answers;
 * tests/fuzz/fuzz_socks5.c fuzzes exactly these functions.
 *
 * Every parse function reads only p[0..len) (through the bounded cursor of
 * filters/tls/tlsparse.h) and returns:
 *   > 0  the message is complete: that many bytes were consumed;
 *   0    PX_SOCKS5_NEED_MORE: the message is not complete yet (call again
 *        with the same bytes plus what arrives next);
 *   < 0  a px_socks5_err_t: the message is malformed or asks for something
 *        tlspeek does not do (px_socks5_strerror says which).
 * Parsed pointers borrow from `p`.
 */
#ifndef TLSPEEK_SOCKS5_H
#define TLSPEEK_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#define PX_SOCKS5_VERSION 5
#define PX_SOCKS5_AUTH_VERSION 1  /* RFC 1929 sub-negotiation */
#define PX_SOCKS5_METHOD_NONE 0
#define PX_SOCKS5_METHOD_USERPASS 2
#define PX_SOCKS5_METHOD_REFUSED 0xff
/* The longest message: greeting <= 257, auth <= 513, request <= 262. */
#define PX_SOCKS5_MAX_MSG 600

#define PX_SOCKS5_NEED_MORE 0

typedef enum px_socks5_err {
  PX_SOCKS5_E_VERSION = -1,      /* greeting: version byte is not 5 */
  PX_SOCKS5_E_AUTH_VERSION = -2, /* username/password: version byte is not 1 */
  PX_SOCKS5_E_REQ_VERSION = -3,  /* request: version byte is not 5 */
  PX_SOCKS5_E_ATYP = -4,         /* request: address type not 1, 3 or 4 */
  PX_SOCKS5_E_DOMAIN = -5,       /* request: empty domain, or one with a NUL */
  PX_SOCKS5_E_BIND = -6,         /* request: BIND (only CONNECT is done) */
  PX_SOCKS5_E_UDP = -7,          /* request: UDP ASSOCIATE */
  PX_SOCKS5_E_COMMAND = -8,      /* request: an unknown command */
  PX_SOCKS5_E_PORT = -9          /* request: port 0 */
} px_socks5_err_t;

typedef struct px_socks5_greeting {
  const uint8_t *methods; /* the methods the client offers */
  size_t n_methods;
} px_socks5_greeting_t;

typedef struct px_socks5_auth {
  const uint8_t *user, *pass;
  size_t user_len, pass_len;
} px_socks5_auth_t;

typedef struct px_socks5_request {
  uint8_t atyp;   /* 1 IPv4, 3 domain, 4 IPv6 */
  char host[256]; /* NUL-terminated: dotted quad, IPv6 text or the domain */
  uint16_t port;  /* never 0 */
} px_socks5_request_t;

/* VER NMETHODS METHODS... */
int px_socks5_parse_greeting(const uint8_t *p, size_t len, px_socks5_greeting_t *out);
/* Does the greeting offer `method`? */
int px_socks5_greeting_offers(const px_socks5_greeting_t *g, uint8_t method);
/* VER ULEN UNAME PLEN PASSWD */
int px_socks5_parse_auth(const uint8_t *p, size_t len, px_socks5_auth_t *out);
/* Do the credentials equal `userpass` ("USER:PASS", split at the first
 * colon)? A `userpass` without a colon matches nothing. */
int px_socks5_auth_matches(const px_socks5_auth_t *a, const char *userpass);
/* VER CMD RSV ATYP DST.ADDR DST.PORT; only CONNECT (1) parses. The host is
 * checked for address type and emptiness only; the resolver judges it. */
int px_socks5_parse_request(const uint8_t *p, size_t len, px_socks5_request_t *out);

/* A sentence for an error code (any int; unknown codes get a generic one). */
const char *px_socks5_strerror(int err);
/* The RFC 1928 reply code (REP) that answers a request error. */
uint8_t px_socks5_reply_code(int err);

#endif
