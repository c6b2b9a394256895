/* tlsopts.c — protocol versions, cipher lists, groups and client
 * certificates of both TLS legs (see tlsopts.h). OpenSSL does the parsing
 * of every list; this file only splits lists to name the element OpenSSL
 * refused, since its own errors do not say which one it was. */
#include "proxy/tlsopts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "filters/util/log.h"
#include "proxy/tls.h"

static const struct {
  const char *name;
  int version;
} versions[] = {{"1.0", TLS1_VERSION},
                {"1.1", TLS1_1_VERSION},
                {"1.2", TLS1_2_VERSION},
                {"1.3", TLS1_3_VERSION}};

#define N_VERSIONS (sizeof(versions) / sizeof(versions[0]))

int px_tlsopts_version_parse(const char *text) {
  for (size_t i = 0; i < N_VERSIONS; i++)
    if (strcmp(text, versions[i].name) == 0) return versions[i].version;
  return 0;
}

const char *px_tlsopts_version_name(int version) {
  for (size_t i = 0; i < N_VERSIONS; i++)
    if (versions[i].version == version) return versions[i].name;
  return "?";
}

static const char *const leg_names[] = {"client", "upstream"};

void px_tlsopts_range(const px_config_t *cfg, px_tls_leg_t leg, int *min, int *max) {
  *max = cfg->tls_max[leg];
  *min = cfg->tls_min[leg];
  /* The default minimum is TLS 1.2; a maximum below it pulls it down. */
  if (*min == 0) *min = *max != 0 && *max < TLS1_2_VERSION ? *max : TLS1_2_VERSION;
}

/* ---- client certificates -------------------------------------------------- */

/* One --client-cert: a context holds the loaded chain and key. */
typedef struct client_cert {
  char host[256]; /* "" : every upstream */
  const char *file;
  SSL_CTX *holder;
} client_cert_t;

static client_cert_t certs[PX_MAX_CLIENT_CERTS];
static int n_certs;

/* "[HOST=]FILE": a HOST is a non-empty word before the first '=' holding
 * no '/' (so a path with '=' in a directory name still works). */
static void split_cert_spec(const char *spec, char *host, size_t hostlen, const char **file) {
  const char *eq = strchr(spec, '=');
  host[0] = '\0';
  *file = spec;
  if (eq == NULL || eq == spec || (size_t)(eq - spec) >= hostlen ||
      memchr(spec, '/', (size_t)(eq - spec)) != NULL)
    return;
  memcpy(host, spec, (size_t)(eq - spec));
  host[eq - spec] = '\0';
  *file = eq + 1;
}

static int load_cert(client_cert_t *c, const char *spec, char *err, size_t errlen) {
  char ebuf[256];
  split_cert_spec(spec, c->host, sizeof(c->host), &c->file);
  if (access(c->file, R_OK) != 0) {
    snprintf(err, errlen, "cannot read --client-cert file '%s': %s", c->file, strerror(errno));
    return -1;
  }
  c->holder = SSL_CTX_new(TLS_client_method());
  if (c->holder == NULL) {
    snprintf(err, errlen, "--client-cert: %s", px_tls_error_text(ebuf, sizeof(ebuf), "no memory"));
    return -1;
  }
  if (SSL_CTX_use_certificate_chain_file(c->holder, c->file) != 1) {
    snprintf(err, errlen, "--client-cert %s: cannot read a PEM certificate (chain) from it: %s",
             c->file, px_tls_error_text(ebuf, sizeof(ebuf), "no certificate"));
    return -1;
  }
  ERR_clear_error();
  int key_ok = SSL_CTX_use_PrivateKey_file(c->holder, c->file, SSL_FILETYPE_PEM) == 1;
  if (!key_ok && ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    snprintf(err, errlen, "--client-cert %s: the key does not match the certificate", c->file);
    return -1;
  }
  if (!key_ok) {
    snprintf(err, errlen,
             "--client-cert %s: no usable private key in it (the PEM file must hold the "
             "certificate chain and its key): %s",
             c->file, px_tls_error_text(ebuf, sizeof(ebuf), "no key"));
    return -1;
  }
  if (SSL_CTX_check_private_key(c->holder) != 1) {
    snprintf(err, errlen, "--client-cert %s: the key does not match the certificate: %s", c->file,
             px_tls_error_text(ebuf, sizeof(ebuf), "mismatch"));
    return -1;
  }
  return 0;
}

const char *px_tlsopts_use_client_cert(SSL *ssl, const char *host) {
  const client_cert_t *any = NULL, *pick = NULL;
  for (int i = 0; i < n_certs && pick == NULL; i++) {
    if (certs[i].host[0] == '\0' && any == NULL) any = &certs[i];
    if (certs[i].host[0] != '\0' && strcasecmp(certs[i].host, host) == 0) pick = &certs[i];
  }
  if (pick == NULL) pick = any;
  if (pick == NULL) return NULL;
  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(pick->holder, &chain);
  if (SSL_use_cert_and_key(ssl, SSL_CTX_get0_certificate(pick->holder),
                           SSL_CTX_get0_privatekey(pick->holder), chain, 1) != 1) {
    ERR_clear_error();
    return NULL;
  }
  return pick->file;
}

void px_tlsopts_free(void) {
  for (int i = 0; i < n_certs; i++) SSL_CTX_free(certs[i].holder);
  n_certs = 0;
}

/* ---- applying and checking ------------------------------------------------- */

