/* ca.c — finding, creating, loading and validating the CA directory.
 *
 * tlspeek-ca.pem (key + certificate) is the single source of truth and the
 * commit point of creation: it appears in one atomic, non-clobbering step,
 * and the two certificate-only files are derived from it on every open (and
 * rewritten when missing or stale). So two processes creating at once end
 * with one CA: the loser loads the winner's key file and derives the same
 * exports from it. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca/ca_internal.h"

/* ---- default directory ------------------------------------------------- */

static char default_dir[PATH_MAX];
static pthread_once_t default_dir_once = PTHREAD_ONCE_INIT;

static void on_default_dir_once(void) {
  const char *home = getenv("HOME");
  struct passwd *pw;

  if (home == NULL || home[0] == '\0') {
    pw = getpwuid(getuid());
    home = pw != NULL && pw->pw_dir != NULL ? pw->pw_dir : ".";
  }
  if (snprintf(default_dir, sizeof(default_dir), "%s/.tlspeek", home) >= (int)sizeof(default_dir))
    snprintf(default_dir, sizeof(default_dir), "./.tlspeek");
}

const char *ca_default_dir(void) {
  pthread_once(&default_dir_once, on_default_dir_once);
  return default_dir;
}

/* ---- accessors --------------------------------------------------------- */

X509 *ca_cert(const ca_t *ca) {
  return ca->cert;
}
EVP_PKEY *ca_key(const ca_t *ca) {
  return ca->key;
}
const char *ca_dir(const ca_t *ca) {
  return ca->dir;
}
const char *ca_cert_pem_path(const ca_t *ca) {
  return ca->cert_pem_path;
}
const char *ca_key_path(const ca_t *ca) {
  return ca->key_path;
}
const char *ca_cert_der_path(const ca_t *ca) {
  return ca->cert_der_path;
}

void ca_free(ca_t *ca) {
  if (ca == NULL) return;
  X509_free(ca->cert);
  EVP_PKEY_free(ca->key);
  ASN1_OCTET_STRING_free(ca->key_id);
  free(ca);
}

static int join(char *out, const char *dir, const char *file) {
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
  return n < 0 || n >= PATH_MAX ? -1 : 0;
}

static int paths_init(ca_t *ca, const char *dir, char *err, size_t errlen) {
  size_t len = strlen(dir);

  /* "dir/" and "dir" are the same CA; keep messages free of "//". */
  while (len > 1 && dir[len - 1] == '/')
    len--;
  if (len == 0 || len >= sizeof(ca->dir))
    return ca_err(err, errlen, CA_EINVAL, "bad CA directory '%s'", dir);
  memcpy(ca->dir, dir, len);
  ca->dir[len] = '\0';
  if (join(ca->key_path, ca->dir, CA_KEY_FILE) != 0 ||
      join(ca->cert_pem_path, ca->dir, CA_CERT_PEM_FILE) != 0 ||
      join(ca->cert_der_path, ca->dir, CA_CERT_DER_FILE) != 0)
    return ca_err(err, errlen, CA_EINVAL, "CA directory path too long: %s", ca->dir);
  return 0;
}

/* ---- validation -------------------------------------------------------- */

/* An existing CA directory that group or others may enter is refused, as a
 * group/other-readable key file is: it holds the CA's private key, and
 * tlspeek does not change the mode of a directory it did not create (it
 * may be shared with other things). A missing one is created 0700 later. */
static int ca_dir_check(const char *dir, char *err, size_t errlen) {
  struct stat st;

  if (stat(dir, &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode))
    return ca_err(err, errlen, CA_EINVAL, "the CA directory %s is not a directory", dir);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return ca_err(err, errlen, CA_EPERM,
                  "the CA directory %s is accessible by group or others (mode %03o); it holds "
                  "the CA's private key; fix it with: chmod 700 %s",
                  dir, (unsigned)(st.st_mode & 0777), dir);
  return 0;
}

/* Never prompt on the terminal for a passphrase: an encrypted key is not
 * ours, and a proxy must not block on stdin. */
