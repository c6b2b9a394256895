/* main.c — the command line. Parses options into a px_config_t and hands it
 * to px_run() (the proxy) or px_ca_command() (`tlspeek ca ...`). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/config.h"
#include "proxy/dns.h"

static const char usage_text[] =
    "Usage: tlspeek [options]             run the proxy\n"
    "       tlspeek ca SUBCOMMAND [...]   manage the local CA (tlspeek ca help)\n"
    "\n"
    "tlspeek terminates TLS with certificates minted by a local CA, opens its own\n"
    "verified TLS connection upstream, and shows the decrypted HTTP traffic.\n"
    "\n"
    "Modes:\n"
    "  -m, --mode MODE          explicit (default): an HTTP proxy on --listen\n"
    "                           (CONNECT for https://, absolute-form for http://);\n"
    "                           reverse:https://HOST:PORT or reverse:http://HOST:PORT:\n"
    "                           every client goes to that upstream. The listener\n"
    "                           speaks TLS to clients that send a ClientHello and\n"
    "                           plain HTTP to the others.\n"
    "                           transparent: connections redirected by iptables\n"
    "                           REDIRECT (or TPROXY with --tproxy); the destination\n"
    "                           comes from SO_ORIGINAL_DST.\n"
    "                           socks5: a SOCKS5 proxy (RFC 1928, CONNECT).\n"
    "                           upstream:http://HOST:PORT: like explicit, but reach\n"
    "                           servers through that HTTP proxy (CONNECT for TLS).\n"
    "                           Repeat --mode to run several, each MODE@HOST:PORT.\n"
    "  -l, --listen HOST:PORT   where to listen (default 127.0.0.1:8080)\n"
    "      --rewrite-host       reverse mode: send the upstream's HOST:PORT as the\n"
    "                           Host header (default: keep the client's)\n"
    "      --tproxy             transparent mode with TPROXY (needs CAP_NET_ADMIN)\n"
    "      --mark N             set SO_MARK N on upstream sockets, so an iptables\n"
    "                           rule can exempt them from redirection\n"
    "      --proxyauth USER:PASS  require these credentials from proxy clients:\n"
    "                           explicit and upstream modes: Proxy-Authorization:\n"
    "                           Basic (else 407; never sent on, never shown);\n"
    "                           socks5: username/password (RFC 1929). Reverse and\n"
    "                           transparent clients cannot send any (warned).\n"
    "                           Without it, a listener on a non-loopback address\n"
    "                           is an open proxy (warned at start-up)\n"
    "      --ignore-hosts REGEX pass matching host:port / SNI through untouched\n"
    "                           (repeatable; not intercepted, shown as one line);\n"
    "                           an expression with ~d, ~sni, ~dst works too\n"
    "      --no-auto-passthrough  keep intercepting hosts whose clients rejected\n"
    "                           tlspeek's certificate (default: pass them through\n"
    "                           from the next connection on, e.g. pinned apps)\n"
    "\n"
    "Certificates:\n"
    "      --ca-dir DIR         CA directory (default ~/.tlspeek; created on first\n"
    "                           run, mode 0700, key file mode 0600; refused when\n"
    "                           group or others may access either)\n"
    "      --ca-key-type TYPE   key type of a newly created CA: p256 (default),\n"
    "                           p384, rsa2048, rsa3072\n"
    "      --leaf-key TYPE      key type of minted certificates (default p256)\n"
    "      --cert-cache N       minted certificates kept in memory (default 1024)\n"
    "      --upstream-ca FILE   extra trust anchors (PEM) for upstream verification,\n"
    "                           in addition to the system trust store\n"
    "  -k, --insecure           do not verify upstream certificates (warned loudly)\n"
    "\n"
    "What is shown (stdout; diagnostics go to stderr):\n"
    "  -q, --quiet              detail 0: show nothing\n"
    "  -v                       more detail; repeat: -v headers, -vv bodies\n"
    "      --detail N           0 nothing, 1 one line per flow (default),\n"
    "                           2 + headers, 3 + bodies (decoded; binary as hexdump),\n"
    "                           4 + handshakes and the wire view\n"
    "      --body-limit SIZE    body bytes shown per message at detail 3\n"
    "                           (default 4KiB; suffixes k, M, G)\n"
    "      -vvv / --detail 4    + TLS handshakes of both legs and the wire view\n"
    "      --handshake          dissect TLS handshakes of both legs (client and\n"
    "                           upstream): hellos, certificates, JA3/JA4/JA3S\n"
    "      --wire               show each TLS record as a sniffer sees it (type,\n"
    "                           version, length, ciphertext hexdump) beside the\n"
    "                           plaintext it carried\n"
    "      --wire-limit SIZE    ciphertext bytes hexdumped per record (default 64)\n"
    "      --explain            explain each handshake step in plain words,\n"
    "                           numbered 1-9 as the classic TLS 1.2 walk-through\n"
    "      --log-level LEVEL    error, warn, info (default), debug, trace\n"
    "  -f, --filter EXPR        show only flows matching EXPR (see Expressions)\n"
    "\n"
    "Transcripts (any combination, with or without the console; files are mode\n"
    "0600, an existing file is made 0600 with a warning):\n"
    "      --har FILE           HAR 1.2, valid JSON after every completed flow\n"
    "      --jsonl FILE         one JSON object per flow, flushed per flow\n"
    "      --pcap FILE          decrypted traffic as synthetic TCP packets (Wireshark)\n"
    "      --keylog FILE        NSS key log of both TLS legs (default: $SSLKEYLOGFILE);\n"
    "                           lets Wireshark decrypt a capture of either leg\n"
    "      --body-cap SIZE      body bytes kept per message in HAR/JSONL (default 10M;\n"
    "                           the cut is recorded; PCAP is never cut)\n"
    "      --har-filter EXPR, --jsonl-filter EXPR, --pcap-filter EXPR,\n"
    "      --keylog-filter EXPR record only matching flows (PCAP and key log decide\n"
    "                           per connection, with host-level terms)\n"
    "\n"
    "Actions:\n"
    "      --block EXPR[:STATUS]  answer matching requests with STATUS (default 403)\n"
    "                           and close; the request is not sent upstream\n"
    "      --set-header EXPR:NAME:VALUE  set header NAME on matching flows\n"
    "      --remove-header EXPR:NAME     remove header NAME from matching flows\n"
    "                           Both edit the request when EXPR contains ~q (e.g.\n"
    "                           '~q & ~d api:X-Debug:1'), the response otherwise;\n"
    "                           response edits see the head only (no body terms).\n"
    "      --redact NAME,...    show these headers' values as <redacted> in every\n"
    "                           view and transcript (PCAP keeps the raw bytes)\n"
    "      --redact-auth        --redact Authorization,Proxy-Authorization,Cookie,\n"
    "                           Set-Cookie\n"
    "      --load FILE.so[:ARG] load a filter plugin written against filters/filter.h\n"
    "                           (refused when built for another filter ABI)\n"
    "\n"
    "Expressions (mitmproxy-compatible, plus TLS terms): ~a asset, ~all, ~b RE body,\n"
    "  ~bq/~bs RE request/response body, ~c CODE, ~d RE domain, ~dst RE server ip:port,\n"
    "  ~e error, ~h/~hq/~hs RE header \"name: value\", ~http, ~m RE method, ~q no\n"
    "  response yet, ~s has response, ~src RE client ip:port, ~t/~tq/~ts RE content\n"
    "  type, ~u RE url, ~websocket, ~tcp, ~sni RE, ~tls VERSION, ~alpn RE, ~ja3 HASH,\n"
    "  ~ja4 FP, ~intercepted, ~passthrough; ! & | ( ); a bare regex means ~u;\n"
    "  regexes are case-insensitive PCRE2, quoted with ' or \" when they hold spaces.\n"
    "\n"
    "Connections:\n"
    "  -t, --threads N          worker threads, one event loop each (default: cores)\n"
    "      --connect-timeout S  upstream TCP connect timeout, seconds (default 10)\n"
    "      --dns-timeout S      give up a DNS lookup after S seconds: 504 (default 5)\n"
    "      --dns-server IP[:PORT][,...]  DNS servers to ask (default: those of\n"
    "                           /etc/resolv.conf); /etc/hosts is read first\n"
    "      --handshake-timeout S  TLS handshake timeout, seconds (default 10)\n"
    "      --client-hello-timeout S  from accept (or a CONNECT/SOCKS5 tunnel's\n"
    "                           start) to the first bytes and a complete ClientHello;\n"
    "                           slower clients are closed (default 10)\n"
    "      --request-timeout S  from a request head's first byte to its end; else\n"
    "                           408 Request Timeout and close (default 30)\n"
    "      --keepalive-timeout S  close a keep-alive connection when no new request\n"
    "                           begins for S seconds (default 60)\n"
    "      --idle-timeout S     close connections idle this long (default 300)\n"
    "      --upstream-idle S    between HTTP requests, close the upstream connection\n"
    "                           after S idle seconds and keep the client's; the next\n"
    "                           request reconnects, resuming TLS (default 5; 0 keeps\n"
    "                           it as long as the client's). Connection-bound auth\n"
    "                           (NTLM, Negotiate) keeps it.\n"
    "\n"
    "  -h, --help               this text\n"
    "  -V, --version            tlspeek, OpenSSL and libuv versions\n"
    "\n"
    "Examples:\n"
    "  tlspeek -v                              # proxy on 127.0.0.1:8080, show headers\n"
    "  curl --cacert ~/.tlspeek/tlspeek-ca-cert.pem -x http://127.0.0.1:8080 https://example.test/\n"
    "  tlspeek -m reverse:https://127.0.0.1:8443 -l 127.0.0.1:9443 -vv\n"
    "\n"
    "Exit status: 0 clean shutdown, 1 runtime failure, 2 bad usage.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tlspeek: error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'tlspeek --help'.\n");
  exit(2);
}

/* Parses "123", "4k", "4KiB", "10M" into bytes. */
static int parse_size(const char *s, size_t *out) {
  char *end;
  unsigned long long v, mul = 1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  switch (*end) {
    case 'k': case 'K': mul = 1024; end++; break;
    case 'm': case 'M': mul = 1024 * 1024; end++; break;
    case 'g': case 'G': mul = 1024ull * 1024 * 1024; end++; break;
    default: break;
  }
  if (mul > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)) end += strlen(end);
  if (*end != '\0' || (mul > 1 && v > ULLONG_MAX / mul)) return -1;
  *out = (size_t)(v * mul);
  return 0;
}

