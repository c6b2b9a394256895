/* socks5.c — SOCKS5 message parsers (see socks5.h). Written by hand: no
 * library we use speaks SOCKS, and the three messages are small. Every read
 * goes through the TLS dissector's bounded cursor, which cannot pass `len`. */
#include "proxy/modes/socks5.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/crypto.h>

#include "filters/tls/tlsparse.h"
#include "proxy/modes/proxyauth.h"

int px_socks5_parse_greeting(const uint8_t *p, size_t len, px_socks5_greeting_t *out) {
  flt_tls_cur_t c;
  uint8_t ver, n;
  const uint8_t *methods;

  flt_tls_cur_init(&c, p, len);
  /* The version decides as soon as it is there: a non-SOCKS client must not
   * wait for a method list that will never come. */
  if (flt_tls_cur_u8(&c, &ver)) return PX_SOCKS5_NEED_MORE;
  if (ver != PX_SOCKS5_VERSION) return PX_SOCKS5_E_VERSION;
  if (flt_tls_cur_u8(&c, &n) || flt_tls_cur_bytes(&c, n, &methods)) return PX_SOCKS5_NEED_MORE;
  out->methods = methods;
  out->n_methods = n;
  return (int)c.off;
}

int px_socks5_greeting_offers(const px_socks5_greeting_t *g, uint8_t method) {
  return g->n_methods > 0 && memchr(g->methods, method, g->n_methods) != NULL;
}

int px_socks5_parse_auth(const uint8_t *p, size_t len, px_socks5_auth_t *out) {
  flt_tls_cur_t c;
  uint8_t ver, ulen, plen;

  flt_tls_cur_init(&c, p, len);
  if (flt_tls_cur_u8(&c, &ver)) return PX_SOCKS5_NEED_MORE;
  if (ver != PX_SOCKS5_AUTH_VERSION) return PX_SOCKS5_E_AUTH_VERSION;
  if (flt_tls_cur_u8(&c, &ulen) || flt_tls_cur_bytes(&c, ulen, &out->user) ||
      flt_tls_cur_u8(&c, &plen) || flt_tls_cur_bytes(&c, plen, &out->pass))
    return PX_SOCKS5_NEED_MORE;
  out->user_len = ulen;
  out->pass_len = plen;
  return (int)c.off;
}

int px_socks5_auth_matches(const px_socks5_auth_t *a, const char *userpass) {
  return userpass != NULL &&
         px_proxyauth_pair_ok(userpass, a->user, a->user_len, a->pass, a->pass_len);
}

/* DST.ADDR as text into out->host. */
static int parse_address(flt_tls_cur_t *c, px_socks5_request_t *out) {
  const uint8_t *addr;
  uint8_t n;
  switch (out->atyp) {
    case 1:
      if (flt_tls_cur_bytes(c, 4, &addr)) return PX_SOCKS5_NEED_MORE;
      inet_ntop(AF_INET, addr, out->host, sizeof(out->host));
      return 1;
    case 4:
      if (flt_tls_cur_bytes(c, 16, &addr)) return PX_SOCKS5_NEED_MORE;
      inet_ntop(AF_INET6, addr, out->host, sizeof(out->host));
      return 1;
    case 3:
      if (flt_tls_cur_u8(c, &n) || flt_tls_cur_bytes(c, n, &addr)) return PX_SOCKS5_NEED_MORE;
      if (n == 0 || memchr(addr, 0, n)) return PX_SOCKS5_E_DOMAIN;
      memcpy(out->host, addr, n); /* n <= 255 < sizeof(host) */
      out->host[n] = '\0';
      return 1;
    default:
      return PX_SOCKS5_E_ATYP;
  }
}

int px_socks5_parse_request(const uint8_t *p, size_t len, px_socks5_request_t *out) {
  flt_tls_cur_t c;
  uint8_t ver, cmd, rsv;
  uint16_t port;

  flt_tls_cur_init(&c, p, len);
  if (flt_tls_cur_u8(&c, &ver) || flt_tls_cur_u8(&c, &cmd) || flt_tls_cur_u8(&c, &rsv) ||
      flt_tls_cur_u8(&c, &out->atyp))
    return PX_SOCKS5_NEED_MORE;
  (void)rsv;
  if (ver != PX_SOCKS5_VERSION) return PX_SOCKS5_E_REQ_VERSION;
  int rc = parse_address(&c, out);
  if (rc <= 0) return rc;
  if (flt_tls_cur_u16(&c, &port)) return PX_SOCKS5_NEED_MORE;
  /* The whole message is read before the command is judged, as a client
   * that sent BIND waits for the reply to all of it. */
  if (cmd == 2) return PX_SOCKS5_E_BIND;
  if (cmd == 3) return PX_SOCKS5_E_UDP;
  if (cmd != 1) return PX_SOCKS5_E_COMMAND;
  if (port == 0) return PX_SOCKS5_E_PORT;
  out->port = port;
  return (int)c.off;
}

const char *px_socks5_strerror(int err) {
  switch (err) {
    case PX_SOCKS5_E_VERSION: return "not a SOCKS5 client (version byte is not 5)";
    case PX_SOCKS5_E_AUTH_VERSION:
      return "username/password message with a version byte that is not 1 (RFC 1929)";
    case PX_SOCKS5_E_REQ_VERSION: return "request with a version byte that is not 5";
    case PX_SOCKS5_E_ATYP: return "unsupported address type";
    case PX_SOCKS5_E_DOMAIN: return "empty or invalid domain name";
    case PX_SOCKS5_E_BIND: return "BIND is not supported";
    case PX_SOCKS5_E_UDP: return "UDP ASSOCIATE is not supported";
    case PX_SOCKS5_E_COMMAND: return "unknown command";
    case PX_SOCKS5_E_PORT: return "port 0";
    default: return "malformed SOCKS5 message";
  }
}

uint8_t px_socks5_reply_code(int err) {
  switch (err) {
    case PX_SOCKS5_E_ATYP:
    case PX_SOCKS5_E_DOMAIN: return 8; /* address type not supported */
    case PX_SOCKS5_E_REQ_VERSION:
    case PX_SOCKS5_E_BIND:
    case PX_SOCKS5_E_UDP:
    case PX_SOCKS5_E_COMMAND: return 7; /* command not supported */
    default: return 1; /* general failure */
  }
}
