/* runcmd.c — `tlspeek run -- CMD ARGS...`: the private directory with the CA
 * bundle and the Node.js preload, the command's environment, the child
 * process on the main loop, and signals passed on to it. */
#include "proxy/runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "filters/util/log.h"
#include "proxy/runcmd_node.js.h"

extern char **environ;

#define RUNCMD_PATH_MAX 4096
#define RUNCMD_VALUE_MAX (RUNCMD_PATH_MAX + 64) /* our part of NODE_OPTIONS */

/* Set to the proxy's URL. ALL_PROXY too: tools that only read it (and
 * curl for other schemes) should not go around tlspeek. */
static const char *const proxy_vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                         "https_proxy", "ALL_PROXY", "all_proxy"};
/* Removed, so that loopback and every other host go through tlspeek. */
static const char *const unset_vars[] = {"NO_PROXY", "no_proxy"};
/* Each names one CA bundle file that replaces or extends a runtime's trust:
 * OpenSSL (C, Python ssl, Ruby), Python requests/pip/httplib2, curl, Node,
 * git, the AWS SDKs/CLI, Nix, Deno, gcloud, gRPC. */
static const char *const bundle_vars[] = {
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE", "HTTPLIB2_CA_CERTS", "NIX_SSL_CERT_FILE",
    "DENO_CERT", "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"};
/* Extended: our words are added after the value the environment had. */
static const char *const extend_vars[] = {"JAVA_TOOL_OPTIONS", "NODE_OPTIONS"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct px_runcmd {
  uv_process_t proc; /* first: the close callback gets it */
  int spawned;       /* `proc` is initialised */
  int forwarding;    /* our signal handlers are installed; `old` holds theirs */
  char *const *argv;
  char **env;
  size_t n_env;
  char dir[RUNCMD_PATH_MAX - 64]; /* room for "/node-preload.js" after it */
  char bundle[RUNCMD_PATH_MAX];
  char preload[RUNCMD_PATH_MAX];
  px_runcmd_exit_cb on_exit;
  void *arg;
  struct sigaction old[3];
};

/* The signals passed on, and the child they go to (0: none). */
static const int forwarded[3] = {SIGINT, SIGTERM, SIGHUP};
static volatile sig_atomic_t child_pid;
/* Signals to pass on that came before child_pid was known (bit i: forwarded[i]). */
static volatile sig_atomic_t early_signals;

/* ---- the private directory ------------------------------------------------ */

/* Appends the file at `path` to `out`. */
static int append_file(FILE *out, const char *path, char *err, size_t errlen) {
  char buf[16384];
  size_t n;
  FILE *in = fopen(path, "rb");
  if (in == NULL) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  while ((n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, out);
  int bad = ferror(in);
  fclose(in);
  if (bad) {
    snprintf(err, errlen, "cannot read %s", path);
    return -1;
  }
  fputc('\n', out); /* a bundle without a final newline must not glue PEMs */
  return 0;
}

/* A new file in the private directory, mode 0600. */
static FILE *create_private(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (f == NULL) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
  }
  return f;
}

/* The system's CA bundle: OpenSSL's default certificate file (on Debian
 * /usr/lib/ssl/cert.pem, a link to /etc/ssl/certs/ca-certificates.crt). Not
 * $SSL_CERT_FILE: that may be set to tlspeek's CA alone. */
static const char *system_bundle(void) {
  const char *f = X509_get_default_cert_file();
  if (f && access(f, R_OK) == 0) return f;
  if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
    return "/etc/ssl/certs/ca-certificates.crt";
  return NULL;
}

static int write_bundle(px_runcmd_t *rc, const char *ca_cert, const char *upstream_ca, char *err,
                        size_t errlen) {
  FILE *f = create_private(rc->bundle, err, errlen);
  if (f == NULL) return -1;
  const char *sys = system_bundle();
  int r = 0;
  if (sys == NULL)
    flt_log_warn("no system CA bundle found (%s): the command trusts only tlspeek's CA",
                 X509_get_default_cert_file());
  else
    r = append_file(f, sys, err, errlen);
  /* What tlspeek trusts upstream, for hosts passed through untouched. */
  if (r == 0 && upstream_ca) r = append_file(f, upstream_ca, err, errlen);
  if (r == 0) r = append_file(f, ca_cert, err, errlen);
  if (fclose(f) != 0 && r == 0) {
    snprintf(err, errlen, "cannot write %s: %s", rc->bundle, strerror(errno));
    r = -1;
  }
  return r;
}

static int write_preload(px_runcmd_t *rc, const px_runcmd_proxy_t *px, char *err,
                         size_t errlen) {
  /* Base64 takes 4 bytes per 3, plus the NUL; --proxyauth is at most 511. */
  unsigned char basic[700] = "";
  if (px->proxyauth && strlen(px->proxyauth) <= 511)
    EVP_EncodeBlock(basic, (const unsigned char *)px->proxyauth, (int)strlen(px->proxyauth));
  FILE *f = create_private(rc->preload, err, errlen);
  if (f == NULL) return -1;
  fprintf(f, "'use strict';\nconst PROXY_PORT = %u;\n", (unsigned)px->port);
  /* Base64 needs no quoting inside '...'. */
  if (basic[0])
    fprintf(f, "const PROXY_AUTH = 'Basic %s';\n", (char *)basic);
  else
    fputs("const PROXY_AUTH = null;\n", f);
  fputs(px_runcmd_node_js, f);
  if (fclose(f) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", rc->preload, strerror(errno));
    return -1;
  }
  return 0;
}

/* mkdtemp under $TMPDIR (when absolute and quotable in NODE_OPTIONS) or /tmp. */
static int make_dir(px_runcmd_t *rc, char *err, size_t errlen) {
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] != '/' || strpbrk(base, "\"\\") != NULL ||
      strlen(base) > RUNCMD_PATH_MAX - 128)
    base = "/tmp";
  snprintf(rc->dir, sizeof(rc->dir), "%s/tlspeek-run-XXXXXX", base);
  if (mkdtemp(rc->dir) == NULL) {
    snprintf(err, errlen, "cannot create a private directory in %s: %s", base, strerror(errno));
    rc->dir[0] = '\0';
    return -1;
  }
  snprintf(rc->bundle, sizeof(rc->bundle), "%s/ca-bundle.pem", rc->dir);
  snprintf(rc->preload, sizeof(rc->preload), "%s/node-preload.js", rc->dir);
  return 0;
}

