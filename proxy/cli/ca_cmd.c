/* ca_cmd.c — `tlspeek ca path|info|export|mint|help`.
 *
 * Thin: every decision about certificates lives in ca/. This file parses
 * words, opens the CA (creating it on first use), prints, and maps failures
 * to exit codes: 1 for runtime failures, 2 for bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca/ca.h"
#include "proxy/config.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: tlspeek [--ca-dir DIR] [--ca-key-type TYPE] [--leaf-key TYPE] ca "
    "COMMAND\n"
    "  path                     print the CA directory and its three files\n"
    "  info                     show the CA and how to trust it\n"
    "  export [--der|--p12] FILE\n"
    "                           write the CA certificate (never the key): PEM,\n"
    "                           DER, or a PKCS#12 truststore for Java (password\n"
    "                           " CA_P12_PASSWORD "); FILE - is stdout\n"
    "  mint NAME... [--out FILE]\n"
    "                           issue a certificate + key for DNS names or IP "
    "addresses\n"
    "                           (the first NAME is the CN; default: stdout)\n"
    "  help                     this text\n"
    "The CA is created on first use (except by `path`). Key types: p256, p384, "
    "rsa2048, rsa3072.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
  va_list ap;

  fputs("tlspeek: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fputs(usage_text, stderr);
  return EXIT_USAGE;
}

static int runtime_error(const char *msg) {
  fprintf(stderr, "tlspeek: error: %s\n", msg);
  return EXIT_RUNTIME;
}

static const char *config_dir(const px_config_t *cfg) {
  return cfg->ca_dir != NULL ? cfg->ca_dir : ca_default_dir();
}

static int open_ca(const px_config_t *cfg, ca_t **ca) {
  char err[CA_ERR_LEN];
  int created = 0;

  if (ca_open(config_dir(cfg), 1, cfg->ca_key_type, ca, &created, err, sizeof(err)) != 0)
    return runtime_error(err);
  /* stderr, so `tlspeek ca export - > ca.pem` stays clean. */
  if (created)
    fprintf(stderr, "tlspeek: created a new %s CA in %s\n", ca_key_type_name(cfg->ca_key_type),
            ca_dir(*ca));
  return 0;
}

static int cmd_path(int argc, const px_config_t *cfg) {
  const char *dir = config_dir(cfg);
  size_t len = strlen(dir);

  if (argc != 1) return usage_error("%s takes no arguments", "path");
  while (len > 1 && dir[len - 1] == '/')
    len--;
  printf("%.*s\n", (int)len, dir);
  printf("%.*s/%s\n", (int)len, dir, CA_KEY_FILE);
  printf("%.*s/%s\n", (int)len, dir, CA_CERT_PEM_FILE);
  printf("%.*s/%s\n", (int)len, dir, CA_CERT_DER_FILE);
  return 0;
}

static int cmd_info(int argc, const px_config_t *cfg) {
  ca_t *ca = NULL;
  int rc;

  if (argc != 1) return usage_error("%s takes no arguments", "info");
  rc = open_ca(cfg, &ca);
  if (rc == 0) ca_print_info(ca, stdout);
  ca_free(ca);
  return rc;
}

static int export_stdout(const ca_t *ca, int format) {
  char err[CA_ERR_LEN] = "cannot write the CA certificate to stdout";
  int ok;

  if (format == CA_EXPORT_P12) {
    /* Binary and built in memory by ca/: let it write the descriptor. */
    if (fflush(stdout) != 0 || ca_export(ca, "/dev/stdout", format, err, sizeof(err)) != 0)
      return runtime_error(err);
    return 0;
  }
  ok = format == CA_EXPORT_DER ? i2d_X509_fp(stdout, ca_cert(ca))
                               : PEM_write_X509(stdout, ca_cert(ca));
  if (!ok || fflush(stdout) != 0) {
    ERR_clear_error();
    return runtime_error("cannot write the CA certificate to stdout");
  }
  return 0;
}

static int cmd_export(int argc, char **argv, const px_config_t *cfg) {
  const char *file = NULL;
  char err[CA_ERR_LEN];
  ca_t *ca = NULL;
  int format = CA_EXPORT_PEM, i, rc;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--der") == 0)
      format = CA_EXPORT_DER;
    else if (strcmp(argv[i], "--pem") == 0)
      format = CA_EXPORT_PEM;
    else if (strcmp(argv[i], "--p12") == 0)
      format = CA_EXPORT_P12;
    else if (argv[i][0] == '-' && argv[i][1] != '\0')
      return usage_error("export: unknown option %s", argv[i]);
    else if (file != NULL)
      return usage_error("export: more than one FILE (%s)", argv[i]);
    else
      file = argv[i];
  }
  if (file == NULL) return usage_error("%s: missing FILE", "export");
  rc = open_ca(cfg, &ca);
  if (rc != 0) goto Exit;
  if (strcmp(file, "-") == 0)
    rc = export_stdout(ca, format);
  else if (ca_export(ca, file, format, err, sizeof(err)) != 0)
    rc = runtime_error(err);
