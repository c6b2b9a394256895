/* test_ca.c — unit tests for ca/: the CA directory, refusals, minted leaves
 * and the certificate cache. Each test runs in its own temp directory.
 *
 * Certificates the tests need as input (an "upstream", a non-CA, an expired
 * CA, a CA about to expire) are built here with OpenSSL's config-string
 * extension API, independently of how ca/ builds its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"

#define DAY 86400L

typedef struct tdir {
  char root[PATH_MAX];
  char ca_dir[PATH_MAX]; /* root/ca: not there yet, so ca_open creates it */
} tdir_t;

static int on_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup_dir(void **state) {
  tdir_t *t = calloc(1, sizeof(*t));

  assert_non_null(t);
  snprintf(t->root, sizeof(t->root), "/tmp/test_ca.XXXXXX");
  assert_non_null(mkdtemp(t->root));
  assert_true(snprintf(t->ca_dir, sizeof(t->ca_dir), "%s/ca", t->root) > 0);
  *state = t;
  return 0;
}

static int teardown_dir(void **state) {
  tdir_t *t = *state;

  nftw(t->root, on_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(t);
  return 0;
}

static void path_in(const tdir_t *t, const char *file, char *out) {
  assert_true(snprintf(out, PATH_MAX, "%s/%s", t->ca_dir, file) < PATH_MAX);
}

static ca_t *open_new_ca(const tdir_t *t, ca_key_type_t type) {
  char err[CA_ERR_LEN] = "";
  ca_t *ca = NULL;
  int created = -1;

  assert_int_equal(ca_open(t->ca_dir, 1, type, &ca, &created, err, sizeof(err)), 0);
  assert_int_equal(created, 1);
  return ca;
}

static time_t time_of(const ASN1_TIME *a) {
  struct tm tm;

  memset(&tm, 0, sizeof(tm));
  assert_true(ASN1_TIME_to_tm(a, &tm));
  return timegm(&tm);
}

static void assert_near(time_t got, time_t want, long slack) {
  if (labs((long)(got - want)) > slack)
    fail_msg("time %lld, expected %lld +- %ld", (long long)got, (long long)want, slack);
}

static char *fingerprint(X509 *x) {
  static char fp[96];

  ca_fingerprint_sha256(x, fp, sizeof(fp));
  return fp;
}

/* ---- certificates the tests build -------------------------------------- */

static void add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *ext;

  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
  assert_non_null(ext);
  assert_true(X509_add_ext(x, ext, -1));
  X509_EXTENSION_free(ext);
}

/* Self-signed by `key`; `ca` selects CA:TRUE + keyCertSign + SKI. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *org, int ca, long nb, long na,
                       const char *san) {
  X509 *x = X509_new();
  X509_NAME *name = X509_get_subject_name(x);

  assert_true(X509_set_version(x, X509_VERSION_3));
  assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242));
  assert_true(
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0));
  if (org != NULL)
    assert_true(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1,
                                           -1, 0));
  assert_true(X509_set_issuer_name(x, name));
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
  assert_true(X509_set_pubkey(x, key));
  add_ext(x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  add_ext(x, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "digitalSignature");
  add_ext(x, NID_subject_key_identifier, "hash");
  if (san != NULL) add_ext(x, NID_subject_alt_name, san);
  assert_true(X509_sign(x, key, EVP_sha256()) > 0);
  return x;
}

static void write_ca_file(const tdir_t *t, EVP_PKEY *key, X509 *cert) {
  char path[PATH_MAX];
  FILE *f;

  mkdir(t->ca_dir, 0700);
  path_in(t, "tlspeek-ca.pem", path);
  f = fopen(path, "w");
  assert_non_null(f);
  assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
  assert_true(PEM_write_X509(f, cert));
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, 0600), 0);
}

static void expect_refusal(const tdir_t *t, int code, const char *needle) {
  char err[CA_ERR_LEN] = "";
  ca_t *ca = NULL;

  assert_int_equal(ca_open(t->ca_dir, 1, CA_KEY_P256, &ca, NULL, err, sizeof(err)), code);
  assert_null(ca);
  if (strstr(err, needle) == NULL) fail_msg("message: %s", err);
}

static int leaf_verifies(X509 *ca, X509 *leaf, const char *host) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int ok;

  assert_true(X509_STORE_add_cert(store, ca));
  assert_true(X509_STORE_CTX_init(ctx, store, leaf, NULL));
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host, 0);
  ok = X509_verify_cert(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return ok;
}

static void assert_subject(X509 *x, int nid, const char *want) {
  char got[256] = "";

  if (want == NULL) {
    assert_int_equal(X509_NAME_get_index_by_NID(X509_get_subject_name(x), nid, -1), -1);
    return;
  }
  assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, got, sizeof(got)) > 0);
  assert_string_equal(got, want);
}

static void assert_serial_128(X509 *x) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

  assert_non_null(bn);
  assert_false(BN_is_negative(bn));
  assert_int_equal(BN_num_bits(bn), 128);
  BN_free(bn);
}

static int ext_critical(X509 *x, int nid) {
  int i = X509_get_ext_by_NID(x, nid, -1);

  return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

/* ---- the CA itself ----------------------------------------------------- */

