/* ca_leaf.c — what a minted leaf says, and signing it.
 *
 * A leaf is planned first (subject + subjectAltNames), then signed with one
 * fixed profile. The plan mirrors the upstream certificate so that a client
 * sees the names it would have seen without us: anything the real server
 * was valid for, we are valid for, plus the name the client asked for. */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "ca/ca_internal.h"

typedef struct leaf_plan {
  GENERAL_NAMES *sans;
  X509_NAME *subject;
} leaf_plan_t;

static int plan_init(leaf_plan_t *p, char *err, size_t errlen) {
  p->sans = sk_GENERAL_NAME_new_null();
  p->subject = X509_NAME_new();
  if (p->sans == NULL || p->subject == NULL)
    return ca_err(err, errlen, CA_ECRYPTO, "out of memory planning a leaf");
  return 0;
}

static void plan_free(leaf_plan_t *p) {
  GENERAL_NAMES_free(p->sans);
  X509_NAME_free(p->subject);
}

static int san_equal(const GENERAL_NAME *a, const GENERAL_NAME *b) {
  const ASN1_STRING *x, *y;

  if (a->type != b->type) return 0;
  if (a->type == GEN_IPADD) return ASN1_OCTET_STRING_cmp(a->d.iPAddress, b->d.iPAddress) == 0;
  x = a->d.dNSName;
  y = b->d.dNSName;
  /* DNS names compare without case (RFC 4343). */
  return ASN1_STRING_length(x) == ASN1_STRING_length(y) &&
         strncasecmp((const char *)ASN1_STRING_get0_data(x), (const char *)ASN1_STRING_get0_data(y),
                     (size_t)ASN1_STRING_length(x)) == 0;
}

/* Takes `gn`. Duplicates and names beyond CA_LEAF_MAX_SANS are dropped (the
 * SNI goes in first, so the cap never drops the name the client wants). */
static int san_add(leaf_plan_t *p, GENERAL_NAME *gn) {
  int i, n = sk_GENERAL_NAME_num(p->sans);
  int keep = n < CA_LEAF_MAX_SANS;

  if (gn == NULL) return -1;
  for (i = 0; keep && i < n; i++)
    keep = !san_equal(sk_GENERAL_NAME_value(p->sans, i), gn);
  if (keep && sk_GENERAL_NAME_push(p->sans, gn)) return 0;
  GENERAL_NAME_free(gn);
  return keep ? -1 : 0; /* -1: the push failed */
}

static int san_has_dns(const leaf_plan_t *p) {
  int i;

  for (i = 0; i < sk_GENERAL_NAME_num(p->sans); i++)
    if (sk_GENERAL_NAME_value(p->sans, i)->type == GEN_DNS) return 1;
  return 0;
}

/* Copies the first non-empty `nid` entry of `from` (keeping its string
 * type, so the mirrored name encodes like the original). */
static int subject_copy(X509_NAME *to, const X509_NAME *from, int nid) {
  int i = -1;
  X509_NAME_ENTRY *e;

  while ((i = X509_NAME_get_index_by_NID(from, nid, i)) >= 0) {
    e = X509_NAME_get_entry(from, i);
    if (ASN1_STRING_length(X509_NAME_ENTRY_get_data(e)) > 0)
      return X509_NAME_add_entry(to, e, -1, 0) ? 0 : -1;
  }
  return 0;
}

static int plan_add_upstream(leaf_plan_t *p, X509 *up) {
  GENERAL_NAMES *names = X509_get_ext_d2i(up, NID_subject_alt_name, NULL, NULL);
  const X509_NAME *subject = X509_get_subject_name(up);
  GENERAL_NAME *g;
  int i, rc = 0;

  for (i = 0; rc == 0 && i < sk_GENERAL_NAME_num(names); i++) {
    g = sk_GENERAL_NAME_value(names, i);
    /* Only what TLS clients match on; e-mail or URI names are no help. */
    if (g->type == GEN_DNS || g->type == GEN_IPADD) rc = san_add(p, GENERAL_NAME_dup(g));
  }
  GENERAL_NAMES_free(names);
  ERR_clear_error(); /* a certificate without SAN is not an error */
  if (rc == 0) rc = subject_copy(p->subject, subject, NID_organizationName);
  if (rc == 0) rc = subject_copy(p->subject, subject, NID_commonName);
  return rc;
}

