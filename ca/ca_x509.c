/* ca_x509.c — the small X.509 building blocks the CA and the leaves share:
 * error text, key types, serials, validity, extensions, subject names. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "ca/ca_internal.h"

/* ---- errors ------------------------------------------------------------ */

static void err_vformat(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void err_vformat(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (err == NULL || errlen == 0) return;
  if (vsnprintf(err, errlen, fmt, ap) < 0) err[0] = '\0';
}

int ca_err(char *err, size_t errlen, int code, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  err_vformat(err, errlen, fmt, ap);
  va_end(ap);
  return code;
}

int ca_err_ssl(char *err, size_t errlen, int code, const char *fmt, ...) {
  char reason[256] = "no detail";
  unsigned long e = ERR_peek_error();
  const char *text;
  size_t used;
  va_list ap;

  /* The oldest queued error is the root cause; later ones are callers
   * wrapping it ("X509_sign failed") and say less. */
  if (e != 0) {
    text = ERR_reason_error_string(e);
    if (text != NULL)
      snprintf(reason, sizeof(reason), "%s", text);
    else
      ERR_error_string_n(e, reason, sizeof(reason));
  }
  ERR_clear_error();
  va_start(ap, fmt);
  err_vformat(err, errlen, fmt, ap);
  va_end(ap);
  if (err == NULL || errlen == 0) return code;
  used = strlen(err);
  if (used < errlen) snprintf(err + used, errlen - used, " (OpenSSL: %s)", reason);
  return code;
}

/* ---- key types --------------------------------------------------------- */

static const char *const key_type_names[] = {
    [CA_KEY_P256] = "p256",
    [CA_KEY_P384] = "p384",
    [CA_KEY_RSA2048] = "rsa2048",
    [CA_KEY_RSA3072] = "rsa3072",
};

#define KEY_TYPE_COUNT (sizeof(key_type_names) / sizeof(key_type_names[0]))

int ca_key_type_parse(const char *name, ca_key_type_t *out) {
  size_t i;

  if (name == NULL) return CA_EINVAL;
  for (i = 0; i < KEY_TYPE_COUNT; i++) {
    if (strcasecmp(name, key_type_names[i]) == 0) {
      if (out != NULL) *out = (ca_key_type_t)i;
      return 0;
    }
  }
  return CA_EINVAL;
}

const char *ca_key_type_name(ca_key_type_t type) {
  if ((size_t)type >= KEY_TYPE_COUNT) return "unknown";
  return key_type_names[type];
}

EVP_PKEY *ca_key_generate(ca_key_type_t type, char *err, size_t errlen) {
  EVP_PKEY *key = NULL;

  switch (type) {
    case CA_KEY_P256:
      key = EVP_EC_gen("P-256");
      break;
    case CA_KEY_P384:
      key = EVP_EC_gen("P-384");
      break;
    case CA_KEY_RSA2048:
      key = EVP_RSA_gen(2048);
      break;
    case CA_KEY_RSA3072:
      key = EVP_RSA_gen(3072);
      break;
    default:
      ca_err(err, errlen, CA_EINVAL, "unknown key type %d", (int)type);
      return NULL;
  }
  if (key == NULL)
    ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot generate a %s key", ca_key_type_name(type));
  return key;
}

/* ---- serial and validity ----------------------------------------------- */

int ca_x509_set_serial(X509 *x) {
  BIGNUM *bn = BN_new();
  int rc = -1;

  /* Top bit forced on: always exactly 128 bits, positive, never zero. */
  if (bn == NULL || !BN_rand(bn, CA_SERIAL_BITS, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)) goto Exit;
  if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) goto Exit;
  rc = 0;
Exit:
  BN_free(bn);
  return rc;
}

int ca_x509_set_validity(X509 *x, time_t not_before, time_t not_after) {
  /* ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after, as
   * RFC 5280 requires. */
  if (ASN1_TIME_set(X509_getm_notBefore(x), not_before) == NULL) return -1;
  if (ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL) return -1;
  return 0;
}

int ca_time_from_asn1(const ASN1_TIME *t, time_t *out) {
  struct tm tm;

  memset(&tm, 0, sizeof(tm));
  if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) return -1;
  *out = timegm(&tm);
  return 0;
}

void ca_time_format(time_t t, char *buf, size_t len) {
  struct tm tm;

  if (len == 0) return;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    snprintf(buf, len, "%lld", (long long)t);
}

/* ---- extensions -------------------------------------------------------- */

int ca_x509_add_basic_ca(X509 *x) {
  BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
  int ok;

  if (bc == NULL) return -1;
  bc->ca = 0xFF; /* DER TRUE; no pathLen: a local CA signs leaves only */
  ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT);
  BASIC_CONSTRAINTS_free(bc);
  return ok == 1 ? 0 : -1;
}

int ca_x509_add_key_usage(X509 *x, unsigned bits) {
  /* KU_* flags are the first byte of the BIT STRING, MSB first; bit numbers
   * are RFC 5280's (digitalSignature = 0 ... cRLSign = 6). */
  static const unsigned flags[] = {KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT,
                                   KU_DATA_ENCIPHERMENT, KU_KEY_AGREEMENT,   KU_KEY_CERT_SIGN,
                                   KU_CRL_SIGN};
  ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
  int ok = ku != NULL;
  size_t i;

  for (i = 0; ok && i < sizeof(flags) / sizeof(flags[0]); i++)
    if (bits & flags[i]) ok = ASN1_BIT_STRING_set_bit(ku, (int)i, 1);
  if (ok) ok = X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
  ASN1_BIT_STRING_free(ku);
  return ok ? 0 : -1;
}