static void test_key_type_names(void **state) {
  ca_key_type_t type = CA_KEY_P256;

  (void)state;
  assert_int_equal(ca_key_type_parse("rsa3072", &type), 0);
  assert_int_equal(type, CA_KEY_RSA3072);
  assert_int_equal(ca_key_type_parse("p384", &type), 0);
  assert_string_equal(ca_key_type_name(type), "p384");
  assert_int_equal(ca_key_type_parse("ed25519", &type), CA_EINVAL);
  assert_int_equal(ca_key_type_parse(NULL, &type), CA_EINVAL);
}

static void test_fresh_ca_properties(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  X509 *x = ca_cert(ca);
  char host[256] = "", want_cn[128], path[PATH_MAX];
  unsigned char *spki = NULL, md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int spki_len;
  BASIC_CONSTRAINTS *bc;
  struct stat st;
  time_t now = time(NULL);
  int crit = -1;

  gethostname(host, sizeof(host));
  /* CNs hold 64 bytes: the hostname is cut to fit. The id after it is the
   * start of the SHA-256 of the public key, so two CAs never share a name. */
  spki_len = i2d_PUBKEY(X509_get0_pubkey(x), &spki);
  assert_true(spki_len > 0);
  assert_true(EVP_Digest(spki, (size_t)spki_len, md, &mdlen, EVP_sha256(), NULL));
  OPENSSL_free(spki);
  snprintf(want_cn, sizeof(want_cn), "tlspeek CA (%.41s) %02x%02x%02x%02x", host, md[0], md[1],
           md[2], md[3]);
  assert_subject(x, NID_commonName, want_cn);
  assert_subject(x, NID_organizationName, "tlspeek");
  assert_int_equal(X509_get_version(x), X509_VERSION_3);
  assert_serial_128(x);
  assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  assert_true(EVP_PKEY_is_a(ca_key(ca), "EC"));
  assert_int_equal(EVP_PKEY_get_bits(ca_key(ca)), 256);
  assert_int_equal(X509_check_issued(x, x), X509_V_OK); /* self-signed */
  assert_int_equal(X509_verify(x, ca_key(ca)), 1);

  bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
  assert_non_null(bc);
  assert_true(bc->ca);
  assert_int_equal(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  assert_int_equal(ext_critical(x, NID_key_usage), 1);
  assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  assert_non_null(X509_get0_subject_key_id(x));

  assert_near(time_of(X509_get0_notBefore(x)), now - 2 * DAY, 120);
  assert_near(time_of(X509_get0_notAfter(x)), now + 3650 * DAY, 120);

  assert_int_equal(stat(t->ca_dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  path_in(t, "tlspeek-ca.pem", path);
  assert_string_equal(ca_key_path(ca), path);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  path_in(t, "tlspeek-ca-cert.pem", path);
  assert_string_equal(ca_cert_pem_path(ca), path);
  assert_int_equal(stat(path, &st), 0);
  path_in(t, "tlspeek-ca-cert.der", path);
  assert_string_equal(ca_cert_der_path(ca), path);
  assert_int_equal(stat(path, &st), 0);
  assert_string_equal(ca_dir(ca), t->ca_dir);
  ca_free(ca);
}

static void test_reload_same_ca(void **state) {
  tdir_t *t = *state;
  char err[CA_ERR_LEN], fp[96], path[PATH_MAX];
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  int created = -1;

  snprintf(fp, sizeof(fp), "%s", fingerprint(ca_cert(ca)));
  ca_free(ca);
  /* A lost export is rebuilt from the key file on the next open. */
  path_in(t, "tlspeek-ca-cert.der", path);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(ca_open(t->ca_dir, 0, CA_KEY_P256, &ca, &created, err, sizeof(err)), 0);
  assert_int_equal(created, 0);
  assert_string_equal(fingerprint(ca_cert(ca)), fp);
  assert_int_equal(access(path, R_OK), 0);
  ca_free(ca);
}

static void test_no_ca_without_create(void **state) {
  tdir_t *t = *state;
  char err[CA_ERR_LEN] = "";
  ca_t *ca = NULL;

  assert_int_equal(ca_open(t->ca_dir, 0, CA_KEY_P256, &ca, NULL, err, sizeof(err)), CA_ENOENT);
  assert_null(ca);
  assert_non_null(strstr(err, t->ca_dir));
  assert_int_equal(access(t->ca_dir, F_OK), -1); /* and nothing created */
}

static void test_refuse_readable_key(void **state) {
  tdir_t *t = *state;
  char path[PATH_MAX], want[PATH_MAX + 16];

  ca_free(open_new_ca(t, CA_KEY_P256));
  path_in(t, "tlspeek-ca.pem", path);
  assert_int_equal(chmod(path, 0644), 0);
  snprintf(want, sizeof(want), "chmod 600 %s", path);
  expect_refusal(t, CA_EPERM, want);
}

static void test_refuse_non_ca(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  X509 *leaf = make_cert(ca_key(ca), "not a ca", NULL, 0, 0, 30 * DAY, NULL);

  write_ca_file(t, ca_key(ca), leaf); /* same key, so only CA-ness is wrong */
  expect_refusal(t, CA_EBADCA, "not a CA");
  X509_free(leaf);
  ca_free(ca);
}

static void test_refuse_mismatched_key(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  EVP_PKEY *other = EVP_EC_gen("P-256");

  write_ca_file(t, other, ca_cert(ca));
  expect_refusal(t, CA_EBADCA, "does not match");
  EVP_PKEY_free(other);
  ca_free(ca);
}

static void test_refuse_expired(void **state) {
  tdir_t *t = *state;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *old = make_cert(key, "old CA", "tlspeek", 1, -400 * DAY, -DAY, NULL);

  write_ca_file(t, key, old);
  expect_refusal(t, CA_EBADCA, "expired");
  X509_free(old);
  EVP_PKEY_free(key);
}

static void test_existing_ca_not_overwritten(void **state) {
  tdir_t *t = *state;
  char err[CA_ERR_LEN], fp[96];
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  int created = -1;

  snprintf(fp, sizeof(fp), "%s", fingerprint(ca_cert(ca)));
  ca_free(ca);
  /* A different key type must not tempt it into making a new CA. */
  assert_int_equal(ca_open(t->ca_dir, 1, CA_KEY_P384, &ca, &created, err, sizeof(err)), 0);
  assert_int_equal(created, 0);
  assert_string_equal(fingerprint(ca_cert(ca)), fp);
  assert_int_equal(EVP_PKEY_get_bits(ca_key(ca)), 256);
  ca_free(ca);
}

/* Four processes create the same CA at the same moment: one wins, all end
 * up using the winner's CA, and the exported certificate is the winner's. */
static void test_concurrent_create(void **state) {
  enum { N = 4 };
  tdir_t *t = *state;
  int go[2], res[2], i, status, winners = 0;
  char line[128], first[128] = "", err[CA_ERR_LEN];
  FILE *f;
  ca_t *ca = NULL;
  X509 *exported;

  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(res), 0);
  for (i = 0; i < N; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      int created = 0, rc;
      close(go[1]);
      /* Blocks until the parent closes go[1]: all start together. */
      if (read(go[0], line, 1) < 0) _exit(3);
      rc = ca_open(t->ca_dir, 1, CA_KEY_P256, &ca, &created, err, sizeof(err));
      snprintf(line, sizeof(line), "%d %d %.95s\n", rc, created,
               rc == 0 ? fingerprint(ca_cert(ca)) : err);
      if (write(res[1], line, strlen(line)) < 0) _exit(4);
      _exit(0);
    }
  }
  close(go[0]);
  close(go[1]);
  close(res[1]);
  f = fdopen(res[0], "r");
  for (i = 0; i < N; i++) {
    int rc = -1, created = -1;
    char fp[128] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(sscanf(line, "%d %d %127s", &rc, &created, fp), 3);
    assert_int_equal(rc, 0);
    winners += created;
    if (first[0] == '\0') snprintf(first, sizeof(first), "%s", fp);
    assert_string_equal(fp, first);
  }
  fclose(f);
  for (i = 0; i < N; i++) {
    wait(&status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_int_equal(winners, 1);
  assert_int_equal(ca_open(t->ca_dir, 0, CA_KEY_P256, &ca, NULL, err, sizeof(err)), 0);
  f = fopen(ca_cert_pem_path(ca), "r");
  exported = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_string_equal(fingerprint(exported), first);
  X509_free(exported);
  ca_free(ca);
}

static void test_export_and_info(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  char err[CA_ERR_LEN], path[PATH_MAX], fp[96];
  char *text = NULL;
  size_t len = 0;
  FILE *f;
  X509 *x;
  static const char *const musts[] = {"SHA-256",
                                      "valid until",
                                      "curl --cacert",
                                      "SSL_CERT_FILE",
                                      "REQUESTS_CA_BUNDLE",
                                      "NODE_EXTRA_CA_CERTS",
                                      "update-ca-certificates",
                                      "wget --ca-certificate=",
                                      "GIT_SSL_CAINFO=",
                                      "keytool -importcert",
                                      "-Djavax.net.ssl.trustStore=",
                                      "-Dhttp.nonProxyHosts= ",
                                      "/usr/local/share/ca-certificates/tlspeek-",
                                      "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n tlspeek-",
                                      "certutil -d sql:PROFILE -A -t C,, -n tlspeek-",
                                      "\"Certificates\": {\"Install\""};
  size_t i;

  snprintf(fp, sizeof(fp), "%s", fingerprint(ca_cert(ca)));
  assert_int_equal(strlen(fp), 95);
  assert_true(snprintf(path, sizeof(path), "%s/out.der", t->root) < PATH_MAX);
  assert_int_equal(ca_export(ca, path, 1, err, sizeof(err)), 0);
  f = fopen(path, "rb");
  x = d2i_X509_fp(f, NULL);
  fclose(f);
  assert_non_null(x);
  assert_int_equal(X509_cmp(x, ca_cert(ca)), 0);
  X509_free(x);
  assert_true(snprintf(path, sizeof(path), "%s/no/such/dir/out.pem", t->root) < PATH_MAX);
  assert_int_equal(ca_export(ca, path, 0, err, sizeof(err)), CA_EIO);
  assert_non_null(strstr(err, path));

  f = open_memstream(&text, &len);
  ca_print_info(ca, f);
  fclose(f);
  assert_non_null(strstr(text, fp));
  assert_non_null(strstr(text, "tlspeek CA ("));
  assert_non_null(strstr(text, ca_cert_pem_path(ca)));
  for (i = 0; i < sizeof(musts) / sizeof(musts[0]); i++)
    if (strstr(text, musts[i]) == NULL) fail_msg("info lacks '%s'", musts[i]);
  free(text);
  ca_free(ca);
}

/* ---- minting ----------------------------------------------------------- */

static ca_minter_t *new_minter(ca_t *ca, ca_key_type_t type, size_t size) {
  char err[CA_ERR_LEN] = "";
  ca_minter_t *m = NULL;

  assert_int_equal(ca_minter_new(ca, type, size, &m, err, sizeof(err)), 0);
  return m;
}

static X509 *mint(ca_minter_t *m, const char *sni, const char *ip, X509 *up) {
  ca_leaf_req_t req = {.sni = sni, .ip = ip, .upstream = up};
  char err[CA_ERR_LEN] = "";
  X509 *leaf = NULL;

  if (ca_mint_leaf(m, &req, &leaf, err, sizeof(err)) != 0)
    fail_msg("mint %s: %s", sni ? sni : "-", err);
  return leaf;
}

/* Checks the fixed leaf profile; returns nothing, fails loudly. */
static void assert_leaf_profile(ca_t *ca, X509 *leaf, unsigned ku) {
  assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
  assert_serial_128(leaf);
  assert_int_equal(X509_get_key_usage(leaf), ku);
  assert_int_equal(ext_critical(leaf, NID_key_usage), 1);
  assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
  assert_int_equal(X509_get_ext_by_NID(leaf, NID_subject_key_identifier, -1), -1);
  assert_non_null(X509_get0_authority_key_id(leaf));
  assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                         X509_get0_subject_key_id(ca_cert(ca))),
                   0);
  assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca_cert(ca))),
                   0);
  assert_true(ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(ca_cert(ca))) <= 0);
}

