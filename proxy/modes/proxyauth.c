/* proxyauth.c — --proxyauth checks (Basic for HTTP proxies, RFC 1929 for
 * SOCKS5) and the start-up warnings about exposed listeners. */
#include "proxy/modes/proxyauth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

int px_proxyauth_applies(px_mode_t mode) {
  return mode == PX_MODE_EXPLICIT || mode == PX_MODE_UPSTREAM || mode == PX_MODE_SOCKS5;
}

/* SHA-256 over (length of user, user, password): "a:b" + "c" and "a" +
 * "b:c" give different digests. */
static int pair_digest(const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen,
                       unsigned char out[32]) {
  unsigned char lenb[2] = {(unsigned char)(ulen >> 8), (unsigned char)ulen};
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int n = 0;
  int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(md, lenb, 2) == 1 && EVP_DigestUpdate(md, user, ulen) == 1 &&
           EVP_DigestUpdate(md, pass, plen) == 1 && EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32;
  EVP_MD_CTX_free(md);
  return ok ? 0 : -1;
}

int px_proxyauth_pair_ok(const char *expect, const uint8_t *user, size_t ulen, const uint8_t *pass,
                         size_t plen) {
  const char *colon = strchr(expect, ':');
  unsigned char want[32], got[32];
  if (colon == NULL || ulen > 0xffff) return 0;
  if (pair_digest((const uint8_t *)expect, (size_t)(colon - expect), (const uint8_t *)colon + 1,
                  strlen(colon + 1), want) != 0 ||
      pair_digest(user, ulen, pass, plen, got) != 0)
    return 0;
  return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

int px_proxyauth_basic_ok(const char *expect, const char *value, size_t len) {
  char b64[PX_PROXYAUTH_MAX_VALUE + 4];
  unsigned char plain[PX_PROXYAUTH_MAX_VALUE];
  size_t i = 0, n = 0;
  int ok = 0;

  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  if (len - i < 6 || strncasecmp(value + i, "Basic", 5) != 0 ||
      (value[i + 5] != ' ' && value[i + 5] != '\t'))
    return 0;
  for (i += 5; i < len && (value[i] == ' ' || value[i] == '\t'); i++) {
  }
  while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  n = len - i;
  if (n == 0 || n > PX_PROXYAUTH_MAX_VALUE || n % 4 != 0) return 0;
  memcpy(b64, value + i, n);
  b64[n] = '\0';
  /* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
  int dl = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)n);
  if (dl < 0) return 0;
  size_t plen = (size_t)dl;
  if (b64[n - 1] == '=') plen--;
  if (b64[n - 2] == '=') plen--;
  const unsigned char *colon = memchr(plain, ':', plen);
  if (colon != NULL)
    ok = px_proxyauth_pair_ok(expect, plain, (size_t)(colon - plain), colon + 1,
                              plen - (size_t)(colon - plain) - 1);
  OPENSSL_cleanse(plain, sizeof(plain));
  OPENSSL_cleanse(b64, sizeof(b64));
  return ok;
}

/* px_proxyauth_mask_stream's state: >= 0 is how much of the field name a
 * line has matched so far (0: at a line's start), then these. */
#define MASK_NAME_LEN 19   /* "proxy-authorization", matched whole */
#define MASK_VALUE (-2)    /* in its value: masked up to the line end */
#define MASK_OTHER (-1)    /* in another line: wait for its LF */

void px_proxyauth_mask_stream(char *buf, size_t len, int *state) {
  static const char name[] = "proxy-authorization";
  int st = *state;
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (st == MASK_VALUE) {
      if (c == '\r' || c == '\n')
        st = c == '\n' ? 0 : MASK_OTHER;
      else
        buf[i] = '*';
    } else if (st == MASK_OTHER) {
      if (c == '\n') st = 0;
    } else if (st < MASK_NAME_LEN) {
      st = tolower((unsigned char)c) == name[st] ? st + 1 : c == '\n' ? 0 : MASK_OTHER;
    } else if (c == ':') {
      st = MASK_VALUE;
    } else if (c != ' ' && c != '\t') { /* "Name :" is refused, but masked too */
      st = c == '\n' ? 0 : MASK_OTHER;
    }
  }
  *state = st;
}

void px_proxyauth_mask(char *buf, size_t len) {
  int state = 0;
  px_proxyauth_mask_stream(buf, len, &state);
}

void px_proxyauth_emit_wire(px_session_t *s, const char *data, size_t len) {
  const flt_chain_t *chain = &s->w->shared->chain;
  if (s->state != PX_S_PROXY_HTTP || s->w->shared->cfg->proxyauth == NULL) {
    flt_emit_wire(chain, &s->conn, FLT_LEG_CLIENT, 0, (const uint8_t *)data, len);
    return;
  }
  char *copy = malloc(len ? len : 1);
  if (copy == NULL) return; /* not shown rather than shown unmasked */
  memcpy(copy, data, len);
  px_proxyauth_mask_stream(copy, len, &s->auth_mask);
  flt_emit_wire(chain, &s->conn, FLT_LEG_CLIENT, 0, (const uint8_t *)copy, len);
  free(copy);
}

/* 127.0.0.0/8, ::1 and "localhost" reach only this machine. */
static int is_loopback(const char *host) {
  unsigned char a[16];
  if (strcasecmp(host, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, host, a) == 1) {
    static const unsigned char v6_loopback[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, v6_loopback, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
  }
  return 0; /* a name, or a wildcard such as 0.0.0.0 or :: */
}

void px_proxyauth_startup_notes(const px_config_t *cfg) {
  for (int i = 0; i < cfg->n_listens; i++) {
    const px_listen_cfg_t *lc = &cfg->listens[i];
    int applies = px_proxyauth_applies(lc->mode);
    if (cfg->proxyauth && !applies)
      flt_log_warn(
          "--proxyauth does not apply to the %s listener on %s:%u: its clients are "
          "not proxy-aware and are served without credentials",
          lc->mode == PX_MODE_REVERSE ? "reverse" : "transparent", lc->host, (unsigned)lc->port);
    if (is_loopback(lc->host) || (cfg->proxyauth && applies)) continue;
    if (applies)
      flt_log_warn(
          "the listener on %s:%u is reachable from other machines and has no --proxyauth: "
          "anyone who can reach that address can use tlspeek as an open proxy into "
          "this machine's network, and read the traffic it decrypts",
          lc->host, (unsigned)lc->port);
    else
      flt_log_warn(
          "the listener on %s:%u is reachable from other machines: anyone who can reach "
          "that address can send traffic through tlspeek to %s, and read what it "
          "decrypts (--proxyauth cannot protect this mode)",
          lc->host, (unsigned)lc->port,
          lc->mode == PX_MODE_REVERSE ? "its upstream" : "redirected destinations");
  }
}