static void san_text(const GENERAL_NAME *g, char *buf, size_t len) {
  const ASN1_STRING *s = g->d.ia5;
  int af = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;

  buf[0] = '\0';
  if (g->type == GEN_DNS)
    snprintf(buf, len, "%.*s", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
  else if (inet_ntop(af, ASN1_STRING_get0_data(s), buf, (socklen_t)len) == NULL)
    buf[0] = '\0';
}

/* Without a CN from upstream, name the leaf after what the client asked
 * for, else its first SAN. Longer than a CN may be: leave it to the SAN. */
static int plan_finish_subject(leaf_plan_t *p, const char *preferred) {
  char first[CA_DNS_NAME_MAX + 1];
  const char *cn = preferred;

  if (X509_NAME_get_index_by_NID(p->subject, NID_commonName, -1) >= 0) return 0;
  if (cn == NULL || cn[0] == '\0') {
    san_text(sk_GENERAL_NAME_value(p->sans, 0), first, sizeof(first));
    cn = first;
  }
  if (cn[0] == '\0' || strlen(cn) > CA_CN_MAX) return 0;
  return X509_NAME_add_entry_by_NID(p->subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0)
             ? 0
             : -1;
}

static int plan_from_req(leaf_plan_t *p, const ca_leaf_req_t *req, char *err, size_t errlen) {
  int has_sni = req->sni != NULL && req->sni[0] != '\0';
  int rc = 0;

  if (has_sni && san_add(p, ca_name_to_general(req->sni, &rc, err, errlen)))
    return rc < 0 ? rc : ca_err(err, errlen, CA_ECRYPTO, "out of memory");
  if (req->upstream != NULL && plan_add_upstream(p, req->upstream) != 0)
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot copy the upstream certificate's names");
  if (req->ip != NULL && req->ip[0] != '\0' && !san_has_dns(p)) {
    if (!ca_name_is_ip(req->ip, NULL, NULL))
      return ca_err(err, errlen, CA_EINVAL, "'%.*s' is not an IP address", 100, req->ip);
    if (san_add(p, ca_name_to_general(req->ip, &rc, err, errlen)))
      return rc < 0 ? rc : ca_err(err, errlen, CA_ECRYPTO, "out of memory");
  }
  if (sk_GENERAL_NAME_num(p->sans) == 0)
    return ca_err(err, errlen, CA_EINVAL,
                  "no name for the certificate: need an SNI, an IP address "
                  "or an upstream certificate with names");
  if (plan_finish_subject(p, has_sni ? req->sni : NULL) != 0)
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot set the leaf's subject");
  return 0;
}

static int plan_from_names(leaf_plan_t *p, const char *const *names, size_t n, char *err,
                           size_t errlen) {
  size_t i;
  int rc = 0;

  if (names == NULL || n == 0) return ca_err(err, errlen, CA_EINVAL, "no name for the certificate");
  for (i = 0; i < n; i++) {
    if (names[i] == NULL || names[i][0] == '\0')
      return ca_err(err, errlen, CA_EINVAL, "empty name");
    if (san_add(p, ca_name_to_general(names[i], &rc, err, errlen)))
      return rc < 0 ? rc : ca_err(err, errlen, CA_ECRYPTO, "out of memory");
  }
  if (plan_finish_subject(p, names[0]) != 0)
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot set the leaf's subject");
  return 0;
}

/* Leaves live now-2d .. now+397d, but never outside the CA's own validity:
 * a chain whose leaf outlives its issuer fails on some clients. */
static int leaf_validity(const ca_t *ca, time_t *nb, time_t *na, char *err, size_t errlen) {
  time_t now = time(NULL);
  char when[64];

  *nb = now - CA_BACKDATE_SECONDS;
  *na = now + CA_LEAF_LIFETIME_DAYS * CA_DAY_SECONDS;
  if (*nb < ca->not_before) *nb = ca->not_before;
  if (*na > ca->not_after) *na = ca->not_after;
  if (*na <= now) {
    ca_time_format(ca->not_after, when, sizeof(when));
    return ca_err(err, errlen, CA_EBADCA,
                  "the CA in %s expired on %s; move it away to create a new "
                  "one",
                  ca->dir, when);
  }
  return 0;
}

static int leaf_sign(const ca_t *ca, EVP_PKEY *leaf_key, leaf_plan_t *p, X509 **out, char *err,
                     size_t errlen) {
  unsigned ku = KU_DIGITAL_SIGNATURE;
  X509 *x = NULL;
  time_t nb, na;
  int rc, ok;

  rc = leaf_validity(ca, &nb, &na, err, errlen);
  if (rc < 0) return rc;
  /* RSA key exchange (TLS 1.2 RSA suites) encrypts to the leaf key. */
  if (EVP_PKEY_is_a(leaf_key, "RSA")) ku |= KU_KEY_ENCIPHERMENT;
  x = X509_new();
  ok = x != NULL && X509_set_version(x, X509_VERSION_3) && ca_x509_set_serial(x) == 0 &&
       X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
       X509_set_subject_name(x, p->subject) && ca_x509_set_validity(x, nb, na) == 0 &&
       X509_set_pubkey(x, leaf_key) && ca_x509_add_key_usage(x, ku) == 0 &&
       ca_x509_add_eku_server(x) == 0 && ca_x509_add_aki(x, ca->key_id) == 0 &&
       /* RFC 5280 4.2.1.6: with an empty subject the SAN is critical. */
       ca_x509_add_san(x, p->sans, X509_NAME_entry_count(p->subject) == 0) == 0 &&
       X509_sign(x, ca->key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(x);
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot sign a leaf certificate");
  }
  /* Fill OpenSSL's lazily computed extension cache now, while the
   * certificate is still private to this thread. */
  X509_check_purpose(x, -1, 0);
  *out = x;
  return 0;
}

int ca_leaf_mint(const ca_t *ca, EVP_PKEY *leaf_key, const ca_leaf_req_t *req, X509 **out,
                 char *err, size_t errlen) {
  leaf_plan_t plan;
  int rc;

  *out = NULL;
  if (req == NULL) return ca_err(err, errlen, CA_EINVAL, "no leaf request");
  rc = plan_init(&plan, err, errlen);
  if (rc == 0) rc = plan_from_req(&plan, req, err, errlen);
  if (rc == 0) rc = leaf_sign(ca, leaf_key, &plan, out, err, errlen);
  plan_free(&plan);
  return rc;
}

int ca_leaf_mint_names(const ca_t *ca, EVP_PKEY *leaf_key, const char *const *names, size_t n,
                       X509 **out, char *err, size_t errlen) {
  leaf_plan_t plan;
  int rc;

  *out = NULL;
  rc = plan_init(&plan, err, errlen);
  if (rc == 0) rc = plan_from_names(&plan, names, n, err, errlen);
  if (rc == 0) rc = leaf_sign(ca, leaf_key, &plan, out, err, errlen);
  plan_free(&plan);
  return rc;
}