static void test_mint_mirrors_upstream(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 16);
  EVP_PKEY *up_key = EVP_EC_gen("P-256");
  X509 *up = make_cert(up_key, "upstream.example.test", "Example Org", 0, 0, 90 * DAY,
                       "DNS:upstream.example.test,DNS:*.example.test,"
                       "IP:192.0.2.7,email:ops@example.test");
  X509 *leaf = mint(m, "www.example.test", "198.51.100.1", up);
  time_t now = time(NULL);

  assert_leaf_profile(ca, leaf, KU_DIGITAL_SIGNATURE);
  assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
  assert_true(EVP_PKEY_eq(X509_get0_pubkey(leaf), ca_minter_key(m)));
  assert_subject(leaf, NID_commonName, "upstream.example.test");
  assert_subject(leaf, NID_organizationName, "Example Org");
  assert_true(leaf_verifies(ca_cert(ca), leaf, "www.example.test"));
  assert_int_equal(X509_check_host(leaf, "www.example.test", 0, 0, NULL), 1);
  assert_int_equal(X509_check_host(leaf, "upstream.example.test", 0, 0, NULL), 1);
  assert_int_equal(X509_check_host(leaf, "api.example.test", 0, 0, NULL), 1);
  assert_int_equal(X509_check_host(leaf, "a.b.example.test", 0, 0, NULL), 0);
  assert_int_equal(X509_check_host(leaf, "other.test", 0, 0, NULL), 0);
  assert_false(leaf_verifies(ca_cert(ca), leaf, "other.test"));
  assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
  /* A DNS name is known, so the connection's IP is not added. */
  assert_int_equal(X509_check_ip_asc(leaf, "198.51.100.1", 0), 0);
  assert_int_equal(X509_check_email(leaf, "ops@example.test", 0, 0), 0);
  assert_near(time_of(X509_get0_notBefore(leaf)), now - 2 * DAY, 120);
  assert_near(time_of(X509_get0_notAfter(leaf)), now + 397 * DAY, 120);
  X509_free(leaf);
  X509_free(up);
  EVP_PKEY_free(up_key);
  ca_minter_free(m);
  ca_free(ca);
}

