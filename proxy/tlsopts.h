/* tlsopts.h — the TLS choices of the command line (protocol versions per
 * leg, cipher lists, groups, client certificates) turned into OpenSSL
 * settings.
 *
 * The client leg is client <-> tlspeek (tlspeek is the TLS server), the
 * upstream leg tlspeek <-> server (tlspeek is the TLS client). Everything
 * is checked once at start-up by px_tlsopts_check(); the workers then apply
 * the same settings to their SSL_CTXs with px_tlsopts_apply(), which cannot
 * fail on a checked configuration. */
#ifndef TLSPEEK_TLSOPTS_H
#define TLSPEEK_TLSOPTS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "proxy/config.h"

typedef enum px_tls_leg { PX_LEG_CLIENT = 0, PX_LEG_UPSTREAM = 1 } px_tls_leg_t;

/* "1.0", "1.1", "1.2", "1.3" -> TLS1_VERSION ... TLS1_3_VERSION; 0 for
 * anything else. */
int px_tlsopts_version_parse(const char *text);
/* TLS1_2_VERSION -> "1.2". */
const char *px_tlsopts_version_name(int version);

/* The effective minimum and maximum of a leg (0 max: OpenSSL's highest). */
void px_tlsopts_range(const px_config_t *cfg, px_tls_leg_t leg, int *min, int *max);

/* Checks the whole TLS configuration against OpenSSL: min <= max on each
 * leg, the cipher lists and groups (on a scratch context of each leg), and
 * loads every --client-cert (certificate chain and key from one PEM file,
 * the key matching the certificate). Logs the security-level warning for
 * legs allowed below TLS 1.2. Returns 0, or -1 with a message for the user
 * in err (the caller exits with status 2). Call once, before the workers
 * start; the loaded certificates live until px_tlsopts_free(). */
int px_tlsopts_check(const px_config_t *cfg, char *err, size_t errlen);
void px_tlsopts_free(void);

/* Applies versions, security level, ciphers, ciphersuites and groups of
 * `leg` to ctx. Returns 0 or -1 (OpenSSL's error queue holds the cause). */
int px_tlsopts_apply(SSL_CTX *ctx, const px_config_t *cfg, px_tls_leg_t leg);

/* Sets the client certificate configured for upstream `host` (an exact,
 * case-insensitive host name match; any port) or the one for every host on
 * ssl. Returns the PEM file's name, or NULL when there is none for host. */
const char *px_tlsopts_use_client_cert(SSL *ssl, const char *host);

#endif