static int parse_seconds(const char *s, uint64_t *ms) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || v <= 0 || v > 86400 * 365) return -1;
  *ms = (uint64_t)(v * 1000.0 + 0.5);
  return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* Splits "HOST:PORT" or "[V6]:PORT" into its parts. */
static int parse_host_port(const char *s, char *host, size_t hostlen,
                           uint16_t *port) {
  const char *colon;
  size_t hl;
  long p;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb == NULL || rb[1] != ':') return -1;
    hl = (size_t)(rb - s - 1);
    s++;
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL) return -1;
    hl = (size_t)(colon - s);
  }
  if (hl == 0 || hl >= hostlen) return -1;
  if (parse_int(colon + 1, 0, 65535, &p) != 0) return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  *port = (uint16_t)p;
  return 0;
}

/* "https://HOST[:PORT]" or "http://HOST[:PORT]" (nothing after but "/"). */
static int parse_target_url(const char *url, px_listen_cfg_t *lc, int https_allowed) {
  char hp[300];
  if (strncmp(url, "https://", 8) == 0 && https_allowed) {
    lc->target_tls = 1;
    url += 8;
  } else if (strncmp(url, "http://", 7) == 0) {
    lc->target_tls = 0;
    url += 7;
  } else {
    return -1;
  }
  size_t n = strcspn(url, "/");
  if (n == 0 || n >= sizeof(hp) || (url[n] == '/' && url[n + 1] != '\0')) return -1;
  memcpy(hp, url, n);
  hp[n] = '\0';
  int has_port = hp[0] == '[' ? strstr(hp, "]:") != NULL : strchr(hp, ':') != NULL;
  if (has_port)
    return parse_host_port(hp, lc->target_host, sizeof(lc->target_host), &lc->target_port) == 0 &&
                   lc->target_port != 0
               ? 0
               : -1;
  size_t hl = strlen(hp);
  if (hp[0] == '[') { /* [v6] without a port */
    if (hl < 3 || hp[hl - 1] != ']') return -1;
    memcpy(lc->target_host, hp + 1, hl - 2);
    lc->target_host[hl - 2] = '\0';
  } else {
    memcpy(lc->target_host, hp, hl + 1);
  }
  lc->target_port = lc->target_tls ? 443 : 80;
  return 0;
}