static void test_mint_without_upstream(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 16);
  X509 *leaf = mint(m, "api.local.test", "192.0.2.1", NULL);
  GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);

  assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
  GENERAL_NAMES_free(sans);
  assert_subject(leaf, NID_commonName, "api.local.test");
  assert_subject(leaf, NID_organizationName, NULL);
  assert_true(leaf_verifies(ca_cert(ca), leaf, "api.local.test"));
  X509_free(leaf);

  leaf = mint(m, NULL, "2001:db8::1", NULL); /* no name at all: IP SAN */
  assert_int_equal(X509_check_ip_asc(leaf, "2001:db8::1", 0), 1);
  assert_subject(leaf, NID_commonName, "2001:db8::1");
  X509_free(leaf);

  leaf = mint(m, "10.1.2.3", NULL, NULL); /* an IP literal SNI */
  assert_int_equal(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
  sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
  assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
  assert_int_equal(sk_GENERAL_NAME_value(sans, 0)->type, GEN_IPADD);
  GENERAL_NAMES_free(sans);
  X509_free(leaf);
  ca_minter_free(m);
  ca_free(ca);
}

static void test_mint_rejects_bad_input(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 4), *none = NULL;
  static const char *const bad[] = {"", "bad name", "a..b", "x\x01y", "caf\xc3\xa9.test"};
  char err[CA_ERR_LEN];
  ca_leaf_req_t req = {0};
  X509 *leaf = NULL;
  size_t i;

  assert_int_equal(ca_mint_leaf(m, &req, &leaf, err, sizeof(err)), CA_EINVAL);
  for (i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
    req.sni = bad[i];
    assert_int_equal(ca_mint_leaf(m, &req, &leaf, err, sizeof(err)), CA_EINVAL);
    assert_null(leaf);
  }
  req.sni = NULL;
  req.ip = "not-an-ip";
  assert_int_equal(ca_mint_leaf(m, &req, &leaf, err, sizeof(err)), CA_EINVAL);
  assert_int_equal(ca_mint_names(m, bad, 1, &leaf, err, sizeof(err)), CA_EINVAL);
  assert_int_equal(ca_minter_new(ca, CA_KEY_P256, 0, &none, err, sizeof(err)), CA_EINVAL);
  assert_null(none);
  ca_minter_free(m);
  ca_free(ca);
}