static void remove_dir(px_runcmd_t *rc) {
  if (rc->dir[0] == '\0') return;
  unlink(rc->bundle);
  unlink(rc->preload);
  if (rmdir(rc->dir) != 0) flt_log_warn("cannot remove %s: %s", rc->dir, strerror(errno));
  rc->dir[0] = '\0';
}

/* ---- the environment ---------------------------------------------------- */

static int in_list(const char *entry, size_t namelen, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strlen(list[i]) == namelen && strncmp(entry, list[i], namelen) == 0) return 1;
  return 0;
}

static int ours(const char *entry, size_t namelen) {
  return in_list(entry, namelen, proxy_vars, N_OF(proxy_vars)) ||
         in_list(entry, namelen, unset_vars, N_OF(unset_vars)) ||
         in_list(entry, namelen, bundle_vars, N_OF(bundle_vars)) ||
         in_list(entry, namelen, extend_vars, N_OF(extend_vars));
}

static int env_add(px_runcmd_t *rc, const char *name, const char *value) {
  size_t len = strlen(name) + strlen(value) + 2;
  char *e = malloc(len);
  if (e == NULL) return -1;
  snprintf(e, len, "%s=%s", name, value);
  rc->env[rc->n_env++] = e;
  return 0;
}

/* NAME=<the old value> <ours>, or NAME=<ours>. */
static int env_extend(px_runcmd_t *rc, const char *name, const char *add) {
  const char *old = getenv(name);
  if (old == NULL || *old == '\0') return env_add(rc, name, add);
  size_t len = strlen(name) + strlen(old) + strlen(add) + 3;
  char *e = malloc(len);
  if (e == NULL) return -1;
  snprintf(e, len, "%s=%s %s", name, old, add);
  rc->env[rc->n_env++] = e;
  return 0;
}