/* One --mode: NAME[:ARG][@HOST:PORT]. */
static int parse_mode(const char *text, px_config_t *cfg) {
  px_listen_cfg_t lc;
  char spec[600];
  memset(&lc, 0, sizeof(lc));
  if (strlen(text) >= sizeof(spec) || cfg->n_listens == PX_MAX_LISTENERS) return -1;
  snprintf(spec, sizeof(spec), "%s", text);
  char *at = strrchr(spec, '@');
  if (at) {
    *at = '\0';
    if (parse_host_port(at + 1, lc.host, sizeof(lc.host), &lc.port) != 0) return -1;
  }
  if (strcmp(spec, "explicit") == 0 || strcmp(spec, "regular") == 0) {
    lc.mode = PX_MODE_EXPLICIT;
  } else if (strcmp(spec, "transparent") == 0) {
    lc.mode = PX_MODE_TRANSPARENT;
  } else if (strcmp(spec, "socks5") == 0) {
    lc.mode = PX_MODE_SOCKS5;
  } else if (strncmp(spec, "reverse:", 8) == 0) {
    lc.mode = PX_MODE_REVERSE;
    if (parse_target_url(spec + 8, &lc, 1) != 0) return -1;
  } else if (strncmp(spec, "upstream:", 9) == 0) {
    lc.mode = PX_MODE_UPSTREAM;
    if (parse_target_url(spec + 9, &lc, 0) != 0) return -1;
  } else {
    return -1;
  }
  cfg->listens[cfg->n_listens++] = lc;
  return 0;
}

