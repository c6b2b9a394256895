/* tlscert.c — the certificates of a Certificate message as text
 * (flt_tls_certs_describe in tlsparse.h). The message is framed with the
 * bounded cursor; each DER certificate is handed to OpenSSL's d2i_X509,
 * which is itself a bounded parser, and only read through its accessors. */
#include "filters/tls/tlsparse.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Certificates rendered per message: real chains have 2-4; a hostile
 * peer could send hundreds. */
#define CERT_MAX_SHOWN 10
/* Subject alternative names listed per certificate. */
#define CERT_MAX_SANS 20

/* A distinguished name in RFC 2253 form, escaped for the terminal. */
static int put_name(flt_strbuf_t *out, const X509_NAME *name) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *p = NULL;
  long n;
  int r = -1;

  if (bio == NULL) return -1;
  /* RFC 2253 escaping, but in the certificate's own order (as openssl
   * x509 -subject prints it), and UTF-8 kept for put_escaped to handle. */
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV & ~ASN1_STRFLGS_ESC_MSB) >=
      0) {
    n = BIO_get_mem_data(bio, &p);
    r = flt_tls_put_escaped(out, (const uint8_t *)p, n > 0 ? (size_t)n : 0);
  }
  BIO_free(bio);
  return r;
}

static int put_time(flt_strbuf_t *out, const ASN1_TIME *t) {
  struct tm tm;
  char buf[64];

  if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return flt_strbuf_appendf(out, "?");
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return flt_strbuf_append(out, buf, strlen(buf));
}

static int put_serial(flt_strbuf_t *out, const ASN1_INTEGER *serial) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  int r = flt_strbuf_appendf(out, "%s", hex ? hex : "?");

  OPENSSL_free(hex);
  BN_free(bn);
  return r;
}

static int put_san(flt_strbuf_t *out, const GENERAL_NAME *gn) {
  const ASN1_STRING *s;
  char ip[INET6_ADDRSTRLEN];

  switch (gn->type) {
    case GEN_DNS:
    case GEN_EMAIL:
    case GEN_URI:
      s = gn->d.ia5;
      flt_strbuf_appendf(out, "%s:",
                         gn->type == GEN_DNS     ? "DNS"
                         : gn->type == GEN_EMAIL ? "email"
                                                 : "URI");
      return flt_tls_put_escaped(out, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    case GEN_IPADD:
      s = gn->d.iPAddress;
      if (ASN1_STRING_length(s) == 4 &&
          inet_ntop(AF_INET, ASN1_STRING_get0_data(s), ip, sizeof(ip)))
        return flt_strbuf_appendf(out, "IP:%s", ip);
      if (ASN1_STRING_length(s) == 16 &&
          inet_ntop(AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof(ip)))
        return flt_strbuf_appendf(out, "IP:%s", ip);
      return flt_strbuf_appendf(out, "IP:?");
    default:
      return flt_strbuf_appendf(out, "(name type %d)", gn->type);
  }
}

static int put_sans(flt_strbuf_t *out, const char *indent, X509 *x) {
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int n, r;

  if (names == NULL) return flt_strbuf_appendf(out, "%sSANs: none\n", indent);
  n = sk_GENERAL_NAME_num(names);
  r = flt_strbuf_appendf(out, "%sSANs: ", indent);
  for (int i = 0; i < n && i < CERT_MAX_SANS; i++) {
    if (i) r |= flt_strbuf_append(out, ", ", 2);
    r |= put_san(out, sk_GENERAL_NAME_value(names, i));
  }
  if (n > CERT_MAX_SANS) r |= flt_strbuf_appendf(out, " \xe2\x80\xa6 (%d in all)", n);
  r |= flt_strbuf_append(out, "\n", 1);
  GENERAL_NAMES_free(names);
  return r;
}

static int put_key(flt_strbuf_t *out, const char *indent, X509 *x) {
  EVP_PKEY *key = X509_get0_pubkey(x);
  char group[64] = "";
  size_t glen = 0;

  if (key == NULL) return flt_strbuf_appendf(out, "%skey: unreadable\n", indent);
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1) group[0] = '\0';
  return flt_strbuf_appendf(out, "%skey: %s%s%s, %d bits\n", indent,
                            EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
                            group[0] ? " " : "", group, EVP_PKEY_get_bits(key));
}

static int put_fingerprint(flt_strbuf_t *out, const char *indent, X509 *x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  int r;

  if (X509_digest(x, EVP_sha256(), md, &n) != 1)
    return flt_strbuf_appendf(out, "%sSHA-256 fingerprint: ?\n", indent);
  r = flt_strbuf_appendf(out, "%sSHA-256 fingerprint: ", indent);
  for (unsigned int i = 0; i < n; i++)
    r |= flt_strbuf_appendf(out, i ? ":%02X" : "%02X", md[i]);
  return r | flt_strbuf_append(out, "\n", 1);
}