static int on_key_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static int ca_validate(ca_t *ca, char *err, size_t errlen) {
  const char *path = ca->key_path;
  uint32_t flags;
  char when[64];

  if (X509_check_private_key(ca->cert, ca->key) != 1) {
    ERR_clear_error();
    return ca_err(err, errlen, CA_EBADCA,
                  "the private key in %s does not match the certificate in "
                  "it",
                  path);
  }
  flags = X509_get_extension_flags(ca->cert);
  if ((flags & EXFLAG_INVALID) || !(flags & EXFLAG_CA))
    return ca_err(err, errlen, CA_EBADCA,
                  "the certificate in %s is not a CA certificate "
                  "(basicConstraints CA:TRUE is missing)",
                  path);
  if (!(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN))
    return ca_err(err, errlen, CA_EBADCA,
                  "the certificate in %s is not a CA certificate "
                  "(keyUsage lacks keyCertSign)",
                  path);
  if (ca_time_from_asn1(X509_get0_notBefore(ca->cert), &ca->not_before) ||
      ca_time_from_asn1(X509_get0_notAfter(ca->cert), &ca->not_after))
    return ca_err(err, errlen, CA_EBADCA, "the certificate in %s has an unreadable validity", path);
  if (ca->not_after <= time(NULL)) {
    ca_time_format(ca->not_after, when, sizeof(when));
    return ca_err(err, errlen, CA_EBADCA,
                  "the CA certificate in %s expired on %s; move %s away to "
                  "create a new CA",
                  path, when, ca->dir);
  }
  ca->key_id = ca_x509_key_id(ca->cert);
  if (ca->key_id == NULL)
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot compute the key identifier of %s", path);
  return 0;
}

/* Reads key + certificate from tlspeek-ca.pem into ca->key/cert (left NULL
 * on failure) and checks them. CA_ENOENT when there is no key file. */
static int ca_load(ca_t *ca, char *err, size_t errlen) {
  unsigned char *data = NULL;
  size_t len = 0;
  struct stat st;
  BIO *bio = NULL;
  int rc;

  rc = ca_file_read(ca->key_path, CA_FILE_MAX, &data, &len, &st, err, errlen);
  if (rc < 0) goto Exit;
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    rc = ca_err(err, errlen, CA_EPERM,
                "the CA key file %s is accessible by group or others (mode "
                "%03o); fix it with: chmod 600 %s",
                ca->key_path, (unsigned)(st.st_mode & 0777), ca->key_path);
    goto Exit;
  }
  /* Two passes over the same bytes: each PEM reader skips blocks of the
   * other type, so the order inside the file does not matter. */
  bio = BIO_new_mem_buf(data, (int)len);
  if (bio != NULL) ca->key = PEM_read_bio_PrivateKey(bio, NULL, on_key_password, NULL);
  BIO_free(bio);
  bio = BIO_new_mem_buf(data, (int)len);
  if (bio != NULL) ca->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  ERR_clear_error(); /* the decoders leave notes about formats they tried */
  if (ca->key == NULL || ca->cert == NULL) {
    rc = ca_err(err, errlen, CA_EBADCA,
                "%s does not hold an unencrypted private key and a "
                "certificate in PEM",
                ca->key_path);
    goto Exit;
  }
  rc = ca_validate(ca, err, errlen);
Exit:
  if (rc < 0) {
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ASN1_OCTET_STRING_free(ca->key_id);
    ca->cert = NULL;
    ca->key = NULL;
    ca->key_id = NULL;
  }
  BIO_free(bio);
  OPENSSL_clear_free(data, len);
  return rc;
}

/* ---- creation ---------------------------------------------------------- */

/* "tlspeek CA (<hostname>) <id>": the hostname tells apart CAs made on
 * different machines, <id> (the first 4 bytes of the SHA-256 of the public
 * key, in hex) two CAs made on the same one, so an error message naming the
 * issuer says which CA it was. The hostname is cut to fit the 64-byte CN
 * limit. CAs made before the id was added keep their name: only new CAs get
 * it. */
static void root_common_name(EVP_PKEY *key, char *cn, size_t len) {
  char host[256] = "localhost", id[CA_SHORT_ID_LEN];
  size_t i;

  if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "?");
  host[sizeof(host) - 1] = '\0';
  for (i = 0; host[i] != '\0'; i++)
    if (host[i] < 0x21 || host[i] > 0x7e) host[i] = '?';
  if (ca_key_short_id(key, id, sizeof(id)) != 0)
    snprintf(cn, len, "tlspeek CA (%.*s)", CA_CN_MAX - 13, host);
  else
    snprintf(cn, len, "tlspeek CA (%.*s) %s", CA_CN_MAX - 23, host, id);
}

static X509 *root_build(EVP_PKEY *key, char *err, size_t errlen) {
  X509 *x = X509_new();
  X509_NAME *name = X509_NAME_new();
  time_t now = time(NULL);
  char cn[CA_CN_MAX + 1];
  int ok;

  root_common_name(key, cn, sizeof(cn));
  ok = x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) &&
       ca_x509_set_serial(x) == 0 &&
       X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                  -1, -1, 0) &&
       X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                  (const unsigned char *)"tlspeek", -1, -1, 0) &&
       X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
       ca_x509_set_validity(x, now - CA_BACKDATE_SECONDS,
                            now + CA_ROOT_LIFETIME_DAYS * CA_DAY_SECONDS) == 0 &&
       X509_set_pubkey(x, key) && ca_x509_add_basic_ca(x) == 0 &&
       ca_x509_add_key_usage(x, KU_KEY_CERT_SIGN | KU_CRL_SIGN) == 0 && ca_x509_add_ski(x) == 0 &&
       X509_sign(x, key, EVP_sha256()) > 0;
  if (!ok) {
    ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot build the CA certificate");
    X509_free(x);
    x = NULL;
  }
  X509_NAME_free(name);
  return x;
}