static int parse_log_level(const char *s) {
  static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0) return i;
  if (strcmp(s, "warning") == 0) return FLT_LOG_WARN;
  return -1;
}

/* Modes without @HOST:PORT listen on --listen; two on one address clash. */
static void finish_listens(px_config_t *cfg) {
  if (cfg->n_listens == 0) cfg->listens[cfg->n_listens++].mode = PX_MODE_EXPLICIT;
  for (int i = 0; i < cfg->n_listens; i++) {
    px_listen_cfg_t *lc = &cfg->listens[i];
    if (lc->host[0] == '\0') {
      snprintf(lc->host, sizeof(lc->host), "%s", cfg->listen_host);
      lc->port = cfg->listen_port;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(cfg->listens[j].host, lc->host) == 0 && cfg->listens[j].port == lc->port &&
          lc->port != 0)
        usage_error("two --mode listeners on %s:%u; give each its own @HOST:PORT", lc->host,
                    (unsigned)lc->port);
  }
}

/* Compiles an expression or exits 2 with the column-and-caret message. */
static struct flt_expr *compile_or_die(const char *opt, const char *text, int allowed) {
  char err[2048];
  struct flt_expr *e = flt_expr_compile(text, allowed, err, sizeof(err));
  if (e == NULL) usage_error("bad expression in %s: %s", opt, err);
  return e;
}

/* An HTTP header name: a token (RFC 9110 §5.1). */
static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!strchr("!#$%&'*+-.^_`|~", s[i]) && !(s[i] >= '0' && s[i] <= '9') &&
        !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z'))
      return 0;
  return 1;
}

/* --set-header EXPR:NAME:VALUE and --remove-header EXPR:NAME. EXPR may hold
 * colons itself (~h "a: b"), so the first split that leaves a header-name
 * token after a compilable expression wins. Request side when EXPR uses
 * ~q, response side otherwise. */
static void parse_header_action(const char *opt, const char *val, px_action_t *a) {
  int set = a->kind == PX_ACT_SET_HEADER;
  for (const char *c = strchr(val, ':'); c; c = strchr(c + 1, ':')) {
    const char *name = c + 1;
    const char *name_end = set ? strchr(name, ':') : name + strlen(name);
    if (name_end == NULL) break;
    if (!is_token(name, (size_t)(name_end - name)) || (size_t)(name_end - name) >= sizeof(a->name))
      continue;
    char expr[4200];
    if ((size_t)(c - val) >= sizeof(expr)) break;
    memcpy(expr, val, (size_t)(c - val));
    expr[c - val] = '\0';
    char err[2048];
    a->expr = flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, err, sizeof(err));
    if (a->expr == NULL) continue;
    memcpy(a->name, name, (size_t)(name_end - name));
    a->name[name_end - name] = '\0';
    a->value = set ? name_end + 1 : NULL;
    /* "~q" as a term (not part of a longer word) puts it on the request. */
    a->response_side = 1;
    for (const char *q = strstr(expr, "~q"); q; q = strstr(q + 2, "~q"))
      if (!((q[2] | 0x20) >= 'a' && (q[2] | 0x20) <= 'z')) a->response_side = 0;
    return;
  }
  usage_error("bad %s '%s': use %s (the expression must compile; NAME is a header name)", opt,
              val, set ? "EXPR:NAME:VALUE" : "EXPR:NAME");
}