static int describe_one(flt_strbuf_t *out, const char *indent, X509 *x) {
  int nid = X509_get_signature_nid(x);
  int r = flt_strbuf_appendf(out, "%ssubject: ", indent);

  r |= put_name(out, X509_get_subject_name(x));
  r |= flt_strbuf_appendf(out, "\n%sissuer:  ", indent);
  r |= put_name(out, X509_get_issuer_name(x));
  r |= flt_strbuf_appendf(
      out, "%s\n%sserial: ",
      X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) ? "" : " (self-issued)",
      indent);
  r |= put_serial(out, X509_get0_serialNumber(x));
  r |= flt_strbuf_appendf(out, "\n%svalid: ", indent);
  r |= put_time(out, X509_get0_notBefore(x));
  r |= flt_strbuf_appendf(out, " \xe2\x86\x92 ");
  r |= put_time(out, X509_get0_notAfter(x));
  r |= flt_strbuf_append(out, "\n", 1);
  r |= put_sans(out, indent, x);
  r |= put_key(out, indent, x);
  r |= flt_strbuf_appendf(out, "%ssignature: %s\n", indent,
                          nid != NID_undef ? OBJ_nid2ln(nid) : "unknown");
  return r | put_fingerprint(out, indent, x);
}

int flt_tls_certs_describe(flt_strbuf_t *out, const char *indent, const uint8_t *msg, size_t len,
                           int tls13) {
  flt_tls_cur_t list;
  const uint8_t *der;
  size_t der_len, i = 0;
  char sub[64];
  int r = 0, got;

  if (flt_tls_cert_list(msg, len, tls13, &list) < 0)
    return flt_strbuf_appendf(out, "%smalformed Certificate message (%zu bytes)\n", indent, len);
  snprintf(sub, sizeof(sub), "%s    ", indent);
  while ((got = flt_tls_cert_next(&list, tls13, &der, &der_len)) == 1) {
    if (++i > CERT_MAX_SHOWN) continue; /* counted, not shown */
    r |= flt_strbuf_appendf(out, "%scertificate %zu (%s, %zu bytes DER):\n", indent, i,
                            i == 1 ? "the server's own" : "chain", der_len);
    const unsigned char *p = der;
    X509 *x = der_len <= LONG_MAX ? d2i_X509(NULL, &p, (long)der_len) : NULL;
    if (x == NULL) {
      r |= flt_strbuf_appendf(out, "%snot a parsable X.509 certificate\n", sub);
      continue;
    }
    r |= describe_one(out, sub, x);
    X509_free(x);
  }
  if (got < 0)
    r |= flt_strbuf_appendf(out,
                            "%s(the list is malformed after "
                            "certificate %zu)\n",
                            indent, i);
  if (i == 0) r |= flt_strbuf_appendf(out, "%sno certificates\n", indent);
  if (i > CERT_MAX_SHOWN)
    r |= flt_strbuf_appendf(out, "%s\xe2\x80\xa6 %zu certificates in all, first %d shown\n", indent,
                            i, CERT_MAX_SHOWN);
  return r;
}

/* A strbuf's text into a fixed field (cut when longer). */
static void cert_field(char *dst, size_t size, flt_strbuf_t *b) {
  snprintf(dst, size, "%s", b->data ? b->data : "");
  flt_strbuf_reset(b);
}

static void cert_sans(flt_strbuf_t *b, X509 *x) {
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int n = names ? sk_GENERAL_NAME_num(names) : 0;

  for (int i = 0; i < n && i < CERT_MAX_SANS; i++) {
    if (i) flt_strbuf_append(b, "\n", 1);
    put_san(b, sk_GENERAL_NAME_value(names, i));
  }
  GENERAL_NAMES_free(names);
}

int flt_tls_cert_info(const uint8_t *der, size_t len, flt_tls_cert_info_t *ci) {
  const unsigned char *p = der;
  X509 *x = len <= LONG_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  flt_strbuf_t b;

  memset(ci, 0, sizeof(*ci));
  if (x == NULL) return -1;
  flt_strbuf_init(&b, sizeof(ci->sans) - 1);
  put_name(&b, X509_get_subject_name(x));
  cert_field(ci->subject, sizeof(ci->subject), &b);
  put_name(&b, X509_get_issuer_name(x));
  cert_field(ci->issuer, sizeof(ci->issuer), &b);
  put_time(&b, X509_get0_notBefore(x));
  cert_field(ci->not_before, sizeof(ci->not_before), &b);
  put_time(&b, X509_get0_notAfter(x));
  cert_field(ci->not_after, sizeof(ci->not_after), &b);
  cert_sans(&b, x);
  cert_field(ci->sans, sizeof(ci->sans), &b);
  flt_strbuf_free(&b);
  if (X509_digest(x, EVP_sha256(), md, &n) == 1)
    for (unsigned int i = 0; i < n && i < 32; i++) snprintf(ci->sha256 + 2 * i, 3, "%02x", md[i]);
  X509_free(x);
  return 0;
}