static void test_mint_names(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 4);
  const char *names[] = {"localhost", "127.0.0.1", "::1", "*.dev.test"};
  char err[CA_ERR_LEN];
  ca_minter_stats_t st;
  X509 *leaf = NULL;

  assert_int_equal(ca_mint_names(m, names, 4, &leaf, err, sizeof(err)), 0);
  assert_leaf_profile(ca, leaf, KU_DIGITAL_SIGNATURE);
  assert_subject(leaf, NID_commonName, "localhost");
  assert_true(leaf_verifies(ca_cert(ca), leaf, "localhost"));
  assert_true(leaf_verifies(ca_cert(ca), leaf, "app.dev.test"));
  assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
  ca_minter_stats(m, &st);
  assert_int_equal(st.signatures, 1);
  assert_int_equal(st.entries, 0); /* not cached */
  X509_free(leaf);
  ca_minter_free(m);
  ca_free(ca);
}

/* A CA that expires in 30 days: leaves end with it, not 397 days out. */
static void test_mint_never_outlives_ca(void **state) {
  tdir_t *t = *state;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *short_ca = make_cert(key, "short CA", "tlspeek", 1, -DAY, 30 * DAY, NULL);
  char err[CA_ERR_LEN];
  ca_t *ca = NULL;
  ca_minter_t *m;
  X509 *leaf;

  write_ca_file(t, key, short_ca);
  assert_int_equal(ca_open(t->ca_dir, 1, CA_KEY_P256, &ca, NULL, err, sizeof(err)), 0);
  m = new_minter(ca, CA_KEY_P256, 4);
  leaf = mint(m, "soon.example.test", NULL, NULL);
  assert_leaf_profile(ca, leaf, KU_DIGITAL_SIGNATURE);
  assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(short_ca)), 0);
  assert_true(ASN1_TIME_compare(X509_get0_notBefore(leaf), X509_get0_notBefore(short_ca)) >= 0);
  assert_true(leaf_verifies(short_ca, leaf, "soon.example.test"));
  X509_free(leaf);
  ca_minter_free(m);
  ca_free(ca);
  X509_free(short_ca);
  EVP_PKEY_free(key);
}

