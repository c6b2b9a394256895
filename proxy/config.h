/* config.h — everything the command line decides, in one struct. */
#ifndef TLSPEEK_CONFIG_H
#define TLSPEEK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ca/ca.h"
#include "proxy/answer_local.h"

#define PX_VERSION "0.1.0"

typedef enum px_mode {
  PX_MODE_EXPLICIT = 0, /* HTTP proxy: CONNECT and absolute-form requests */
  PX_MODE_REVERSE,      /* fixed upstream */
  PX_MODE_TRANSPARENT,  /* iptables REDIRECT / TPROXY: SO_ORIGINAL_DST */
  PX_MODE_SOCKS5,       /* RFC 1928 CONNECT */
  PX_MODE_UPSTREAM      /* explicit, but reaching out through another proxy */
} px_mode_t;

#define PX_MAX_LISTENERS 8
#define PX_MAX_ACTIONS 32
#define PX_ICPT_TIMEOUT_MS 300000 /* --intercept-timeout's default */
#define PX_MAX_REDACT 32
#define PX_MAX_PLUGINS 8
#define PX_MAX_CLIENT_CERTS 16
#define PX_MAX_REPLACE 16

struct flt_expr;
struct px_serve;
struct px_replace;

/* What --block, --set-header and --remove-header ask for. */
typedef enum px_action_kind {
  PX_ACT_BLOCK = 0,
  PX_ACT_SET_HEADER,
  PX_ACT_REMOVE_HEADER
} px_action_kind_t;

typedef struct px_action {
  px_action_kind_t kind;
  struct flt_expr *expr;       /* which flows */
  int status;                  /* block: the status to answer with */
  int response_side;           /* headers: edit the response (else request) */
  char name[128];              /* header name */
  const char *value;           /* set-header: the value */
} px_action_t;

/* --map-remote EXPR:URL: matching requests go to another origin
 * (proxy/action_remote.c). */
typedef struct px_map_remote {
  struct flt_expr *expr;       /* which flows */
  int tls;                     /* the new scheme is https */
  char host[256];              /* the new host (an IPv6 literal without brackets) */
  uint16_t port;
  char prefix[1024];           /* path prefix put before the request's path ("" for none) */
  const char *text;            /* the URL as given, for messages */
} px_map_remote_t;

/* --throttle EXPR:RATE[:LATENCY] (proxy/throttle.c). */
typedef struct px_throttle_rule {
  struct flt_expr *expr;
  uint64_t rate;               /* bytes per second */
  uint64_t latency_ms;         /* before the response's first byte */
} px_throttle_rule_t;

/* One listening address and what connections arriving there mean. */
typedef struct px_listen_cfg {
  px_mode_t mode;
  char host[256];              /* where to listen */
  uint16_t port;
  /* reverse mode: where to go; upstream mode: the next proxy */
  int target_tls;              /* reverse: upstream scheme is https */
  char target_host[256];
  uint16_t target_port;
} px_listen_cfg_t;

