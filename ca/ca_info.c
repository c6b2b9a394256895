/* ca_info.c — what users see of the CA: fingerprint, exported certificate,
 * and the `tlspeek ca info` text with the ways to trust it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "ca/ca_internal.h"

void ca_fingerprint_sha256(X509 *cert, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0, i;
  size_t pos = 0;

  if (outlen == 0) return;
  out[0] = '\0';
  if (!X509_digest(cert, EVP_sha256(), md, &len)) {
    ERR_clear_error();
    return;
  }
  /* Three bytes per digest byte ("AB:"), the last ':' becomes the NUL. */
  for (i = 0; i < len && pos + 3 <= outlen; i++) {
    out[pos++] = hex[md[i] >> 4];
    out[pos++] = hex[md[i] & 0xF];
    out[pos++] = ':';
  }
  out[pos > 0 ? pos - 1 : 0] = '\0';
}

/* Java marks a trusted certificate entry of a PKCS#12 store with this bag
 * attribute (Oracle's "trusted key usage"), whose value is the extended key
 * usage it is trusted for; OpenSSL 3.0 has no name for it. Without it Java
 * ignores the certificate. */
#define CA_JDK_TRUST_OID "2.16.840.1.113894.746875.1.1"
#define CA_ANY_EKU_OID "2.5.29.37.0"

/* The certificate alone in an unencrypted safe (it is public), the store
 * integrity-protected by a SHA-256 MAC under CA_P12_PASSWORD as Java
 * expects of a truststore. OpenSSL's PKCS12_create() cannot add the trust
 * attribute to a certificate bag, hence the bag is built here. */
static int p12_encode(const ca_t *ca, BIO *mem) {
  STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
  STACK_OF(PKCS7) *safes = NULL;
  PKCS12_SAFEBAG *bag;
  PKCS12 *p12 = NULL;
  ASN1_OBJECT *any_eku = OBJ_txt2obj(CA_ANY_EKU_OID, 1);
  char id[CA_SHORT_ID_LEN], alias[32] = "tlspeek";
  int ok;

  if (ca_key_short_id(X509_get0_pubkey(ca->cert), id, sizeof(id)) == 0)
    snprintf(alias, sizeof(alias), "tlspeek-%s", id);
  bag = any_eku != NULL ? PKCS12_add_cert(&bags, ca->cert) : NULL;
  ok = bag != NULL && PKCS12_add_friendlyname_asc(bag, alias, -1) &&
       PKCS12_add1_attr_by_txt(bag, CA_JDK_TRUST_OID, V_ASN1_OBJECT,
                               (const unsigned char *)any_eku, -1) &&
       PKCS12_add_safe(&safes, bags, -1, PKCS12_DEFAULT_ITER, NULL);
  if (ok) p12 = PKCS12_add_safes(safes, 0);
  ok = p12 != NULL &&
       PKCS12_set_mac(p12, CA_P12_PASSWORD, -1, NULL, 0, PKCS12_DEFAULT_ITER, EVP_sha256()) &&
       i2d_PKCS12_bio(mem, p12);
  PKCS12_free(p12);
  sk_PKCS7_pop_free(safes, PKCS7_free);
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  ASN1_OBJECT_free(any_eku);
  return ok ? 0 : -1;
}

static int export_encode(const ca_t *ca, int format, BIO *mem) {
  if (mem == NULL) return -1;
  switch (format) {
  case CA_EXPORT_PEM: return PEM_write_bio_X509(mem, ca->cert) ? 0 : -1;
  case CA_EXPORT_DER: return i2d_X509_bio(mem, ca->cert) ? 0 : -1;
  case CA_EXPORT_P12: return p12_encode(ca, mem);
  default: return -1;
  }
}

int ca_export(const ca_t *ca, const char *path, int format, char *err, size_t errlen) {
  BIO *mem = BIO_new(BIO_s_mem());
  char *data = NULL;
  long len;
  ssize_t n;
  int fd = -1, rc = 0;

  if (export_encode(ca, format, mem) != 0) {
    rc = ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot encode the CA certificate");
    goto Exit;
  }
  len = BIO_get_mem_data(mem, &data);
  /* Plain open+truncate, not temp+rename: the target may be a pipe or
   * /dev/stdout, and it is public data. */
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = ca_err(err, errlen, CA_EIO, "cannot create %s: %s", path, strerror(errno));
    goto Exit;
  }
  while (len > 0) {
    n = write(fd, data, (size_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = ca_err(err, errlen, CA_EIO, "cannot write %s: %s", path, strerror(errno));
      goto Exit;
    }
    data += n;
    len -= n;
  }
  if (close(fd) != 0)
    rc = ca_err(err, errlen, CA_EIO, "cannot write %s: %s", path, strerror(errno));
  fd = -1;
Exit:
  if (fd >= 0) close(fd);
  BIO_free(mem);
  return rc;
}

static void print_key(EVP_PKEY *key, FILE *out) {
  char group[64];
  const char *nist;

  if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_group_name(key, group, sizeof(group), NULL)) {
    /* "P-256" is what --ca-key-type users typed; "prime256v1" is not. */
    nist = EC_curve_nid2nist(OBJ_txt2nid(group));
    fprintf(out, "  key:          EC %s\n", nist != NULL ? nist : group);
  } else
    fprintf(out, "  key:          %s %d bits\n", EVP_PKEY_get0_type_name(key),
            EVP_PKEY_get_bits(key));
}

void ca_print_info(const ca_t *ca, FILE *out) {
  BIO *bio = BIO_new_fp(out, BIO_NOCLOSE);
  char fp[96], from[64], until[64];
  int width;

  ca_fingerprint_sha256(ca->cert, fp, sizeof(fp));
  ca_time_format(ca->not_before, from, sizeof(from));
  ca_time_format(ca->not_after, until, sizeof(until));
  fprintf(out, "tlspeek CA in %s\n  subject:      ", ca->dir);
  if (bio != NULL)
    X509_NAME_print_ex(bio, X509_get_subject_name(ca->cert), 0, XN_FLAG_ONELINE & ~XN_FLAG_SPC_EQ);
  BIO_free(bio);
  fprintf(out,
          "\n  valid from:   %s\n"
          "  valid until:  %s\n"
          "  SHA-256:      %s\n",
          from, until, fp);
  print_key(ca->key, out);
  width = (int)strlen(ca->cert_pem_path); /* the longest of the three */
  fprintf(out,
          "  files:\n"
          "    %-*s  key + certificate (private, mode 0600)\n"
          "    %-*s  certificate, PEM\n"
          "    %-*s  certificate, DER\n",
          width, ca->key_path, width, ca->cert_pem_path, width, ca->cert_der_path);
  ca_print_trust_help(ca, out);
}