static void test_mint_rsa(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_RSA2048);
  ca_minter_t *m = new_minter(ca, CA_KEY_RSA2048, 4);
  X509 *leaf = mint(m, "rsa.example.test", NULL, NULL);

  assert_int_equal(EVP_PKEY_get_bits(ca_key(ca)), 2048);
  assert_true(EVP_PKEY_is_a(ca_minter_key(m), "RSA"));
  assert_int_equal(X509_get_signature_nid(leaf), NID_sha256WithRSAEncryption);
  assert_leaf_profile(ca, leaf, KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
  assert_true(leaf_verifies(ca_cert(ca), leaf, "rsa.example.test"));
  X509_free(leaf);
  ca_minter_free(m);
  ca_free(ca);
}

/* ---- the cache --------------------------------------------------------- */

static void assert_stats(ca_minter_t *m, uint64_t hits, uint64_t misses, uint64_t sigs,
                         uint64_t evictions, size_t entries) {
  ca_minter_stats_t st;

  ca_minter_stats(m, &st);
  assert_int_equal(st.hits, hits);
  assert_int_equal(st.misses, misses);
  assert_int_equal(st.signatures, sigs);
  assert_int_equal(st.evictions, evictions);
  assert_int_equal(st.entries, entries);
}

static void test_cache_hit_signs_nothing(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 8);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *up1 = make_cert(k, "u.test", NULL, 0, 0, DAY, "DNS:u.test");
  X509 *up2 = make_cert(k, "u.test", NULL, 0, 0, 2 * DAY, "DNS:u.test");
  X509 *a = mint(m, "u.test", "192.0.2.1", up1);
  X509 *b = mint(m, "u.test", "192.0.2.1", up1);
  X509 *c = mint(m, "u.test", "192.0.2.99", up1); /* IP unused: same cert */
  X509 *d = mint(m, "u.test", "192.0.2.1", up2);  /* other upstream */
  X509 *e = mint(m, NULL, "192.0.2.1", NULL);
  X509 *f = mint(m, NULL, "192.0.2.2", NULL); /* here the IP is the name */

  assert_ptr_equal(a, b);
  assert_ptr_equal(a, c);
  assert_ptr_not_equal(a, d);
  assert_ptr_not_equal(e, f);
  assert_stats(m, 2, 4, 4, 0, 4);
  X509 *all[] = {a, b, c, d, e, f, up1, up2};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    X509_free(all[i]);
  EVP_PKEY_free(k);
  ca_minter_free(m);
  ca_free(ca);
}