ASN1_OCTET_STRING *ca_x509_key_id(X509 *cert) {
  const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASN1_OCTET_STRING *id;

  if (ski != NULL) return ASN1_OCTET_STRING_dup(ski);
  /* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
  if (!X509_pubkey_digest(cert, EVP_sha1(), md, &len)) return NULL;
  id = ASN1_OCTET_STRING_new();
  if (id != NULL && !ASN1_OCTET_STRING_set(id, md, (int)len)) {
    ASN1_OCTET_STRING_free(id);
    id = NULL;
  }
  return id;
}

int ca_x509_add_ski(X509 *x) {
  ASN1_OCTET_STRING *id = ca_x509_key_id(x);
  int ok;

  if (id == NULL) return -1;
  ok = X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0, X509V3_ADD_DEFAULT);
  ASN1_OCTET_STRING_free(id);
  return ok == 1 ? 0 : -1;
}

int ca_x509_add_aki(X509 *x, const ASN1_OCTET_STRING *key_id) {
  AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
  int ok = 0;

  /* keyIdentifier only: issuer+serial would tie leaves to one CA serial. */
  if (akid != NULL && (akid->keyid = ASN1_OCTET_STRING_dup(key_id)) != NULL)
    ok = X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
  AUTHORITY_KEYID_free(akid);
  return ok ? 0 : -1;
}

int ca_x509_add_eku_server(X509 *x) {
  EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
  int ok = 0;

  /* OBJ_nid2obj returns a static object: the stack must not free it. */
  if (eku != NULL && sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
    ok = X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
  sk_ASN1_OBJECT_free(eku);
  return ok ? 0 : -1;
}

int ca_x509_add_san(X509 *x, GENERAL_NAMES *names, int critical) {
  return X509_add1_ext_i2d(x, NID_subject_alt_name, names, critical, X509V3_ADD_DEFAULT) == 1 ? 0
                                                                                              : -1;
}

/* ---- names ------------------------------------------------------------- */

int ca_name_is_ip(const char *s, unsigned char *ip, size_t *iplen) {
  unsigned char buf[16];
  char inner[64];
  size_t len = strlen(s);

  if (inet_pton(AF_INET, s, buf) == 1) {
    if (ip != NULL) memcpy(ip, buf, 4);
    if (iplen != NULL) *iplen = 4;
    return 1;
  }
  /* "[::1]" is how IPv6 appears in CONNECT lines and URLs. */
  if (len >= 2 && s[0] == '[' && s[len - 1] == ']' && len - 2 < sizeof(inner)) {
    memcpy(inner, s + 1, len - 2);
    inner[len - 2] = '\0';
    s = inner;
  }
  if (inet_pton(AF_INET6, s, buf) == 1) {
    if (ip != NULL) memcpy(ip, buf, 16);
    if (iplen != NULL) *iplen = 16;
    return 1;
  }
  return 0;
}

/* Letters, digits, '-', '_' in non-empty labels of at most 63 bytes; a
 * leading "*." for a wildcard. Stricter than DNS, looser than IDNA (which
 * arrives here already as A-labels). Names come off the wire, so anything
 * else — spaces, control bytes, non-ASCII — is refused, not escaped. */
static int dns_name_valid(const char *s) {
  size_t len = strlen(s), label = 0, i;

  if (len == 0 || len > CA_DNS_NAME_MAX) return 0;
  if (len > 2 && s[0] == '*' && s[1] == '.') s += 2;
  for (i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return 0;
    if (++label > 63) return 0;
  }
  return label > 0;
}

GENERAL_NAME *ca_name_to_general(const char *name, int *rc, char *err, size_t errlen) {
  unsigned char ip[16];
  size_t iplen = 0;
  GENERAL_NAME *gn = NULL;
  ASN1_STRING *value = NULL;
  int is_ip = ca_name_is_ip(name, ip, &iplen);

  *rc = 0;
  if (!is_ip && !dns_name_valid(name)) {
    *rc =
        ca_err(err, errlen, CA_EINVAL, "'%.*s' is neither a DNS name nor an IP address", 300, name);
    return NULL;
  }
  gn = GENERAL_NAME_new();
  value = is_ip ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
  if (gn == NULL || value == NULL ||
      !(is_ip ? ASN1_OCTET_STRING_set(value, ip, (int)iplen) : ASN1_STRING_set(value, name, -1))) {
    *rc = ca_err_ssl(err, errlen, CA_ECRYPTO, "out of memory for a name");
    GENERAL_NAME_free(gn);
    ASN1_STRING_free(value);
    return NULL;
  }
  GENERAL_NAME_set0_value(gn, is_ip ? GEN_IPADD : GEN_DNS, value);
  return gn;
}

int ca_key_short_id(EVP_PKEY *key, char *out, size_t outlen) {
  unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int derlen, ok;

  if (outlen < CA_SHORT_ID_LEN) return -1;
  out[0] = '\0';
  derlen = i2d_PUBKEY(key, &der);
  ok = derlen > 0 && EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL) && mdlen >= 4;
  OPENSSL_free(der);
  if (!ok) {
    ERR_clear_error();
    return -1;
  }
  snprintf(out, outlen, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
  return 0;
}
