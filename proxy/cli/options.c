/* options.c — the option table behind tlspeek's command line: the value
 * parsers, one setter per kind of value, the table itself, the --help text
 * generated from it, and the argv walk. getopt_long is not used: tlspeek
 * takes options after the `ca` subcommand word too, keeps some of them for
 * that command, and needs the table anyway to write --help. */
#include "proxy/cli/options.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/cli/answer_options.h"
#include "proxy/cli/action_options.h"
#include "proxy/cli/tls_options.h"
#include "proxy/dns.h"

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


/* Compiles an expression or exits 2 with the column-and-caret message. */
static struct flt_expr *compile_or_die(const char *opt, const char *text, int allowed) {
  char err[2048];
  struct flt_expr *e = flt_expr_compile(text, allowed, err, sizeof(err));
  if (e == NULL) px_usage_error("bad expression in %s: %s", opt, err);
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
  px_usage_error("bad %s '%s': use %s (the expression must compile; NAME is a header name)", opt,
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
    if (cfg->n_redact == PX_MAX_REDACT) px_usage_error("at most %d headers to --redact", PX_MAX_REDACT);
    cfg->redact[cfg->n_redact++] = strdup(t); /* freed at the end of main() */
  }
  free(copy);
}

void px_config_defaults(px_config_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->auto_passthrough_ttl_ms = 600 * 1000;
  snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
  cfg->listen_port = 8080;
  cfg->ca_dir = NULL;
  cfg->ca_key_type = CA_KEY_P256;
  cfg->leaf_key_type = CA_KEY_P256;
  cfg->cert_cache = 1024;
  cfg->detail = 1;
  cfg->body_limit = 4096;
  cfg->body_cap = 10 * 1024 * 1024;
  cfg->web_flows = 10000;
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

/* ---- setters: one per kind of value ----------------------------------- */

/* Every setter has the px_opt_set_fn signature; most use only some of it. */
#define SETTER(fn)                                                                      \
  static void fn(px_config_t *cfg __attribute__((unused)),                             \
                 const px_option_t *o __attribute__((unused)),                         \
                 const char *name __attribute__((unused)), const char *val __attribute__((unused)))

#define FIELD(cfg, o, type) ((type *)(void *)((char *)(cfg) + (o)->off))

/* Exits with the row's message for a bad value. Every err in the table
 * holds exactly one %s (the value, or the option's name). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void bad_value(const px_option_t *o, const char *arg) { px_usage_error(o->err, arg); }
#pragma GCC diagnostic pop

/* A flag: stores lo into an int field. */
SETTER(set_flag) {
  *FIELD(cfg, o, int) = (int)o->lo;
}

/* -v, -vv, -vvv: each letter adds one, up to hi. */
SETTER(set_more) {
  int *f = FIELD(cfg, o, int);
  *f += val ? (int)strlen(val) : 1;
  if (*f > o->hi) *f = (int)o->hi;
}

/* An integer from lo to hi into an int field. */
SETTER(set_int) {
  long n;
  if (parse_int(val, o->lo, o->hi, &n) != 0) bad_value(o, val);
  *FIELD(cfg, o, int) = (int)n;
}

/* The same into a size_t field. */
SETTER(set_count) {
  long n;
  if (parse_int(val, o->lo, o->hi, &n) != 0) bad_value(o, val);
  *FIELD(cfg, o, size_t) = (size_t)n;
}

/* A size ("64k", "10M") of at least lo bytes into a size_t field. */
SETTER(set_size) {
  size_t *f = FIELD(cfg, o, size_t);
  if (parse_size(val, f) != 0 || *f < (size_t)o->lo) bad_value(o, val);
}

/* Seconds (fractions allowed) into a uint64_t field of milliseconds, at
 * least lo ms; "0" too with PX_OPT_ZERO_OK. */
SETTER(set_seconds) {
  uint64_t *f = FIELD(cfg, o, uint64_t);
  if ((o->flags & PX_OPT_ZERO_OK) && strcmp(val, "0") == 0) {
    *f = 0;
    return;
  }
  if (parse_seconds(val, f) != 0 || *f < (uint64_t)o->lo) bad_value(o, val);
}

/* A non-empty string (a file or directory name) into a const char * field;
 * err takes the option's name. */
SETTER(set_string) {
  if (*val == '\0') bad_value(o, name);
  *FIELD(cfg, o, const char *) = val;
}

/* A repeatable option collected into a const char *[hi] field whose count
 * (an int) is the field at lo bytes after the array's start. */
SETTER(set_list) {
  const char **list = FIELD(cfg, o, const char *);
  int *n = (int *)(void *)((char *)list + o->lo);
  char max[24];
  snprintf(max, sizeof(max), "%ld", o->hi);
  if (*n == o->hi) bad_value(o, max);
  list[(*n)++] = val;
}

/* A filter expression into a struct flt_expr * field (once). */
SETTER(set_expr) {
  struct flt_expr **slot = FIELD(cfg, o, struct flt_expr *);
  if (*slot) px_usage_error("%s given twice (combine the expressions with & or |)", name);
  *slot = compile_or_die(name, val, FLT_EXPR_ALL_TERMS);
}

/* A key type (p256, p384, rsa2048, rsa3072) into a ca_key_type_t field. */
SETTER(set_key_type) {
  if (ca_key_type_parse(val, FIELD(cfg, o, ca_key_type_t)) != 0) bad_value(o, val);
}

/* ---- setters for one option each --------------------------------------- */

SETTER(set_mode) {
  if (parse_mode(val, cfg) != 0)
    px_usage_error("bad --mode '%s' (use explicit, transparent, socks5, "
                   "reverse:https://HOST:PORT, reverse:http://HOST:PORT or "
                   "upstream:http://HOST:PORT, each optionally followed by @HOST:PORT; "
                   "at most %d)",
                   val, PX_MAX_LISTENERS);
}

SETTER(set_listen) {
  if (parse_host_port(val, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port) != 0)
    px_usage_error("bad --listen '%s' (use HOST:PORT, e.g. 127.0.0.1:8080)", val);
}

SETTER(set_proxyauth) {
  if (strchr(val, ':') == NULL || val[0] == ':')
    px_usage_error("--proxyauth takes USER:PASS, not '%s'", val);
  if (strlen(val) > 511) px_usage_error("--proxyauth is too long (%s)", "at most 255 bytes each");
  cfg->proxyauth = val;
}

/* --ignore-hosts: an expression when it starts like one, else a regex. */
SETTER(set_ignore) {
  if (val[0] == '~' || val[0] == '!' || val[0] == '(') {
    if (cfg->n_ignore_exprs == 16) px_usage_error("at most %d --ignore-hosts expressions", 16);
    cfg->ignore_exprs[cfg->n_ignore_exprs++] =
        compile_or_die("--ignore-hosts", val, FLT_EXPR_HOST_TERMS);
  } else {
    if (cfg->n_ignore_hosts == 16) px_usage_error("at most %d --ignore-hosts", 16);
    cfg->ignore_hosts[cfg->n_ignore_hosts++] = val;
  }
}

/* --block, --set-header, --remove-header: lo is the px_action_kind_t. */
SETTER(set_action) {
  if (cfg->n_actions == PX_MAX_ACTIONS) px_usage_error("at most %d actions", PX_MAX_ACTIONS);
  px_action_t *a = &cfg->actions[cfg->n_actions++];
  memset(a, 0, sizeof(*a));
  a->kind = (px_action_kind_t)o->lo;
  if (a->kind == PX_ACT_BLOCK)
    parse_block(val, a);
  else
    parse_header_action(name, val, a);
}

SETTER(set_redact) {
  parse_redact(cfg, val ? val : "Authorization,Proxy-Authorization,Cookie,Set-Cookie");
}

SETTER(set_log_level) {
  static const char *const names[] = {"error", "warn", "info", "debug", "trace", "warning"};
  int i = 0;
  while (i < 6 && strcmp(val, names[i]) != 0) i++;
  if (i == 6) px_usage_error("bad --log-level '%s' (error, warn, info, debug, trace)", val);
  cfg->log_level = i == 5 ? FLT_LOG_WARN : i; /* "warning" is "warn" */
}

/* Kept so that old command lines still work: it is the default now. */
SETTER(set_no_auto_passthrough) {
  (void)o;
  (void)val;
  cfg->auto_passthrough = 0;
  fprintf(stderr, "tlspeek: warning: %s is deprecated: automatic passthrough is off unless "
          "--auto-passthrough is given\n", name);
}

SETTER(set_dns_server) {
  char err[300];
  if (px_dns_check_servers(val, err, sizeof(err)) != 0) px_usage_error("%s", err);
  cfg->dns_servers = val;
}

SETTER(show_help) {
  size_t n;
  const px_option_t *options = px_options(&n);
  px_opt_write_help(stdout, options, n);
  exit(0);
}

/* ---- the table ---------------------------------------------------------- */

#define F(field) offsetof(px_config_t, field)
#define TEXT(s) {.help = (s)}
#define SECONDS_ERR "bad timeout '%s' (seconds, e.g. 10 or 0.5)"
#define KEY_ERR(opt) "unknown " opt " '%s' (use p256, p384, rsa2048 or rsa3072)"

/* Rows leave out the trailing fields they do not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const px_option_t options[] = {
    TEXT("Usage: tlspeek [options]             run the proxy\n"
         "       tlspeek ca SUBCOMMAND [...]   manage the local CA (tlspeek ca help)\n"
         "       tlspeek run [options] -- CMD [ARGS...]\n"
         "                                     run CMD through tlspeek on a free port of\n"
         "                                     127.0.0.1: proxy and CA-bundle variables set\n"
         "                                     (curl, Python, Node, git, Java), until it exits\n"
         "       tlspeek show [-v...] [-f EXPR] FILE.har|FILE.jsonl\n"
         "                                     print a recorded transcript as the console\n"
         "                                     shows flows (tlspeek show --help)\n"
         "       tlspeek replay [-f EXPR] [options] FILE.har|FILE.jsonl\n"
         "                                     send a transcript's requests again through\n"
         "                                     tlspeek and compare the answers with the\n"
         "                                     recording (tlspeek replay --help)\n"
         "\n"
         "tlspeek terminates TLS with certificates minted by a local CA, opens its own\n"
         "verified TLS connection upstream, and shows the decrypted HTTP traffic.\n"
         "\n"
         "Modes:\n"),
    {"--mode", 'm', "MODE",
     "explicit (default): an HTTP proxy on --listen\n"
     "(CONNECT for https://, absolute-form for http://);\n"
     "reverse:https://HOST:PORT or reverse:http://HOST:PORT:\n"
     "every client goes to that upstream. The listener\n"
     "speaks TLS to clients that send a ClientHello and\n"
     "plain HTTP to the others.\n"
     "transparent: connections redirected by iptables\n"
     "REDIRECT (or TPROXY with --tproxy); the destination\n"
     "comes from SO_ORIGINAL_DST.\n"
     "socks5: a SOCKS5 proxy (RFC 1928, CONNECT).\n"
     "upstream:http://HOST:PORT: like explicit, but reach\n"
     "servers through that HTTP proxy (CONNECT for TLS).\n"
     "Repeat --mode to run several, each MODE@HOST:PORT.",
     set_mode},
    {"--listen", 'l', "HOST:PORT", "where to listen (default 127.0.0.1:8080)", set_listen},
    {"--rewrite-host", 0, NULL,
     "reverse mode: send the upstream's HOST:PORT as the\n"
     "Host header (default: keep the client's)",
     set_flag, F(rewrite_host), 1},
    {"--tproxy", 0, NULL, "transparent mode with TPROXY (needs CAP_NET_ADMIN)", set_flag,
     F(tproxy), 1},
    {"--mark", 0, "N",
     "set SO_MARK N on upstream sockets, so an iptables\n"
     "rule can exempt them from redirection",
     set_int, F(mark), 1, 0x7fffffff, "--mark takes a positive number, not '%s'"},
    {"--proxyauth", 0, "USER:PASS",
     "require these credentials from proxy clients:\n"
     "explicit and upstream modes: Proxy-Authorization:\n"
     "Basic (else 407; never sent on, never shown);\n"
     "socks5: username/password (RFC 1929). Reverse and\n"
     "transparent clients cannot send any (warned).\n"
     "Without it, a listener on a non-loopback address\n"
     "is an open proxy (warned at start-up)",
     set_proxyauth},
    {"--ignore-hosts", 0, "REGEX",
     "pass matching host:port / SNI through untouched\n"
     "(repeatable; not intercepted, shown as one line);\n"
     "an expression with ~d, ~sni, ~dst works too",
     set_ignore},
    {"--auto-passthrough", 0, NULL,
     "when a client rejects tlspeek's certificate, pass\n"
     "that host through for that client program (its IP\n"
     "and ClientHello fingerprint, JA4) for a while;\n"
     "each decision is printed, SIGUSR1 lists them.\n"
     "Default: off (keep intercepting; the rejection is\n"
     "reported with how to trust the CA)",
     set_flag, F(auto_passthrough), 1},
    {"--auto-passthrough-ttl", 0, "S",
     "how long an automatic passthrough lasts,\n"
     "seconds (default 600)",
     set_seconds, F(auto_passthrough_ttl_ms), 1000, 0,
     "bad --auto-passthrough-ttl '%s' (seconds, at least 1)"},
    {"--no-auto-passthrough", 0, NULL, "deprecated: the default now", set_no_auto_passthrough,
     0, 0, 0, NULL, PX_OPT_HIDDEN},
    TEXT("\nCertificates:\n"),
    {"--ca-dir", 0, "DIR",
     "CA directory (default ~/.tlspeek; created on first\n"
     "run, mode 0700, key file mode 0600; refused when\n"
     "group or others may access either)",
     set_string, F(ca_dir), 0, 0, "option %s needs a directory", PX_OPT_GLOBAL},
    {"--ca-key-type", 0, "TYPE",
     "key type of a newly created CA: p256 (default),\n"
     "p384, rsa2048, rsa3072",
     set_key_type, F(ca_key_type), 0, 0, KEY_ERR("--ca-key-type"), PX_OPT_GLOBAL},
    {"--leaf-key", 0, "TYPE", "key type of minted certificates (default p256)", set_key_type,
     F(leaf_key_type), 0, 0, KEY_ERR("--leaf-key"), PX_OPT_GLOBAL},
    {"--cert-cache", 0, "N", "minted certificates kept in memory (default 1024)", set_count,
     F(cert_cache), 1, 1000000, "--cert-cache needs a number from 1 to 1000000, not '%s'",
     PX_OPT_GLOBAL},
    {"--upstream-ca", 0, "FILE",
     "extra trust anchors (PEM) for upstream verification,\n"
     "in addition to the system trust store",
     px_opt_set_upstream_ca},
    {"--insecure", 'k', NULL, "do not verify upstream certificates (warned loudly)", set_flag,
     F(insecure), 1},
    TEXT("\nTLS (client leg: client <-> tlspeek; upstream leg: tlspeek <-> server):\n"),
    PX_OPT_TLS_VERSION("--tls-min", 3, 0, NULL),
    PX_OPT_TLS_VERSION("--tls-max", 3, 1,
                       "lowest / highest TLS version of both legs: 1.0,\n"
                       "1.1, 1.2, 1.3 (default 1.2 to 1.3); below 1.2 sets\n"
                       "OpenSSL's security level 0 on that leg (warned)"),
    PX_OPT_TLS_VERSION("--client-tls-min", 1, 0, NULL),
    PX_OPT_TLS_VERSION("--client-tls-max", 1, 1, NULL),
    PX_OPT_TLS_VERSION("--upstream-tls-min", 2, 0, NULL),
    PX_OPT_TLS_VERSION("--upstream-tls-max", 2, 1, "the same for one leg"),
    PX_OPT_TLS_LIST("--ciphers", tls_ciphers, set_string,
                    "OpenSSL cipher list for TLS <= 1.2, both legs"),
    PX_OPT_TLS_LIST("--ciphersuites", tls_ciphersuites, set_string,
                    "OpenSSL TLS 1.3 ciphersuites, both legs"),
    PX_OPT_TLS_LIST("--groups", tls_groups, set_string,
                    "key exchange groups (e.g. X25519:P-256), both legs"),
    {"--client-cert", 0, "[HOST=]FILE",
     "present this certificate (PEM: chain and key) to\n"
     "upstreams asking for one; HOST: only to that host\n"
     "name, any port (repeatable; HOST= beats none)",
     set_list, F(client_certs), F(n_client_certs) - F(client_certs), PX_MAX_CLIENT_CERTS,
     "at most %s --client-cert"},
    TEXT("\nWhat is shown (stdout; diagnostics go to stderr):\n"),
    {"--quiet", 'q', NULL, "detail 0: show nothing", set_flag, F(detail), 0},
    {NULL, 'v', NULL, "more detail; repeat: -v headers, -vv bodies", set_more, F(detail), 0, 4,
     NULL, PX_OPT_REPEAT},
    {"--detail", 0, "N",
     "0 nothing, 1 one line per flow (default),\n"
     "2 + headers, 3 + bodies (decoded; binary as hexdump),\n"
     "4 + handshakes and the wire view",
     set_int, F(detail), 0, 4, "--detail takes 0 to 4, not '%s'"},
    {"--body-limit", 0, "SIZE",
     "body bytes shown per message at detail 3\n"
     "(default 4KiB; suffixes k, M, G)",
     set_size, F(body_limit), 0, 0, "bad --body-limit '%s' (a size such as 4096, 64k or 1M)"},
    TEXT("      -vvv / --detail 4    + TLS handshakes of both legs and the wire view\n"),
    {"--handshake", 0, NULL,
     "dissect TLS handshakes of both legs (client and\n"
     "upstream): hellos, certificates, JA3/JA4/JA3S",
     set_flag, F(show_handshake), 1},
    {"--wire", 0, NULL,
     "show each TLS record as a sniffer sees it (type,\n"
     "version, length, ciphertext hexdump) beside the\n"
     "plaintext it carried",
     set_flag, F(show_wire), 1},
    {"--wire-limit", 0, "SIZE", "ciphertext bytes hexdumped per record (default 64)", set_size,
     F(wire_limit), 1, 0, "bad --wire-limit '%s' (bytes of ciphertext shown per record, e.g. 64)"},
    {"--explain", 0, NULL,
     "explain each handshake step in plain words,\n"
     "numbered 1-9 as the classic TLS 1.2 walk-through",
     set_flag, F(explain), 1},
    {"--log-level", 0, "LEVEL", "error, warn, info (default), debug, trace", set_log_level},
    {"--filter", 'f', "EXPR", "show only flows matching EXPR (see Expressions)", set_expr,
     F(console_expr)},
    TEXT("\nTranscripts (any combination, with or without the console; files are mode\n"
         "0600, an existing file is made 0600 with a warning; HAR, JSONL and PCAP\n"
         "overwrite an existing file, with a warning when it was not empty; the key\n"
         "log appends to it):\n"),
    {"--har", 0, "FILE", "HAR 1.2, valid JSON after every completed flow", set_string,
     F(har_path), 0, 0, "option %s needs a file name"},
    {"--jsonl", 0, "FILE", "one JSON object per flow, flushed per flow", set_string,
     F(jsonl_path), 0, 0, "option %s needs a file name"},
    {"--pcap", 0, "FILE", "decrypted traffic as synthetic TCP packets (Wireshark)", set_string,
     F(pcap_path), 0, 0, "option %s needs a file name"},
    {"--keylog", 0, "FILE",
     "NSS key log of both TLS legs (default: $SSLKEYLOGFILE);\n"
     "lets Wireshark decrypt a capture of either leg",
     set_string, F(keylog_path), 0, 0, "option %s needs a file name"},
    {"--body-cap", 0, "SIZE",
     "body bytes kept per message in HAR/JSONL (default 10M;\n"
     "the cut is recorded; PCAP is never cut)",
     set_size, F(body_cap), 0, 0, "bad --body-cap '%s' (a size such as 1M or 10M)"},
    {"--har-filter", 0, "EXPR", NULL, set_expr, F(har_expr), 0, 0, NULL, PX_OPT_JOIN},
    {"--jsonl-filter", 0, "EXPR", NULL, set_expr, F(jsonl_expr), 0, 0, NULL, PX_OPT_JOIN},
    {"--pcap-filter", 0, "EXPR", NULL, set_expr, F(pcap_expr), 0, 0, NULL, PX_OPT_JOIN},
    {"--keylog-filter", 0, "EXPR",
     "record only matching flows (PCAP and key log decide\n"
     "per connection, with host-level terms)",
     set_expr, F(keylog_expr)},
    TEXT("\nFlow browser (README.md, \"Flow browser\"):\n"),
    {"--web", 0, "[HOST:]PORT",
     "serve the flow browser page on HOST:PORT (HOST default\n"
     "127.0.0.1; the URL with its token is printed at start)",
     set_string, F(web), 0, 0, "option %s needs [HOST:]PORT, e.g. 8081"},
    {"--web-flows", 0, "N",
     "flows the page keeps (default 10000; older ones are\n"
     "dropped and counted); bodies up to --body-cap each",
     set_count, F(web_flows), 1, 10000000, "--web-flows takes 1 to 10000000, not '%s'"},
    TEXT("\nActions:\n"),
    {"--block", 0, "EXPR[:STATUS]",
     "answer matching requests with STATUS (default 403)\n"
     "and close; the request is not sent upstream",
     set_action, 0, PX_ACT_BLOCK},
    PX_OPT_ANSWER_ROWS,
    {"--set-header", 0, "EXPR:NAME:VALUE", "set header NAME on matching flows", set_action, 0,
     PX_ACT_SET_HEADER},
    {"--remove-header", 0, "EXPR:NAME",
     "remove header NAME from matching flows\n"
     "Both edit the request when EXPR contains ~q (e.g.\n"
     "'~q & ~d api:X-Debug:1'), the response otherwise;\n"
     "response edits see the head only (no body terms).",
     set_action, 0, PX_ACT_REMOVE_HEADER, 0, NULL, 0, 36},
    {"--map-remote", 0, "EXPR:URL", PX_HELP_MAP_REMOTE, px_opt_set_map_remote},
    {"--throttle", 0, "EXPR:RATE[:LATENCY]", PX_HELP_THROTTLE, px_opt_set_throttle},
    {"--replace", 0, "EXPR:/RE/REPL/[FLAGS]",
     "replace RE (PCRE2) by REPL ($1, ${name}) at every match\n"
     "(flag 1: the first only; i m s x) in matching bodies,\n"
     "decoded, sent identity (the request if EXPR has ~q;\n"
     "over --body-cap: untouched). The separator is the\n"
     "character after the first ':' that leaves a valid EXPR",
     px_opt_set_replace, 0, 0, 0, NULL, 0, 36},
    {"--intercept", 0, "EXPR", PX_OPT_INTERCEPT_HELP, px_opt_set_intercept},
    {"--intercept-timeout", 0, "S[:ACT]", PX_OPT_INTERCEPT_TIMEOUT_HELP, px_opt_set_intercept_timeout},
    {"--redact", 0, "NAME,...",
     "show these headers' values as <redacted> in every\n"
     "view and transcript (PCAP keeps the raw bytes)",
     set_redact},
    {"--redact-auth", 0, NULL,
     "--redact Authorization,Proxy-Authorization,Cookie,\n"
     "Set-Cookie",
     set_redact},
    {"--load", 0, "FILE.so[:ARG]",
     "load a filter plugin written against filters/filter.h\n"
     "(refused when built for another filter ABI)",
     set_list, F(plugins), F(n_plugins) - F(plugins), PX_MAX_PLUGINS, "at most %s --load"},
    TEXT("\nExpressions (mitmproxy-compatible, plus TLS terms): ~a asset, ~all, ~b RE body,\n"
         "  ~bq/~bs RE request/response body, ~c CODE, ~d RE domain, ~dst RE server ip:port,\n"
         "  ~e error, ~h/~hq/~hs RE header \"name: value\", ~http, ~m RE method, ~q no\n"
         "  response yet, ~s has response, ~src RE client ip:port, ~t/~tq/~ts RE content\n"
         "  type, ~u RE url, ~websocket, ~tcp, ~sni RE, ~tls VERSION, ~alpn RE, ~ja3 HASH,\n"
         "  ~ja4 FP, ~intercepted, ~passthrough; ! & | ( ); a bare regex means ~u;\n"
         "  regexes are case-insensitive PCRE2, quoted with ' or \" when they hold spaces.\n"
         "\n"
         "Connections:\n"),
    {"--threads", 't', "N", "worker threads, one event loop each (default: cores)", set_int,
     F(threads), 1, 256, "--threads takes a number from 1 to 256, not '%s'"},
    {"--connect-timeout", 0, "S", "upstream TCP connect timeout, seconds (default 10)",
     set_seconds, F(connect_timeout_ms), 0, 0, SECONDS_ERR},
    {"--dns-timeout", 0, "S", "give up a DNS lookup after S seconds: 504 (default 5)",
     set_seconds, F(dns_timeout_ms), 1, 0, "bad --dns-timeout '%s' (seconds, e.g. 5 or 0.5)"},
    {"--dns-server", 0, "IP[:PORT][,...]",
     "DNS servers to ask (default: those of\n"
     "/etc/resolv.conf); /etc/hosts is read first",
     set_dns_server},
    {"--handshake-timeout", 0, "S", "TLS handshake timeout, seconds (default 10)", set_seconds,
     F(handshake_timeout_ms), 0, 0, SECONDS_ERR},
    {"--client-hello-timeout", 0, "S",
     "from accept (or a CONNECT/SOCKS5 tunnel's\n"
     "start) to the first bytes and a complete ClientHello;\n"
     "slower clients are closed (default 10)",
     set_seconds, F(client_hello_timeout_ms), 0, 0, SECONDS_ERR},
    {"--request-timeout", 0, "S",
     "from a request head's first byte to its end; else\n"
     "408 Request Timeout and close (default 30)",
     set_seconds, F(request_timeout_ms), 0, 0, SECONDS_ERR},
    {"--keepalive-timeout", 0, "S",
     "close a keep-alive connection when no new request\n"
     "begins for S seconds (default 60)",
     set_seconds, F(keepalive_timeout_ms), 0, 0, SECONDS_ERR},
    {"--idle-timeout", 0, "S", "close connections idle this long (default 300)", set_seconds,
     F(idle_timeout_ms), 0, 0, SECONDS_ERR},
    {"--upstream-idle", 0, "S",
     "between HTTP requests, close the upstream connection\n"
     "after S idle seconds and keep the client's; the next\n"
     "request reconnects, resuming TLS (default 5; 0 keeps\n"
     "it as long as the client's). Connection-bound auth\n"
     "(NTLM, Negotiate) keeps it.",
     set_seconds, F(upstream_idle_ms), 0, 0,
     "bad --upstream-idle '%s' (seconds, e.g. 5 or 0.5; 0 never closes)", PX_OPT_ZERO_OK},
    TEXT("\n"),
    {"--help", 'h', NULL, "this text", show_help},
    {"--version", 'V', NULL, "tlspeek, OpenSSL and libuv versions", px_opt_show_version},
    TEXT("\n"
         "Examples:\n"
         "  tlspeek -v                              # proxy on 127.0.0.1:8080, show headers\n"
         "  curl --cacert ~/.tlspeek/tlspeek-ca-cert.pem -x http://127.0.0.1:8080 "
         "https://example.test/\n"
         "  tlspeek -m reverse:https://127.0.0.1:8443 -l 127.0.0.1:9443 -vv\n"
         "  tlspeek run -v -- python3 app.py           # debug one program, nothing to set up\n"
         "\n"
         "Exit status: 0 clean shutdown, 1 runtime failure, 2 bad usage; tlspeek run: the\n"
         "command's (128+N when signal N killed it, 127 not found, 126 not executable).\n"),
};
#pragma GCC diagnostic pop

const px_option_t *px_options(size_t *n) {
  *n = sizeof(options) / sizeof(options[0]);
  return options;
}