Exit:
  ca_free(ca);
  return rc;
}

/* The leaf holds a private key: 0600 from the first byte on, even when the
 * file already existed with a wider mode. */
static int write_secret(const char *path, const char *data, size_t len) {
  ssize_t n = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int rc = fd < 0 || fchmod(fd, 0600) != 0 ? -1 : 0;

  while (rc == 0 && len > 0) {
    n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -1;
    data += n > 0 ? n : 0;
    len -= n > 0 ? (size_t)n : 0;
  }
  if (fd >= 0 && close(fd) != 0) rc = -1;
  if (rc == 0) return 0;
  fprintf(stderr, "tlspeek: error: cannot write %s: %s\n", path, strerror(errno));
  return EXIT_RUNTIME;
}

/* Leaf certificate first, then its key: one file serves as both
 * `-cert` and `-key` for openssl s_server, nginx, and friends. */
static int mint_write(ca_minter_t *m, X509 *leaf, const char *out) {
  BIO *mem = BIO_new(BIO_s_mem());
  char *data = NULL;
  long len;
  int rc = 0;

  if (mem == NULL || !PEM_write_bio_X509(mem, leaf) ||
      !PEM_write_bio_PrivateKey(mem, ca_minter_key(m), NULL, NULL, 0, NULL, NULL)) {
    ERR_clear_error();
    rc = runtime_error("cannot encode the certificate");
    goto Exit;
  }
  len = BIO_get_mem_data(mem, &data);
  if (out != NULL && strcmp(out, "-") != 0)
    rc = write_secret(out, data, (size_t)len);
  else if (fwrite(data, 1, (size_t)len, stdout) != (size_t)len || fflush(stdout) != 0)
    rc = runtime_error("cannot write to stdout");
Exit:
  BIO_free(mem); /* clears the key bytes */
  return rc;
}

static int cmd_mint(int argc, char **argv, const px_config_t *cfg) {
  const char *out = NULL;
  char err[CA_ERR_LEN];
  ca_t *ca = NULL;
  ca_minter_t *m = NULL;
  X509 *leaf = NULL;
  int i, n = 0, rc;

  /* Names are compacted to the front of argv; options may come anywhere. */
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "-o") == 0) {
      if (++i == argc) return usage_error("mint: %s needs a FILE", argv[i - 1]);
      out = argv[i];
    } else if (strncmp(argv[i], "--out=", 6) == 0) {
      out = argv[i] + 6;
    } else if (argv[i][0] == '-') {
      return usage_error("mint: unknown option %s", argv[i]);
    } else {
      argv[1 + n++] = argv[i];
    }
  }
  if (n == 0) return usage_error("%s: missing NAME", "mint");
  rc = open_ca(cfg, &ca);
  if (rc != 0) goto Exit;
  if (ca_minter_new(ca, cfg->leaf_key_type, 1, &m, err, sizeof(err)) != 0) {
    rc = runtime_error(err);
    goto Exit;
  }
  rc = ca_mint_names(m, (const char *const *)(argv + 1), (size_t)n, &leaf, err, sizeof(err));
  if (rc != 0) {
    /* A malformed NAME is the user's typo, not a failure of ours. */
    rc = rc == CA_EINVAL ? usage_error("mint: %s", err) : runtime_error(err);
    goto Exit;
  }
  rc = mint_write(m, leaf, out);
Exit:
  X509_free(leaf);
  ca_minter_free(m);
  ca_free(ca);
  return rc;
}

int px_ca_command(int argc, char **argv, const px_config_t *cfg) {
  const char *cmd = argc > 0 ? argv[0] : NULL;

  if (cmd == NULL) return usage_error("ca: missing COMMAND");
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (strcmp(cmd, "path") == 0) return cmd_path(argc, cfg);
  if (strcmp(cmd, "info") == 0) return cmd_info(argc, cfg);
  if (strcmp(cmd, "export") == 0) return cmd_export(argc, argv, cfg);
  if (strcmp(cmd, "mint") == 0) return cmd_mint(argc, argv, cfg);
  return usage_error("ca: unknown command '%s'", cmd);
}