/* --block EXPR[:STATUS] */
static void parse_block(const char *val, px_action_t *a) {
  char expr[4200];
  const char *colon = strrchr(val, ':');
  a->status = 403;
  snprintf(expr, sizeof(expr), "%s", val);
  if (colon && strlen(colon + 1) == 3 && colon[1] >= '1' && colon[1] <= '5' &&
      strspn(colon + 1, "0123456789") == 3) {
    a->status = atoi(colon + 1);
    expr[colon - val] = '\0';
  }
  a->expr = compile_or_die("--block", expr, FLT_EXPR_ALL_TERMS);
}

static void parse_redact(px_config_t *cfg, const char *list) {
  char *copy = strdup(list), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    if (*t == '\0') continue;
    if (cfg->n_redact == PX_MAX_REDACT) usage_error("at most %d headers to --redact", PX_MAX_REDACT);
    cfg->redact[cfg->n_redact++] = strdup(t); /* freed at the end of main() */
  }
  free(copy);
}

static void print_version(void) {
  printf("tlspeek %s\n", PX_VERSION);
  printf("OpenSSL: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION),
         OPENSSL_VERSION_TEXT);
  printf("libuv: %s (built with %d.%d.%d)\n", uv_version_string(),
         UV_VERSION_MAJOR, UV_VERSION_MINOR, UV_VERSION_PATCH);
}

static void config_defaults(px_config_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->auto_passthrough = 1;
  snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
  cfg->listen_port = 8080;
  cfg->ca_dir = NULL;
  cfg->ca_key_type = CA_KEY_P256;
  cfg->leaf_key_type = CA_KEY_P256;
  cfg->cert_cache = 1024;
  cfg->detail = 1;
  cfg->body_limit = 4096;
  cfg->body_cap = 10 * 1024 * 1024;
  cfg->wire_limit = 64;
  cfg->log_level = FLT_LOG_INFO;
  cfg->threads = 0; /* = number of cores */
  cfg->connect_timeout_ms = 10000;
  cfg->dns_timeout_ms = 5000;
  cfg->handshake_timeout_ms = 10000;
  cfg->client_hello_timeout_ms = 10000;
  cfg->request_timeout_ms = 30000;
  cfg->keepalive_timeout_ms = 60000;
  cfg->idle_timeout_ms = 300000;
  cfg->upstream_idle_ms = 5000;
  cfg->shutdown_grace_ms = 5000;
}

/* Options that take a value. Returns 1 when `name` matches (short or long). */
static int is_opt(const char *arg, const char *shortname, const char *longname) {
  return (shortname && strcmp(arg, shortname) == 0) ||
         (longname && strcmp(arg, longname) == 0);
}

/* Handles options shared by the proxy and `ca` (valid before or after the
 * subcommand). Returns the number of argv words consumed (0 = not one). */
static int parse_global(int argc, char **argv, int i, px_config_t *cfg) {
  const char *arg = argv[i];
  const char *val = NULL;
  char name[64];
  const char *eq = strchr(arg, '=');
  int used = 1;

  if (strncmp(arg, "--", 2) != 0) return 0;
  if (eq && (size_t)(eq - arg) < sizeof(name)) {
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    val = eq + 1;
  } else {
    snprintf(name, sizeof(name), "%s", arg);
  }
  if (!is_opt(name, NULL, "--ca-dir") && !is_opt(name, NULL, "--ca-key-type") &&
      !is_opt(name, NULL, "--leaf-key") && !is_opt(name, NULL, "--cert-cache"))
    return 0;
  if (val == NULL) {
    if (i + 1 >= argc) usage_error("option %s needs a value", name);
    val = argv[i + 1];
    used = 2;
  }
  if (strcmp(name, "--ca-dir") == 0) {
    if (*val == '\0') usage_error("option %s needs a directory", name);
    cfg->ca_dir = val;
  } else if (strcmp(name, "--ca-key-type") == 0) {
    if (ca_key_type_parse(val, &cfg->ca_key_type) != 0)
      usage_error("unknown --ca-key-type '%s' (use p256, p384, rsa2048 or rsa3072)", val);
  } else if (strcmp(name, "--leaf-key") == 0) {
    if (ca_key_type_parse(val, &cfg->leaf_key_type) != 0)
      usage_error("unknown --leaf-key '%s' (use p256, p384, rsa2048 or rsa3072)", val);
  } else {
    long n;
    if (parse_int(val, 1, 1000000, &n) != 0)
      usage_error("--cert-cache needs a number from 1 to 1000000, not '%s'", val);
    cfg->cert_cache = (size_t)n;
  }
  return used;
}