/* Percent-encodes all but RFC 3986's unreserved characters. */
static void url_encode(char *out, size_t outlen, const char *in, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 4 <= outlen; i++) {
    unsigned char c = (unsigned char)in[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        strchr("-._~", c) != NULL)
      out[o++] = (char)c;
    else
      o += (size_t)snprintf(out + o, outlen - o, "%%%02X", c);
  }
  out[o] = '\0';
}

/* http://[USER:PASS@]127.0.0.1:PORT */
static void proxy_url(char *url, size_t len, const px_runcmd_proxy_t *px) {
  char user[3 * 512 + 1] = "", pass[3 * 512 + 1] = "";
  const char *colon = px->proxyauth ? strchr(px->proxyauth, ':') : NULL;
  if (colon == NULL) {
    snprintf(url, len, "http://127.0.0.1:%u", (unsigned)px->port);
    return;
  }
  url_encode(user, sizeof(user), px->proxyauth, (size_t)(colon - px->proxyauth));
  url_encode(pass, sizeof(pass), colon + 1, strlen(colon + 1));
  snprintf(url, len, "http://%s:%s@127.0.0.1:%u", user, pass, (unsigned)px->port);
}

static int build_env(px_runcmd_t *rc, const px_runcmd_proxy_t *px) {
  size_t n = 0;
  uint16_t port = px->port;
  char url[2 * 3 * 512 + 64], v[RUNCMD_VALUE_MAX];
  while (environ[n]) n++;
  rc->env = calloc(n + N_OF(proxy_vars) + N_OF(bundle_vars) + N_OF(extend_vars) + 1,
                   sizeof(*rc->env));
  if (rc->env == NULL) return -1;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    if (eq == NULL || ours(environ[i], (size_t)(eq - environ[i]))) continue;
    if ((rc->env[rc->n_env] = strdup(environ[i])) == NULL) return -1;
    rc->n_env++;
  }
  proxy_url(url, sizeof(url), px);
  for (size_t i = 0; i < N_OF(proxy_vars); i++)
    if (env_add(rc, proxy_vars[i], url) != 0) return -1;
  for (size_t i = 0; i < N_OF(bundle_vars); i++)
    if (env_add(rc, bundle_vars[i], rc->bundle) != 0) return -1;
  /* Java reads no proxy variables; an empty nonProxyHosts sends loopback
   * through the proxy too (the default exempts localhost and 127.*). */
  snprintf(v, sizeof(v),
           "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=%u -Dhttps.proxyHost=127.0.0.1 "
           "-Dhttps.proxyPort=%u -Dhttp.nonProxyHosts=",
           (unsigned)port, (unsigned)port);
  if (env_extend(rc, "JAVA_TOOL_OPTIONS", v) != 0) return -1;
  snprintf(v, sizeof(v), "--require \"%s\"", rc->preload);
  return env_extend(rc, "NODE_OPTIONS", v);
}