/* Makes a new CA and installs its key file unless one appeared meanwhile.
 * *won = 1 when ours is the one on disk. */
static int ca_create(ca_t *ca, ca_key_type_t type, int *won, char *err, size_t errlen) {
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  BIO *mem = BIO_new(BIO_s_mem());
  char *data = NULL;
  long len;
  int rc;

  *won = 0;
  rc = ca_dir_make(ca->dir, err, errlen);
  if (rc < 0) goto Exit;
  key = ca_key_generate(type, err, errlen);
  rc = key == NULL ? CA_ECRYPTO : 0;
  if (rc < 0) goto Exit;
  cert = root_build(key, err, errlen);
  rc = cert == NULL ? CA_ECRYPTO : 0;
  if (rc < 0) goto Exit;
  if (mem == NULL || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL) ||
      !PEM_write_bio_X509(mem, cert)) {
    rc = ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot encode the new CA");
    goto Exit;
  }
  len = BIO_get_mem_data(mem, &data);
  rc = ca_file_install(ca->key_path, data, (size_t)len, 0600, 1, err, errlen);
  if (rc >= 0) {
    *won = rc == 0;
    rc = 0;
  }
Exit:
  BIO_free(mem); /* a memory BIO clears its buffer when freed */
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* Rewrites tlspeek-ca-cert.{pem,der} when missing or not ours. */
static int ca_sync_exports(ca_t *ca, char *err, size_t errlen) {
  BIO *pem = BIO_new(BIO_s_mem());
  unsigned char *der = NULL;
  char *pem_data = NULL;
  long pem_len = 0;
  int der_len, rc = 0;

  der_len = i2d_X509(ca->cert, &der);
  if (pem == NULL || der_len <= 0 || !PEM_write_bio_X509(pem, ca->cert)) {
    rc = ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot encode the CA certificate");
    goto Exit;
  }
  pem_len = BIO_get_mem_data(pem, &pem_data);
  if (!ca_file_same(ca->cert_pem_path, pem_data, (size_t)pem_len))
    rc = ca_file_install(ca->cert_pem_path, pem_data, (size_t)pem_len, 0644, 0, err, errlen);
  if (rc == 0 && !ca_file_same(ca->cert_der_path, der, (size_t)der_len))
    rc = ca_file_install(ca->cert_der_path, der, (size_t)der_len, 0644, 0, err, errlen);
Exit:
  OPENSSL_free(der);
  BIO_free(pem);
  return rc;
}

int ca_open(const char *dir, int create, ca_key_type_t key_type, ca_t **out, int *created,
            char *err, size_t errlen) {
  ca_t *ca = NULL;
  int rc, won = 0;

  if (created != NULL) *created = 0;
  if (out == NULL || dir == NULL) return ca_err(err, errlen, CA_EINVAL, "ca_open: no directory");
  *out = NULL;
  if ((unsigned)key_type > CA_KEY_RSA3072)
    return ca_err(err, errlen, CA_EINVAL, "unknown CA key type %d", (int)key_type);
  ca = calloc(1, sizeof(*ca));
  if (ca == NULL) return ca_err(err, errlen, CA_EIO, "out of memory");
  rc = paths_init(ca, dir, err, errlen);
  if (rc < 0) goto Exit;
  rc = ca_dir_check(ca->dir, err, errlen);
  if (rc < 0) goto Exit;
  rc = ca_load(ca, err, errlen);
  if (rc == CA_ENOENT && create) {
    rc = ca_create(ca, key_type, &won, err, errlen);
    /* Load what is on disk now, ours or a concurrent winner's, through the
     * same checks as any later start. */
    if (rc == 0) rc = ca_load(ca, err, errlen);
  } else if (rc == CA_ENOENT) {
    rc = ca_err(err, errlen, CA_ENOENT, "no CA in %s (%s does not exist)", ca->dir, ca->key_path);
  }
  if (rc == 0) rc = ca_sync_exports(ca, err, errlen);
  if (rc < 0) goto Exit;
  if (created != NULL) *created = won;
  *out = ca;
  ca = NULL;
Exit:
  ca_free(ca);
  return rc;
}