typedef struct px_config {
  px_listen_cfg_t listens[PX_MAX_LISTENERS];
  int n_listens;
  int rewrite_host;            /* reverse: replace Host with the upstream's */
  int tproxy;                  /* transparent: TPROXY instead of REDIRECT */
  int mark;                    /* SO_MARK for upstream sockets (0 = none) */
  const char *proxyauth;       /* socks5: "user:pass" required */
  const char *ignore_hosts[16]; /* regexes: pass these hosts through */
  int n_ignore_hosts;
  struct flt_expr *ignore_exprs[16]; /* ... or host-level expressions */
  int n_ignore_exprs;
  px_action_t actions[PX_MAX_ACTIONS];
  int n_actions;
  px_map_local_t map_local[PX_MAX_ACTIONS]; /* --map-local EXPR:PATH, first match wins */
  int n_map_local;
  const char *serve_from;      /* --serve-from FILE (HAR or JSONL), or NULL */
  int serve_match_body;        /* --serve-match url+body */
  int serve_miss_404;          /* --serve-miss 404 (else forward) */
  struct px_serve *serve;      /* serve_from loaded at start-up (answer_serve.h) */
  px_map_remote_t map_remote[PX_MAX_ACTIONS]; /* first match wins */
  int n_map_remote;
  px_throttle_rule_t throttle[PX_MAX_ACTIONS]; /* first match wins */
  int n_throttle;
  struct px_replace *replaces[PX_MAX_REPLACE]; /* --replace, in order (action_replace.h) */
  int n_replaces;
  const char *redact[PX_MAX_REDACT]; /* header names shown as <redacted> */
  int n_redact;
  const char *plugins[PX_MAX_PLUGINS]; /* --load FILE.so[:ARG] */
  int n_plugins;
  /* which flows each view or transcript shows (NULL: all) */
  struct flt_expr *console_expr, *har_expr, *jsonl_expr, *pcap_expr, *keylog_expr;
  int auto_passthrough;        /* --auto-passthrough: pass (client program, host)
                                  through after a rejected certificate */
  uint64_t auto_passthrough_ttl_ms; /* how long such a decision lasts */

  char listen_host[256];       /* default for modes without @HOST:PORT */
  uint16_t listen_port;

  const char *ca_dir;
  ca_key_type_t ca_key_type;
  ca_key_type_t leaf_key_type;
  size_t cert_cache;

  const char *upstream_ca;     /* extra trust anchors (PEM file) */
  int insecure;                /* -k: do not verify upstream */
  /* TLS per leg ([0] client <-> tlspeek, [1] tlspeek <-> upstream): versions
   * as TLS1_2_VERSION etc., 0 = default (min 1.2, max the highest) */
  int tls_min[2], tls_max[2];
  const char *tls_ciphers;      /* --ciphers (TLS <= 1.2), both legs */
  const char *tls_ciphersuites; /* --ciphersuites (TLS 1.3), both legs */
  const char *tls_groups;       /* --groups, both legs */
  const char *client_certs[PX_MAX_CLIENT_CERTS]; /* --client-cert [HOST=]FILE */
  int n_client_certs;

  int detail;                  /* 0..4 */
  int show_handshake;          /* --handshake (or detail 4) */
  int show_wire;               /* --wire (or detail 4) */
  size_t wire_limit;           /* ciphertext bytes shown per record */
  int explain;                 /* --explain */
  size_t body_limit;
  size_t body_cap;             /* body bytes kept per message in HAR/JSONL, and
                                  buffered per message for --replace and plugins */
  const char *har_path;
  const char *jsonl_path;
  const char *pcap_path;
  const char *keylog_path;     /* --keylog, else $SSLKEYLOGFILE */
  const char *web;             /* --web [HOST:]PORT: the flow browser, or NULL */
  size_t web_flows;            /* --web-flows: flows it keeps */
  /* --intercept EXPR (repeatable): flows held in the flow browser; a rule
   * whose expression uses ~s holds the response, else the request */
  struct flt_expr *intercepts[PX_MAX_ACTIONS];
  int intercept_response[PX_MAX_ACTIONS];
  int n_intercepts;
  uint64_t intercept_timeout_ms; /* --intercept-timeout: 0 the default (PX_ICPT_TIMEOUT_MS),
                                    UINT64_MAX waits forever */
  int intercept_timeout_resume;  /* ... then resume (else kill) */
  int log_level;
  int threads;

  /* timeouts, milliseconds */
  uint64_t connect_timeout_ms;
  uint64_t handshake_timeout_ms;
  uint64_t client_hello_timeout_ms; /* accept (or tunnel) to first bytes /
                                       a complete ClientHello */
  uint64_t request_timeout_ms;  /* a request head's first byte to its end */
  uint64_t keepalive_timeout_ms; /* between requests on a keep-alive connection */
  uint64_t idle_timeout_ms;
  uint64_t upstream_idle_ms;    /* close an idle HTTP upstream (0: never) */
  uint64_t shutdown_grace_ms;
  uint64_t dns_timeout_ms;      /* one name lookup */
  const char *dns_servers;      /* --dns-server: "IP[:PORT],..." or NULL (resolv.conf) */
  char *const *run_argv;        /* `tlspeek run -- CMD ARGS...`: the command (NULL-terminated),
                                   or NULL for the proxy alone */
  struct px_replay *replay;     /* `tlspeek replay FILE`: the requests to send again through
                                   the proxy (proxy/replay/replay.h), or NULL */
} px_config_t;

/* Runs the proxy until SIGINT/SIGTERM, or with run_argv until that command
 * has exited (signals are passed on to it). Returns the process exit code:
 * with run_argv, the command's (128+N when signal N killed it; 127/126 when
 * it could not be started). */
int px_worker_run(const px_config_t *cfg);

/* `tlspeek ca ...`: argv[0] is the first word after "ca"; global options
 * are already removed. Returns the process exit code (0, 1, or 2). */
int px_ca_command(int argc, char **argv, const px_config_t *cfg);

/* The first option given whose action works on HTTP/1.1 flows only (not
 * on HTTP/2 streams yet), or NULL: with one, a client that offers both h2
 * and http/1.1 is given http/1.1 (tlsctx.c), so the action applies. */
static inline const char *px_config_h1_only_action(const px_config_t *cfg) {
  if (cfg->n_map_local) return "--map-local";
  if (cfg->serve_from) return "--serve-from";
  if (cfg->n_map_remote) return "--map-remote";
  if (cfg->n_throttle) return "--throttle";
  if (cfg->n_replaces) return "--replace";
  if (cfg->n_intercepts) return "--intercept";
  return NULL;
}

#endif