static void test_cache_evicts_lru(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 3);
  X509 *a = mint(m, "a.test", NULL, NULL), *b = mint(m, "b.test", NULL, NULL);
  X509 *c = mint(m, "c.test", NULL, NULL), *x;

  /* recency, newest first: c b a */
  x = mint(m, "a.test", NULL, NULL); /* a c b */
  assert_ptr_equal(x, a);
  X509_free(x);
  X509_free(mint(m, "d.test", NULL, NULL)); /* d a c; b evicted */
  assert_stats(m, 1, 4, 4, 1, 3);
  x = mint(m, "c.test", NULL, NULL); /* c d a */
  assert_ptr_equal(x, c);
  X509_free(x);
  assert_stats(m, 2, 4, 4, 1, 3);
  x = mint(m, "b.test", NULL, NULL); /* b c d; a evicted */
  assert_ptr_not_equal(x, b);
  assert_int_equal(X509_check_host(x, "b.test", 0, 0, NULL), 1);
  X509_free(x);
  assert_stats(m, 2, 5, 5, 2, 3);
  x = mint(m, "a.test", NULL, NULL); /* a b c; d evicted */
  assert_ptr_not_equal(x, a);
  X509_free(x);
  x = mint(m, "c.test", NULL, NULL);
  assert_ptr_equal(x, c);
  X509_free(x);
  assert_stats(m, 3, 6, 6, 3, 3);
  X509_free(a);
  X509_free(b);
  X509_free(c);
  ca_minter_free(m);
  ca_free(ca);
}