/* Parses one proxy option at argv[i]; returns words consumed. */
static int parse_proxy_opt(int argc, char **argv, int i, px_config_t *cfg) {
  const char *arg = argv[i];
  char name[64];
  const char *val = NULL;
  const char *eq = strchr(arg, '=');
  int used = 1;
  long n;

  /* Flags without a value, and -v bundles (-vv). */
  if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
    fputs(usage_text, stdout);
    exit(0);
  }
  if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
    print_version();
    exit(0);
  }
  if (strcmp(arg, "-k") == 0 || strcmp(arg, "--insecure") == 0) {
    cfg->insecure = 1;
    return 1;
  }
  if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
    cfg->detail = 0;
    return 1;
  }
  if (strcmp(arg, "--rewrite-host") == 0) {
    cfg->rewrite_host = 1;
    return 1;
  }
  if (strcmp(arg, "--handshake") == 0 || strcmp(arg, "--wire") == 0 ||
      strcmp(arg, "--explain") == 0) {
    int *flag = arg[2] == 'h' ? &cfg->show_handshake : arg[2] == 'w' ? &cfg->show_wire : &cfg->explain;
    *flag = 1;
    return 1;
  }
  if (strcmp(arg, "--redact-auth") == 0) {
    parse_redact(cfg, "Authorization,Proxy-Authorization,Cookie,Set-Cookie");
    return 1;
  }
  if (strcmp(arg, "--tproxy") == 0) {
    cfg->tproxy = 1;
    return 1;
  }
  if (strcmp(arg, "--auto-passthrough") == 0 || strcmp(arg, "--no-auto-passthrough") == 0) {
    cfg->auto_passthrough = arg[2] == 'a';
    return 1;
  }
  if (arg[0] == '-' && arg[1] == 'v' && strspn(arg + 1, "v") == strlen(arg + 1)) {
    cfg->detail += (int)strlen(arg + 1);
    if (cfg->detail > 4) cfg->detail = 4;
    return 1;
  }

  /* Options with a value: --name=value, --name value, -x value, -xvalue. */
  if (arg[0] == '-' && arg[1] != '-' && arg[1] != '\0' && arg[2] != '\0') {
    snprintf(name, sizeof(name), "%.2s", arg);
    val = arg + 2;
  } else if (eq && strncmp(arg, "--", 2) == 0 && (size_t)(eq - arg) < sizeof(name)) {
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    val = eq + 1;
  } else {
    snprintf(name, sizeof(name), "%s", arg);
  }
  static const char *const with_value[] = {
      "-m", "--mode", "-l", "--listen", "--mark", "--proxyauth", "--ignore-hosts",
      "-f", "--filter", "--har-filter", "--jsonl-filter", "--pcap-filter", "--keylog-filter",
      "--block", "--set-header", "--remove-header", "--redact", "--load", "--wire-limit", "--upstream-ca", "--detail", "--body-limit",
      "--log-level", "-t", "--threads", "--connect-timeout", "--handshake-timeout", "--dns-timeout", "--dns-server",
      "--client-hello-timeout", "--request-timeout", "--keepalive-timeout",
      "--idle-timeout", "--upstream-idle", "--har", "--jsonl", "--pcap", "--keylog", "--body-cap", NULL};
  int known = 0;
  for (int k = 0; with_value[k]; k++)
    if (strcmp(name, with_value[k]) == 0) known = 1;
  if (!known) usage_error("unknown option '%s'", arg);
  if (val == NULL) {
    if (i + 1 >= argc) usage_error("option %s needs a value", name);
    val = argv[i + 1];
    used = 2;
  }

  if (is_opt(name, "-m", "--mode")) {
    if (parse_mode(val, cfg) != 0)
      usage_error("bad --mode '%s' (use explicit, transparent, socks5, "
                  "reverse:https://HOST:PORT, reverse:http://HOST:PORT or "
                  "upstream:http://HOST:PORT, each optionally followed by @HOST:PORT; "
                  "at most %d)", val, PX_MAX_LISTENERS);
  } else if (is_opt(name, NULL, "--mark")) {
    if (parse_int(val, 1, 0x7fffffff, &n) != 0) usage_error("--mark takes a positive number, not '%s'", val);
    cfg->mark = (int)n;
  } else if (is_opt(name, NULL, "--proxyauth")) {
    if (strchr(val, ':') == NULL || val[0] == ':')
      usage_error("--proxyauth takes USER:PASS, not '%s'", val);
    if (strlen(val) > 511) usage_error("--proxyauth is too long (%s)", "at most 255 bytes each");
    cfg->proxyauth = val;
  } else if (is_opt(name, NULL, "--ignore-hosts")) {
    if (val[0] == '~' || val[0] == '!' || val[0] == '(') {
      if (cfg->n_ignore_exprs == 16) usage_error("at most %d --ignore-hosts expressions", 16);
      cfg->ignore_exprs[cfg->n_ignore_exprs++] =
          compile_or_die("--ignore-hosts", val, FLT_EXPR_HOST_TERMS);
    } else {
      if (cfg->n_ignore_hosts == 16) usage_error("at most %d --ignore-hosts", 16);
      cfg->ignore_hosts[cfg->n_ignore_hosts++] = val;
    }
  } else if (is_opt(name, "-f", "--filter") || is_opt(name, NULL, "--har-filter") ||
             is_opt(name, NULL, "--jsonl-filter") || is_opt(name, NULL, "--pcap-filter") ||
             is_opt(name, NULL, "--keylog-filter")) {
    struct flt_expr **slot = strcmp(name, "--har-filter") == 0      ? &cfg->har_expr
                             : strcmp(name, "--jsonl-filter") == 0  ? &cfg->jsonl_expr
                             : strcmp(name, "--pcap-filter") == 0   ? &cfg->pcap_expr
                             : strcmp(name, "--keylog-filter") == 0 ? &cfg->keylog_expr
                                                                    : &cfg->console_expr;
    if (*slot) usage_error("%s given twice (combine the expressions with & or |)", name);
    *slot = compile_or_die(name, val, FLT_EXPR_ALL_TERMS);
  } else if (is_opt(name, NULL, "--block") || is_opt(name, NULL, "--set-header") ||
             is_opt(name, NULL, "--remove-header")) {
    if (cfg->n_actions == PX_MAX_ACTIONS) usage_error("at most %d actions", PX_MAX_ACTIONS);
    px_action_t *a = &cfg->actions[cfg->n_actions++];
    memset(a, 0, sizeof(*a));
    if (strcmp(name, "--block") == 0) {
      a->kind = PX_ACT_BLOCK;
      parse_block(val, a);
    } else {
      a->kind = strcmp(name, "--set-header") == 0 ? PX_ACT_SET_HEADER : PX_ACT_REMOVE_HEADER;
      parse_header_action(name, val, a);
    }
  } else if (is_opt(name, NULL, "--wire-limit")) {
    if (parse_size(val, &cfg->wire_limit) != 0 || cfg->wire_limit == 0)
      usage_error("bad --wire-limit '%s' (bytes of ciphertext shown per record, e.g. 64)", val);
  } else if (is_opt(name, NULL, "--redact")) {
    parse_redact(cfg, val);
  } else if (is_opt(name, NULL, "--load")) {
    if (cfg->n_plugins == PX_MAX_PLUGINS) usage_error("at most %d --load", PX_MAX_PLUGINS);
    cfg->plugins[cfg->n_plugins++] = val;
  } else if (is_opt(name, "-l", "--listen")) {
    if (parse_host_port(val, cfg->listen_host, sizeof(cfg->listen_host),
                        &cfg->listen_port) != 0)
      usage_error("bad --listen '%s' (use HOST:PORT, e.g. 127.0.0.1:8080)", val);
  } else if (is_opt(name, NULL, "--upstream-ca")) {
    if (access(val, R_OK) != 0)
      usage_error("cannot read --upstream-ca file '%s'", val);
    cfg->upstream_ca = val;
  } else if (is_opt(name, NULL, "--detail")) {
    if (parse_int(val, 0, 4, &n) != 0) usage_error("--detail takes 0 to 4, not '%s'", val);
    cfg->detail = (int)n;
  } else if (is_opt(name, NULL, "--body-limit")) {
    if (parse_size(val, &cfg->body_limit) != 0)
      usage_error("bad --body-limit '%s' (a size such as 4096, 64k or 1M)", val);
  } else if (is_opt(name, NULL, "--body-cap")) {
    if (parse_size(val, &cfg->body_cap) != 0)
      usage_error("bad --body-cap '%s' (a size such as 1M or 10M)", val);
  } else if (is_opt(name, NULL, "--har") || is_opt(name, NULL, "--jsonl") ||
             is_opt(name, NULL, "--pcap") || is_opt(name, NULL, "--keylog")) {
    if (*val == '\0') usage_error("option %s needs a file name", name);
    const char **slot = strcmp(name, "--har") == 0     ? &cfg->har_path
                        : strcmp(name, "--jsonl") == 0 ? &cfg->jsonl_path
                        : strcmp(name, "--pcap") == 0  ? &cfg->pcap_path
                                                       : &cfg->keylog_path;
    *slot = val;
  } else if (is_opt(name, NULL, "--log-level")) {
    int lv = parse_log_level(val);
    if (lv < 0) usage_error("bad --log-level '%s' (error, warn, info, debug, trace)", val);
    cfg->log_level = lv;
  } else if (is_opt(name, "-t", "--threads")) {
    if (parse_int(val, 1, 256, &n) != 0)
      usage_error("--threads takes a number from 1 to 256, not '%s'", val);
    cfg->threads = (int)n;
  } else if (strcmp(name, "--dns-server") == 0) {
    char err[300];
    if (px_dns_check_servers(val, err, sizeof(err)) != 0) usage_error("%s", err);
    cfg->dns_servers = val;
  } else if (strcmp(name, "--dns-timeout") == 0) {
    if (parse_seconds(val, &cfg->dns_timeout_ms) != 0 || cfg->dns_timeout_ms == 0)
      usage_error("bad --dns-timeout '%s' (seconds, e.g. 5 or 0.5)", val);
  } else if (strcmp(name, "--upstream-idle") == 0) {
    if (strcmp(val, "0") == 0)
      cfg->upstream_idle_ms = 0;
    else if (parse_seconds(val, &cfg->upstream_idle_ms) != 0)
      usage_error("bad --upstream-idle '%s' (seconds, e.g. 5 or 0.5; 0 never closes)", val);
  } else {
    uint64_t *slot = strcmp(name, "--connect-timeout") == 0        ? &cfg->connect_timeout_ms
                     : strcmp(name, "--handshake-timeout") == 0    ? &cfg->handshake_timeout_ms
                     : strcmp(name, "--client-hello-timeout") == 0 ? &cfg->client_hello_timeout_ms
                     : strcmp(name, "--request-timeout") == 0      ? &cfg->request_timeout_ms
                     : strcmp(name, "--keepalive-timeout") == 0    ? &cfg->keepalive_timeout_ms
                                                                   : &cfg->idle_timeout_ms;
    if (parse_seconds(val, slot) != 0)
      usage_error("bad timeout '%s' (seconds, e.g. 10 or 0.5)", val);
  }
  return used;
}

