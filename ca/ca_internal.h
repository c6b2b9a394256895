/* ca_internal.h — shared by the files of ca/; not part of the contract.
 *
 *   ca.c        open/create/load/validate the CA directory
 *   ca_file.c   small, atomic file operations
 *   ca_x509.c   errors, key types, serials, validity, extensions, names
 *   ca_info.c   fingerprint, export, `ca info` text
 *   ca_leaf.c   what goes into a leaf certificate, and signing it
 *   ca_cache.c  the minter: shared leaf key + thread-safe LRU cache
 */
#ifndef TLSPEEK_CA_INTERNAL_H
#define TLSPEEK_CA_INTERNAL_H

#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "ca/ca.h"

/* Largest file we read back from the CA directory. An RSA-3072 key plus its
 * certificate is about 4 KiB; a file near this cap is not one of ours. */
#define CA_FILE_MAX (64 * 1024)

#define CA_DAY_SECONDS ((time_t)86400)
/* Backdating absorbs clients whose clocks run behind. */
#define CA_BACKDATE_SECONDS (2 * CA_DAY_SECONDS)
#define CA_ROOT_LIFETIME_DAYS 3650
/* 397 days is the longest leaf lifetime browsers accept (CA/B Forum). */
#define CA_LEAF_LIFETIME_DAYS 397
#define CA_SERIAL_BITS 128
#define CA_CN_MAX 64        /* ub-common-name, RFC 5280 */
#define CA_SHORT_ID_LEN 9   /* 8 hex digits + NUL: see ca_key_short_id() */
#define CA_DNS_NAME_MAX 253 /* RFC 1035 */
/* Upstream certificates of big CDNs carry a few hundred names; a leaf never
 * needs more than this many to satisfy a client. */
#define CA_LEAF_MAX_SANS 512

struct ca {
  X509 *cert;
  EVP_PKEY *key;
  ASN1_OCTET_STRING *key_id; /* the CA's SKI, copied into leaves' AKI */
  time_t not_before;
  time_t not_after;
  char dir[PATH_MAX];
  char key_path[PATH_MAX];
  char cert_pem_path[PATH_MAX];
  char cert_der_path[PATH_MAX];
};

/* ---- errors (ca_x509.c) ---- */

/* Formats the message into err (when not NULL) and returns `code`. */
int ca_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, appends the OpenSSL error queue's root cause and clears the queue. */
int ca_err_ssl(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- files (ca_file.c) ---- */

/* Reads at most `cap` bytes of `path` into a new buffer (free it with
 * OPENSSL_clear_free(*data, *len): it may hold a key). `st` receives the
 * fstat() of the file actually read. CA_ENOENT when it does not exist. */
int ca_file_read(const char *path, size_t cap, unsigned char **data, size_t *len, struct stat *st,
                 char *err, size_t errlen);
/* 1 when `path` holds exactly `data`, else 0 (including unreadable). */
int ca_file_same(const char *path, const void *data, size_t len);
/* Writes `data` to a temp file beside `path` (mode `mode`, fsynced), then
 * moves it into place: rename() when `noclobber` is 0, otherwise a move that
 * fails when `path` exists. Returns 0, 1 when `noclobber` found `path`
 * already there (nothing changed), or a negative CA_E*. */
int ca_file_install(const char *path, const void *data, size_t len, mode_t mode, int noclobber,
                    char *err, size_t errlen);
/* mkdir -p, creating missing components with mode 0700. */
int ca_dir_make(const char *dir, char *err, size_t errlen);

/* ---- X.509 building blocks (ca_x509.c) ---- */

/* The first 4 bytes of the SHA-256 of the key's SubjectPublicKeyInfo as 8
 * lowercase hex digits: the id in a new root's CN ("tlspeek CA (host) id")
 * and in the names `ca info` suggests (trust store aliases, file names), so
 * that two CAs on one machine never share them. 0, or -1 when OpenSSL fails
 * or `outlen` < CA_SHORT_ID_LEN. */
int ca_key_short_id(EVP_PKEY *key, char *out, size_t outlen);

/* ---- `ca info` (ca_trust.c) ---- */

/* The per-client instructions for trusting this CA, with its real paths. */
void ca_print_trust_help(const ca_t *ca, FILE *out);


int ca_x509_set_serial(X509 *x);
int ca_x509_set_validity(X509 *x, time_t not_before, time_t not_after);
int ca_x509_add_basic_ca(X509 *x);
/* `bits`: KU_* flags from <openssl/x509v3.h>. */
int ca_x509_add_key_usage(X509 *x, unsigned bits);
int ca_x509_add_ski(X509 *x);
int ca_x509_add_aki(X509 *x, const ASN1_OCTET_STRING *key_id);
int ca_x509_add_eku_server(X509 *x);
int ca_x509_add_san(X509 *x, GENERAL_NAMES *names, int critical);
/* SKI of `cert`, or the RFC 5280 method-1 key id when it has none. */
ASN1_OCTET_STRING *ca_x509_key_id(X509 *cert);
/* ASN1_TIME -> time_t (UTC). Returns 0 or -1. */
int ca_time_from_asn1(const ASN1_TIME *t, time_t *out);
/* "2035-11-24 23:31:00 UTC" */
void ca_time_format(time_t t, char *buf, size_t len);

/* 1 when `s` is an IPv4/IPv6 literal (IPv6 may be in brackets); the address
 * bytes go to `ip` (16 bytes) and their count to `*iplen` when not NULL. */
int ca_name_is_ip(const char *s, unsigned char *ip, size_t *iplen);
/* A new GENERAL_NAME for a DNS name or IP literal, or NULL with err set
 * (CA_EINVAL for a malformed name). */
GENERAL_NAME *ca_name_to_general(const char *name, int *rc, char *err, size_t errlen);

/* ---- leaves (ca_leaf.c) ---- */

/* Build and sign one leaf; no cache, no statistics. */
int ca_leaf_mint(const ca_t *ca, EVP_PKEY *leaf_key, const ca_leaf_req_t *req, X509 **out,
                 char *err, size_t errlen);
int ca_leaf_mint_names(const ca_t *ca, EVP_PKEY *leaf_key, const char *const *names, size_t n,
                       X509 **out, char *err, size_t errlen);

#endif