enum { THREADS = 4, PER_THREAD = 2500, NAMES = 2000 };

typedef struct worker {
  ca_minter_t *m;
  unsigned seed;
  int bad; /* cmocka's asserts are not thread-safe: count, check later */
} worker_t;

static int san_is_exactly(X509 *x, const char *name) {
  GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  const GENERAL_NAME *g;
  int ok = sk_GENERAL_NAME_num(sans) == 1;

  if (ok) {
    g = sk_GENERAL_NAME_value(sans, 0);
    ok = g->type == GEN_DNS && strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), name) == 0;
  }
  GENERAL_NAMES_free(sans);
  return ok;
}

static void *on_worker(void *arg) {
  worker_t *w = arg;
  char name[64], err[CA_ERR_LEN];
  ca_leaf_req_t req = {.sni = name};
  X509 *leaf;
  int i;

  for (i = 0; i < PER_THREAD; i++) {
    snprintf(name, sizeof(name), "host-%d.example.test", rand_r(&w->seed) % NAMES);
    leaf = NULL;
    if (ca_mint_leaf(w->m, &req, &leaf, err, sizeof(err)) != 0 || !san_is_exactly(leaf, name))
      w->bad++;
    X509_free(leaf);
  }
  return NULL;
}

static void test_cache_threads(void **state) {
  tdir_t *t = *state;
  ca_t *ca = open_new_ca(t, CA_KEY_P256);
  ca_minter_t *m = new_minter(ca, CA_KEY_P256, 1024);
  pthread_t tid[THREADS];
  worker_t w[THREADS];
  ca_minter_stats_t st;
  int i;

  for (i = 0; i < THREADS; i++) {
    w[i] = (worker_t){.m = m, .seed = 17u + (unsigned)i};
    assert_int_equal(pthread_create(&tid[i], NULL, on_worker, &w[i]), 0);
  }
  for (i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_join(tid[i], NULL), 0);
    assert_int_equal(w[i].bad, 0);
  }
  ca_minter_stats(m, &st);
  assert_int_equal(st.hits + st.misses, THREADS * PER_THREAD);
  assert_int_equal(st.signatures, st.misses); /* a hit never signs */
  assert_true(st.hits > 0);
  assert_int_equal(st.entries, 1024);
  assert_true(st.evictions > 0);
  ca_minter_free(m);
  ca_free(ca);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_dir, teardown_dir)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_key_type_names),
      T(test_fresh_ca_properties),
      T(test_reload_same_ca),
      T(test_no_ca_without_create),
      T(test_refuse_readable_key),
      T(test_refuse_non_ca),
      T(test_refuse_mismatched_key),
      T(test_refuse_expired),
      T(test_existing_ca_not_overwritten),
      T(test_concurrent_create),
      T(test_export_and_info),
      T(test_mint_mirrors_upstream),
      T(test_mint_without_upstream),
      T(test_mint_rejects_bad_input),
      T(test_mint_names),
      T(test_mint_never_outlives_ca),
      T(test_mint_rsa),
      T(test_cache_hit_signs_nothing),
      T(test_cache_evicts_lru),
      T(test_cache_threads),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