int px_runcmd_prepare(px_runcmd_t **out, char *const *argv, const px_runcmd_proxy_t *px,
                      char *err, size_t errlen) {
  px_runcmd_t *rc = calloc(1, sizeof(*rc));
  *out = NULL;
  if (rc == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  rc->argv = argv;
  if (make_dir(rc, err, errlen) != 0 ||
      write_bundle(rc, px->ca_cert, px->upstream_ca, err, errlen) != 0 ||
      write_preload(rc, px, err, errlen) != 0)
    goto Fail;
  if (build_env(rc, px) != 0) {
    snprintf(err, errlen, "out of memory");
    goto Fail;
  }
  *out = rc;
  return 0;
Fail:
  px_runcmd_free(rc);
  return -1;
}

/* ---- the child ------------------------------------------------------------ */

/* Passes SIGINT/SIGTERM/SIGHUP on to the command. A signal the kernel sent
 * (SI_KERNEL: the terminal's Ctrl-C or hangup) went to the whole foreground
 * process group, the command included, so passing it on would deliver it
 * twice. kill() is async-signal-safe. */
static void on_signal_forward(int signum, siginfo_t *si, void *uctx) {
  (void)uctx;
  pid_t pid = (pid_t)child_pid;
  if (si != NULL && si->si_code == SI_KERNEL) return;
  if (pid <= 0) { /* the command may run already: uv_spawn has not returned */
    for (int i = 0; i < 3; i++)
      if (forwarded[i] == signum) early_signals |= 1 << i;
    return;
  }
  kill(pid, signum);
}

static void on_child_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  px_runcmd_t *rc = (px_runcmd_t *)p;
  child_pid = 0;
  int status = term_signal ? 128 + term_signal : (int)exit_status;
  if (term_signal)
    flt_log_info("the command was killed by signal %d (%s): exiting %d", term_signal,
                 strsignal(term_signal), status);
  else
    flt_log_debug("the command exited with status %d", status);
  rc->on_exit(rc->arg, status);
}

int px_runcmd_spawn(px_runcmd_t *rc, uv_loop_t *loop, px_runcmd_exit_cb on_exit, void *arg,
                    char *err, size_t errlen) {
  uv_process_options_t po;
  uv_stdio_container_t stdio[3];
  memset(&po, 0, sizeof(po));
  for (int i = 0; i < 3; i++) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  po.file = rc->argv[0];
  po.args = (char **)rc->argv;
  po.env = rc->env;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = on_child_exit;
  rc->on_exit = on_exit;
  rc->arg = arg;
  /* Before the command starts: a Ctrl-C the moment it runs must not kill
   * tlspeek (the child's dispositions are reset to the default by libuv). */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal_forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; i++) sigaction(forwarded[i], &sa, &rc->old[i]);
  rc->forwarding = 1;
  int r = uv_spawn(loop, &rc->proc, &po);
  rc->spawned = 1; /* uv_spawn initialises the handle even when it fails */
  if (r != 0) {
    int code = r == UV_ENOENT ? 127 : r == UV_EACCES ? 126 : 1;
    snprintf(err, errlen, "cannot run '%s': %s%s", rc->argv[0], uv_strerror(r),
             r == UV_ENOENT && strchr(rc->argv[0], '/') == NULL ? " (not found in PATH)" : "");
    return code;
  }
  child_pid = rc->proc.pid;
  /* A signal from before this line was kept: the command already printed
   * and its caller already signalled tlspeek. One after it is passed on by
   * the handler itself. */
  for (int i = 0; i < 3; i++)
    if (early_signals & (1 << i)) kill(rc->proc.pid, forwarded[i]);
  early_signals = 0;
  return 0;
}

char *const *px_runcmd_env(const px_runcmd_t *rc) { return rc->env; }

const char *px_runcmd_bundle(const px_runcmd_t *rc) { return rc->bundle; }

static void on_proc_closed(uv_handle_t *h) { free(h); /* the px_runcmd_t: proc is first */ }

void px_runcmd_free(px_runcmd_t *rc) {
  if (rc == NULL) return;
  if (rc->forwarding) {
    /* Kept until here: SIGINT must not kill tlspeek while the command may
     * still be told about it. */
    child_pid = 0;
    for (int i = 0; i < 3; i++) sigaction(forwarded[i], &rc->old[i], NULL);
    rc->forwarding = 0;
  }
  remove_dir(rc);
  for (size_t i = 0; i < rc->n_env; i++) free(rc->env[i]);
  free(rc->env);
  rc->env = NULL;
  if (rc->spawned)
    uv_close((uv_handle_t *)&rc->proc, on_proc_closed);
  else
    free(rc);
}
