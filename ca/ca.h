/* ca.h — tlspeek's local certificate authority.
 *
 * The CA lives in one directory (default ~/.tlspeek):
 *   tlspeek-ca.pem       private key + certificate, PEM, mode 0600
 *   tlspeek-ca-cert.pem  certificate only, PEM (what users trust)
 *   tlspeek-ca-cert.der  certificate only, DER
 *
 * Every function returns 0 on success or a negative code (CA_E*), and on
 * failure writes a complete, user-facing sentence into `err` (which may be
 * NULL). Nothing here logs or prints; the caller decides. The CA key is never
 * written anywhere but tlspeek-ca.pem.
 *
 * Threads: a ca_t is immutable after ca_open() and may be read from any
 * thread. A ca_minter_t is safe to call from several threads at once.
 */
#ifndef TLSPEEK_CA_H
#define TLSPEEK_CA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CA_ERR_LEN 512

/* The three files inside the CA directory. */
#define CA_KEY_FILE "tlspeek-ca.pem"
#define CA_CERT_PEM_FILE "tlspeek-ca-cert.pem"
#define CA_CERT_DER_FILE "tlspeek-ca-cert.der"

enum {
  CA_EIO = -1,       /* file system error (message names the file) */
  CA_EPERM = -2,     /* key file readable by group/others */
  CA_EINVAL = -3,    /* bad argument (unknown key type, empty name, ...) */
  CA_EBADCA = -4,    /* files exist but are not a usable CA */
  CA_ECRYPTO = -5,   /* OpenSSL failed (message carries its error text) */
  CA_ENOENT = -6,    /* no CA in the directory and creation not requested */
};

typedef enum ca_key_type {
  CA_KEY_P256 = 0,
  CA_KEY_P384,
  CA_KEY_RSA2048,
  CA_KEY_RSA3072,
} ca_key_type_t;

/* "p256", "p384", "rsa2048", "rsa3072" -> *out. Returns 0 or CA_EINVAL. */
int ca_key_type_parse(const char *name, ca_key_type_t *out);
const char *ca_key_type_name(ca_key_type_t type);

/* Generates a fresh private key of the given type. Caller frees. */
EVP_PKEY *ca_key_generate(ca_key_type_t type, char *err, size_t errlen);

/* The default CA directory: $HOME/.tlspeek (static storage, never NULL). */
const char *ca_default_dir(void);

typedef struct ca ca_t;

/* Loads the CA from `dir`. When the directory holds no CA and `create` is
 * non-zero, creates the directory (0700) and a new CA with a key of
 * `key_type` (files written atomically: temp file + rename; an existing CA
 * is never overwritten). Refuses, with a specific message and CA_EPERM /
 * CA_EBADCA: a key file readable by group or others, a key that does not
 * match the certificate, a certificate that is not a CA, an expired CA.
 * `*created` (may be NULL) is set to 1 when a new CA was made. */
int ca_open(const char *dir, int create, ca_key_type_t key_type, ca_t **out,
            int *created, char *err, size_t errlen);
void ca_free(ca_t *ca);

/* Borrowed pointers, valid until ca_free(). */
X509 *ca_cert(const ca_t *ca);
EVP_PKEY *ca_key(const ca_t *ca);
const char *ca_dir(const ca_t *ca);
/* Path of one of the three files ("tlspeek-ca.pem", ...), static per ca_t. */
const char *ca_cert_pem_path(const ca_t *ca);
/* Paths of tlspeek-ca.pem (key + certificate) and tlspeek-ca-cert.der. */
const char *ca_key_path(const ca_t *ca);
const char *ca_cert_der_path(const ca_t *ca);

/* What ca_export() writes: the certificate as PEM or DER, or a PKCS#12
 * truststore holding it as a trusted certificate entry (what Java's
 * keytool makes with -importcert; Java 9+ reads it as a truststore), with
 * the password CA_P12_PASSWORD. */
enum { CA_EXPORT_PEM = 0, CA_EXPORT_DER = 1, CA_EXPORT_P12 = 2 };
#define CA_P12_PASSWORD "changeit" /* the JDK's own truststore default */

/* Writes the CA certificate (never the key) to `path` in `format`. */
int ca_export(const ca_t *ca, const char *path, int format, char *err,
              size_t errlen);

/* Prints subject, validity, SHA-256 fingerprint, file locations and how to
 * trust the CA, per client (curl, wget, git, Python, Node.js, Go, Java,
 * Chromium, Firefox, the Debian system store). */
void ca_print_info(const ca_t *ca, FILE *out);

/* SHA-256 fingerprint of a certificate as "AB:CD:...". `out` >= 96 bytes. */
void ca_fingerprint_sha256(X509 *cert, char *out, size_t outlen);

/* ---- minting --------------------------------------------------------- */

typedef struct ca_minter ca_minter_t;

/* One leaf key (of `leaf_key` type) for the whole process, and an LRU cache
 * of at most `cache_size` (> 0) minted certificates. The minter keeps a
 * reference to `ca`; free the minter first. */
int ca_minter_new(ca_t *ca, ca_key_type_t leaf_key, size_t cache_size,
                  ca_minter_t **out, char *err, size_t errlen);
void ca_minter_free(ca_minter_t *m);

/* The shared leaf private key (borrowed). */
EVP_PKEY *ca_minter_key(const ca_minter_t *m);

/* What a leaf is minted from. Any field may be NULL, but at least one of
 * `sni`, `ip` or `upstream` must give a name.
 *   sni       the name the client asked for (SNI, CONNECT host, Host)
 *   ip        the upstream IP address as text (IPv4 or IPv6), used as an
 *             IP SAN when no DNS name is known (and always accepted)
 *   upstream  the upstream server's certificate: its subject CN and O are
 *             copied and its subjectAltNames (DNS and IP) mirrored.
 * The leaf's SAN = upstream SANs ∪ sni ∪ (ip when no DNS name at all). A
 * `sni` that is an IP literal becomes an IP SAN. */
typedef struct ca_leaf_req {
  const char *sni;
  const char *ip;
  X509 *upstream;
} ca_leaf_req_t;

/* Returns (in *out, a new reference the caller X509_free()s) a leaf
 * certificate for `req`, signed by the CA: random 128-bit serial, SHA-256,
 * valid now-2d .. min(now+397d, CA notAfter), keyUsage digitalSignature
 * (+keyEncipherment for RSA), EKU serverAuth, AKI = CA's SKI, no SKI.
 * A cache hit returns the cached certificate and signs nothing. */
int ca_mint_leaf(ca_minter_t *m, const ca_leaf_req_t *req, X509 **out,
                 char *err, size_t errlen);

/* Mints, without the cache, one leaf naming all of `names` (n >= 1; DNS
 * names, "*.wildcards" or IP literals); the first becomes the CN. Same
 * profile as ca_mint_leaf. Counts in stats.signatures. For `tlspeek ca
 * mint`; the caller X509_free()s *out, whose key is ca_minter_key(). */
int ca_mint_names(ca_minter_t *m, const char *const *names, size_t n,
                  X509 **out, char *err, size_t errlen);

typedef struct ca_minter_stats {
  uint64_t hits;
  uint64_t misses;
  uint64_t signatures; /* certificates actually signed */
  uint64_t evictions;
  size_t entries;
} ca_minter_stats_t;

void ca_minter_stats(ca_minter_t *m, ca_minter_stats_t *out);

#endif