int px_tlsopts_apply(SSL_CTX *ctx, const px_config_t *cfg, px_tls_leg_t leg) {
  int min, max;
  px_tlsopts_range(cfg, leg, &min, &max);
  if (SSL_CTX_set_min_proto_version(ctx, min) != 1) return -1;
  if (SSL_CTX_set_max_proto_version(ctx, max) != 1) return -1;
  if (cfg->tls_ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) return -1;
  if (cfg->tls_ciphersuites && SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1)
    return -1;
  if (cfg->tls_groups && SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) return -1;
  /* TLS 1.0 and 1.1 sign with SHA-1 and MD5, which security level 1 and
   * up refuse: level 0 is the only way to speak them, and only when asked. */
  if (min < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx, 0);
  return 0;
}

/* Names the element of a ':'-separated list that `try` refuses. */
static int find_bad_element(SSL_CTX *ctx, const char *list, int (*try)(SSL_CTX *, const char *),
                            char *bad, size_t badlen) {
  char *copy = strdup(list), *save = NULL;
  int found = 0;
  if (copy == NULL) return 0;
  for (char *t = strtok_r(copy, ":", &save); t && !found; t = strtok_r(NULL, ":", &save))
    if (try(ctx, t) != 1) {
      snprintf(bad, badlen, "%s", t);
      found = 1;
    }
  free(copy);
  ERR_clear_error();
  return found;
}

static int try_groups(SSL_CTX *ctx, const char *g) { return SSL_CTX_set1_groups_list(ctx, g); }

/* OpenSSL skips unknown TLS 1.3 suites silently: one that adds nothing to
 * the context's list is unknown. */
static int try_suite(SSL_CTX *ctx, const char *s) {
  if (SSL_CTX_set_ciphersuites(ctx, "") != 1) return 0;
  int before = sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(ctx));
  if (SSL_CTX_set_ciphersuites(ctx, s) != 1) return 0;
  return sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(ctx)) > before;
}

static int check_lists(SSL_CTX *ctx, const px_config_t *cfg, char *err, size_t errlen) {
  char ebuf[256], bad[256];
  if (cfg->tls_ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
    snprintf(err, errlen, "bad --ciphers '%s': %s (see `openssl ciphers -v`)", cfg->tls_ciphers,
             px_tls_error_text(ebuf, sizeof(ebuf), "no cipher match"));
    return -1;
  }
  if (cfg->tls_ciphersuites && find_bad_element(ctx, cfg->tls_ciphersuites, try_suite, bad,
                                                sizeof(bad))) {
    snprintf(err, errlen,
             "bad --ciphersuites '%s': unknown TLS 1.3 ciphersuite '%s' (e.g. "
             "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256)",
             cfg->tls_ciphersuites, bad);
    return -1;
  }
  if (cfg->tls_groups && SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) {
    const char *why = px_tls_error_text(ebuf, sizeof(ebuf), "unknown group");
    if (find_bad_element(ctx, cfg->tls_groups, try_groups, bad, sizeof(bad)))
      snprintf(err, errlen, "bad --groups '%s': unknown group '%s' (e.g. X25519:P-256:P-384)",
               cfg->tls_groups, bad);
    else
      snprintf(err, errlen, "bad --groups '%s': %s", cfg->tls_groups, why);
    return -1;
  }
  return 0;
}

static int check_leg(const px_config_t *cfg, px_tls_leg_t leg, char *err, size_t errlen) {
  int min, max;
  char ebuf[256];
  px_tlsopts_range(cfg, leg, &min, &max);
  if (max != 0 && min > max) {
    snprintf(err, errlen,
             "the %s leg's TLS minimum %s is above its maximum %s (--%s-tls-min / --%s-tls-max, "
             "or --tls-min / --tls-max)",
             leg_names[leg], px_tlsopts_version_name(min), px_tlsopts_version_name(max),
             leg_names[leg], leg_names[leg]);
    return -1;
  }
  SSL_CTX *ctx = SSL_CTX_new(leg == PX_LEG_CLIENT ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "cannot create a TLS context: %s",
             px_tls_error_text(ebuf, sizeof(ebuf), "no memory"));
    return -1;
  }
  int rc = check_lists(ctx, cfg, err, errlen);
  if (rc == 0 && px_tlsopts_apply(ctx, cfg, leg) != 0) {
    snprintf(err, errlen, "the %s leg's TLS settings: %s", leg_names[leg],
             px_tls_error_text(ebuf, sizeof(ebuf), "refused by OpenSSL"));
    rc = -1;
  }
  SSL_CTX_free(ctx);
  if (rc == 0 && min < TLS1_2_VERSION)
    flt_log_warn("%s leg: TLS %s allowed, so OpenSSL's security level is lowered to 0 on that "
                 "leg (SHA-1/MD5 signatures, short keys and weak ciphers are accepted there)",
                 leg_names[leg], px_tlsopts_version_name(min));
  return rc;
}

int px_tlsopts_check(const px_config_t *cfg, char *err, size_t errlen) {
  if (check_leg(cfg, PX_LEG_CLIENT, err, errlen) != 0) return -1;
  if (check_leg(cfg, PX_LEG_UPSTREAM, err, errlen) != 0) return -1;
  px_tlsopts_free();
  for (int i = 0; i < cfg->n_client_certs; i++) {
    if (load_cert(&certs[n_certs++], cfg->client_certs[i], err, errlen) != 0) {
      px_tlsopts_free();
      return -1;
    }
  }
  return 0;
}