int main(int argc, char **argv) {
  px_config_t cfg;
  char **rest;
  int nrest = 0, ca_cmd = 0;

  config_defaults(&cfg);
  rest = calloc((size_t)argc + 1, sizeof(*rest));
  if (rest == NULL) return 1;

  /* Global options may stand anywhere; the first bare word "ca" selects the
   * CA subcommand and everything else after it belongs to that command. */
  for (int i = 1; i < argc;) {
    int used = parse_global(argc, argv, i, &cfg);
    if (used > 0) {
      i += used;
      continue;
    }
    if (!ca_cmd && nrest == 0 && strcmp(argv[i], "ca") == 0) {
      ca_cmd = 1;
      i++;
      continue;
    }
    if (!ca_cmd && argv[i][0] != '-')
      usage_error("unexpected argument '%s'", argv[i]);
    if (ca_cmd) {
      rest[nrest++] = argv[i++];
      continue;
    }
    i += parse_proxy_opt(argc, argv, i, &cfg);
  }
  if (cfg.ca_dir == NULL) cfg.ca_dir = ca_default_dir();
  if (cfg.detail >= 4) cfg.show_handshake = cfg.show_wire = 1;
  if (!ca_cmd) finish_listens(&cfg);
  if (cfg.keylog_path == NULL) {
    const char *env = getenv("SSLKEYLOGFILE");
    if (env && *env) cfg.keylog_path = env;
  }
  flt_log_set_level(cfg.log_level);

  int rc = ca_cmd ? px_ca_command(nrest, rest, &cfg) : px_run(&cfg);
  for (int i = 0; i < cfg.n_redact; i++) free((char *)cfg.redact[i]);
  free(rest);
  return rc;
}
