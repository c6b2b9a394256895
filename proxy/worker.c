/* worker.c — start-up, worker threads, listeners and shutdown.
 *
 * Each worker owns a loop, a SO_REUSEPORT listener on the same address (the
 * kernel spreads connections), and its SSL_CTXs. A session never leaves the
 * worker that accepted it, so the hot path takes no locks. */
#include "proxy/worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dlfcn.h>

#include <ares.h>
#include <openssl/rand.h>

#include "filters/console/console.h"
#include "filters/expr/expr.h"
#include "filters/tls/tlsview.h"
#include "filters/transcript/transcript.h"
#include "filters/web/store.h"
#include "filters/util/log.h"
#include "filters/util/output.h"
#include "proxy/loopguard.h"
#include "proxy/modes/passthrough.h"
#include "proxy/modes/proxyauth.h"
#include "proxy/replay/replay.h"
#include "proxy/runcmd.h"
#include "proxy/session.h"
#include "proxy/web/web.h"

typedef struct px_runtime {
  px_shared_t shared;
  px_worker_t **workers;
  int n_workers;
  uv_loop_t main_loop;
  uv_signal_t sigint, sigterm, sigusr1;
  int signals_seen;
  px_runcmd_t *command;       /* tlspeek run: the command, else NULL */
  int command_done;           /* it has exited (or could not start) */
  int command_status;         /* what tlspeek then exits with */
  void *console;
  void *tlsview;
  void *har, *jsonl, *pcap, *keylog;
  flt_web_store_t *web_store; /* --web: the flows the page shows */
  px_web_t *web;
  char web_proxy[300];        /* the first explicit listener, for the page's resend and curl */
  struct {
    void *dl;
    const flt_plugin_t *plugin;
    void *self;
  } plugins[PX_MAX_PLUGINS];
  int n_plugins;
} px_runtime_t;

/* ---- listeners ------------------------------------------------------------ */

static int resolve_listen(const px_listen_cfg_t *lc, struct sockaddr_storage *ss,
                          socklen_t *sl) {
  struct addrinfo hints, *res = NULL;
  char port[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  snprintf(port, sizeof(port), "%u", (unsigned)lc->port);
  int rc = getaddrinfo(lc->host, port, &hints, &res);
  if (rc != 0) {
    flt_log_error("cannot resolve listen address %s: %s", lc->host, gai_strerror(rc));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *sl = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* A socket bound to `ss`; with SO_REUSEPORT so every worker gets its own. */
static int make_listen_socket(const struct sockaddr_storage *ss, socklen_t sl, int reuseport,
                              int transparent) {
  int one = 1;
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) goto Fail;
  /* TPROXY delivers connections for foreign addresses to this socket. */
  if (transparent &&
      setsockopt(fd, ss->ss_family == AF_INET6 ? SOL_IPV6 : SOL_IP,
                 ss->ss_family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                 sizeof(one)) != 0)
    goto Fail;
  if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, (const struct sockaddr *)ss, sl) != 0) goto Fail;
  return fd;
Fail : {
  int e = errno;
  close(fd);
  return -e;
}
}

static void set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static uint16_t get_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Opens one listening socket per worker for listener `li`. SO_REUSEPORT
 * would let us share a port with another tlspeek silently, so a plain bind
 * tests it first. */
static int open_listener(px_runtime_t *rt, int li, uint16_t *bound_port) {
  const px_config_t *cfg = rt->shared.cfg;
  const px_listen_cfg_t *lc = &cfg->listens[li];
  int transparent = lc->mode == PX_MODE_TRANSPARENT && cfg->tproxy;
  struct sockaddr_storage ss;
  socklen_t sl;
  if (resolve_listen(lc, &ss, &sl) != 0) return -1;
  if (lc->port != 0) {
    int probe = make_listen_socket(&ss, sl, 0, transparent);
    if (probe < 0 || listen(probe, 1) != 0) {
      int e = probe < 0 ? -probe : errno;
      flt_log_error("cannot listen on %s:%u: %s%s", lc->host, (unsigned)lc->port, strerror(e),
                    transparent && e == EPERM ? " (--tproxy needs CAP_NET_ADMIN)" : "");
      if (probe >= 0) close(probe);
      return -1;
    }
    close(probe);
  }
  for (int i = 0; i < rt->n_workers; i++) {
    int fd = make_listen_socket(&ss, sl, 1, transparent);
    if (fd < 0) {
      flt_log_error("cannot listen on %s:%u: %s", lc->host, (unsigned)lc->port, strerror(-fd));
      return -1;
    }
    if (i == 0) {
      *bound_port = get_port(fd);
      set_port(&ss, *bound_port); /* port 0: the others take the same one */
    }
    px_listener_t *l = &rt->workers[i]->listeners[li];
    l->fd = fd;
    l->lc = lc;
    l->w = rt->workers[i];
    rt->workers[i]->n_listeners = li + 1;
  }
  return 0;
}

/* ---- worker threads --------------------------------------------------------- */

static void close_listeners(px_worker_t *w) {
  for (int i = 0; i < w->n_listeners; i++) px_accept_listener_close(&w->listeners[i]);
}

/* Every 10 ms while sessions wait: once the writers caught up, let them read. */
static void on_backlog_timer(uv_timer_t *t) {
  px_worker_t *w = t->data;
  if (flt_backlog() > FLT_BACKLOG_LOW && w->backlog_waiters > 0) return;
  uv_timer_stop(t);
  for (struct px_session *s = w->sessions, *next; s; s = next) {
    next = s->next;
    if (s->reading & PX_READ_BACKLOG) px_update_reading(s);
  }
}

void px_worker_watch_backlog(px_worker_t *w) {
  if (!uv_is_active((uv_handle_t *)&w->backlog_timer))
    uv_timer_start(&w->backlog_timer, on_backlog_timer, 10, 10);
}

static void close_worker_handles(px_worker_t *w) {
  if (!uv_is_closing((uv_handle_t *)&w->accept_timer))
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->backlog_timer))
    uv_close((uv_handle_t *)&w->backlog_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->wakeup)) uv_close((uv_handle_t *)&w->wakeup, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->grace)) uv_close((uv_handle_t *)&w->grace, NULL);
  px_dns_free(w->dns);
  w->dns = NULL;
}

void px_worker_session_gone(px_worker_t *w) {
  if (w->stopping && w->n_sessions == 0) close_worker_handles(w);
}

static void on_grace_over(uv_timer_t *t) {
  px_worker_t *w = t->data;
  if (w->n_sessions > 0)
    flt_log_info("worker %d: closing %d connection(s) still open after the grace period",
                 w->index, w->n_sessions);
  for (struct px_session *s = w->sessions, *next; s; s = next) {
    next = s->next;
    px_session_close(s, "shutting down");
  }
  if (w->n_sessions == 0) close_worker_handles(w);
}

static void on_wakeup(uv_async_t *a) {
  px_worker_t *w = a->data;
  if (w->stopping) return;
  w->stopping = 1;
  close_listeners(w);
  for (struct px_session *s = w->sessions, *next; s; s = next) {
    next = s->next;
    px_session_drain(s);
  }
  if (w->n_sessions == 0) {
    close_worker_handles(w);
    return;
  }
  uv_timer_start(&w->grace, on_grace_over, w->shared->cfg->shutdown_grace_ms, 0);
}

static void worker_main(void *arg) {
  px_worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static px_worker_t *worker_new(px_runtime_t *rt, int index, char *err, size_t errlen) {
  px_worker_t *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->index = index;
  w->shared = &rt->shared;
  for (int i = 0; i < PX_MAX_LISTENERS; i++) w->listeners[i].fd = -1;
  if (uv_loop_init(&w->loop) != 0 || px_tlsctx_make_server(w, err, errlen) != 0 ||
      px_tlsctx_make_client(w, err, errlen) != 0) {
    if (err[0] == '\0') snprintf(err, errlen, "cannot create an event loop");
    free(w);
    return NULL;
  }
  if (px_dns_new(&w->dns, &w->loop, rt->shared.cfg->dns_servers, rt->shared.cfg->dns_timeout_ms,
                 err, errlen) != 0) {
    SSL_CTX_free(w->server_ctx);
    SSL_CTX_free(w->client_ctx);
    uv_loop_close(&w->loop);
    free(w);
    return NULL;
  }
  uv_async_init(&w->loop, &w->wakeup, on_wakeup);
  w->wakeup.data = w;
  uv_timer_init(&w->loop, &w->grace);
  w->grace.data = w;
  uv_timer_init(&w->loop, &w->backlog_timer);
  w->backlog_timer.data = w;
  uv_timer_init(&w->loop, &w->accept_timer);
  w->accept_timer.data = w;
  /* libuv opens a reserve descriptor per loop (for an EMFILE trick that
   * accept.c does not use) when it sees the loop's first stream. Have that
   * happen now rather than at the first client, so the process holds the
   * same descriptors whenever it is idle, and px_accept_fd_limit_report counts it. */
  uv_tcp_t first;
  uv_tcp_init(&w->loop, &first);
  uv_close((uv_handle_t *)&first, NULL);
  uv_run(&w->loop, UV_RUN_NOWAIT);
  return w;
}

static void worker_free(px_worker_t *w) {
  if (w == NULL) return;
  close_listeners(w);
  close_worker_handles(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  SSL_CTX_free(w->server_ctx);
  SSL_CTX_free(w->client_ctx);
  px_tlsctx_upsess_clear(w);
  free(w);
}

/* ---- signals and the main thread -------------------------------------------- */

/* SIGUSR1: list the automatic passthroughs still running (stderr). */
static void on_sigusr1(uv_signal_t *sig, int signum) {
  px_runtime_t *rt = sig->data;
  (void)signum;
  px_passthrough_list(rt->shared.cfg->auto_passthrough);
}

static void stop_workers(px_runtime_t *rt) {
  for (int i = 0; i < rt->n_workers; i++) uv_async_send(&rt->workers[i]->wakeup);
}

static void on_signal(uv_signal_t *sig, int signum) {
  px_runtime_t *rt = sig->data;
  if (++rt->signals_seen > 1) {
    flt_log_warn("second %s: exiting now", signum == SIGINT ? "interrupt" : "signal");
    _exit(1);
  }
  flt_log_info("shutting down (%s): finishing open flows for up to %.0f s",
               signum == SIGINT ? "SIGINT" : "SIGTERM",
               (double)rt->shared.cfg->shutdown_grace_ms / 1000.0);
  px_replay_stop(rt->shared.cfg->replay);
  stop_workers(rt);
  uv_signal_stop(&rt->sigint);
  uv_signal_stop(&rt->sigterm);
  uv_signal_stop(&rt->sigusr1);
  /* Keep catching a second signal without keeping the loop alive. */
  uv_signal_start(&rt->sigint, on_signal, SIGINT);
  uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&rt->sigint);
  uv_unref((uv_handle_t *)&rt->sigterm);
}

/* ---- tlspeek run -- CMD ------------------------------------------------------ */

/* The command has exited: stop as SIGTERM would, with its status. */
static void on_command_exit(void *arg, int status) {
  px_runtime_t *rt = arg;
  rt->command_done = 1;
  rt->command_status = status;
  stop_workers(rt);
}

/* Writes the command's CA bundle and environment for the proxy on `port`. */
static int prepare_command(px_runtime_t *rt, uint16_t port) {
  const px_config_t *cfg = rt->shared.cfg;
  char err[600];
  px_runcmd_proxy_t px = {.port = port, .proxyauth = cfg->proxyauth,
                         .ca_cert = ca_cert_pem_path(rt->shared.ca),
                         .upstream_ca = cfg->upstream_ca};
  if (px_runcmd_prepare(&rt->command, cfg->run_argv, &px, err, sizeof(err)) != 0) {
    flt_log_error("tlspeek run: %s", err);
    return -1;
  }
  flt_log_info("running %s with HTTP(S)_PROXY=http://127.0.0.1:%u; it trusts tlspeek's CA "
               "through %s", cfg->run_argv[0], (unsigned)port, px_runcmd_bundle(rt->command));
  return 0;
}

/* tlspeek replay: every entry sent and finished; stop as the command's end
 * does, unless the flow browser is open: it stays until SIGINT/SIGTERM. */
static void on_replay_done(void *arg) {
  px_runtime_t *rt = arg;
  if (rt->web) {
    flt_log_info("replay: every request is done; the flow browser stays up until Ctrl-C");
    return;
  }
  on_command_exit(arg, 0);
}

/* tlspeek replay: the senders, clients of the listener on `port`. */
static void start_replay(px_runtime_t *rt, uint16_t port) {
  px_replay_proxy_t px = {.port = port, .ca_pem = ca_cert_pem_path(rt->shared.ca),
                          .proxyauth = rt->shared.cfg->proxyauth};
  if (px_replay_start(rt->shared.cfg->replay, &rt->main_loop, &px, on_replay_done, rt) != 0) {
    flt_log_error("tlspeek replay: cannot start the senders");
    on_command_exit(rt, 1);
  }
}

/* Starts the command once the workers run; when it cannot start, tlspeek
 * stops at once with 127 (not found), 126 (not executable) or 1. */
static void start_command(px_runtime_t *rt) {
  char err[600];
  int code = px_runcmd_spawn(rt->command, &rt->main_loop, on_command_exit, rt, err, sizeof(err));
  if (code != 0) {
    flt_log_error("tlspeek run: %s", err);
    on_command_exit(rt, code);
  }
}

/* The main thread's loop: SIGINT/SIGTERM, or tlspeek run's command (which
 * gets those signals passed on instead). */
static int init_main_loop(px_runtime_t *rt, uint16_t port) {
  if (rt->shared.cfg->run_argv && prepare_command(rt, port) != 0) return -1;
  uv_loop_init(&rt->main_loop);
  uv_signal_init(&rt->main_loop, &rt->sigint);
  uv_signal_init(&rt->main_loop, &rt->sigterm);
  rt->sigint.data = rt->sigterm.data = rt;
  uv_signal_init(&rt->main_loop, &rt->sigusr1);
  rt->sigusr1.data = rt;
  uv_signal_start(&rt->sigusr1, on_sigusr1, SIGUSR1);
  if (rt->command == NULL) {
    uv_signal_start(&rt->sigint, on_signal, SIGINT);
    uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
  }
  return 0;
}

static void close_main_loop(px_runtime_t *rt) {
  uv_close((uv_handle_t *)&rt->sigint, NULL);
  uv_close((uv_handle_t *)&rt->sigterm, NULL);
  uv_close((uv_handle_t *)&rt->sigusr1, NULL);
  px_runcmd_free(rt->command); /* closes its process handle: before the loop's last run */
  rt->command = NULL;
  px_replay_close(rt->shared.cfg->replay);
  uv_run(&rt->main_loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt->main_loop);
}

static const char *mode_text(const px_listen_cfg_t *lc, char *buf, size_t len) {
  switch (lc->mode) {
    case PX_MODE_REVERSE:
      snprintf(buf, len, "reverse mode to %s://%s:%u", lc->target_tls ? "https" : "http",
               lc->target_host, (unsigned)lc->target_port);
      break;
    case PX_MODE_UPSTREAM:
      snprintf(buf, len, "explicit proxy mode through http://%s:%u", lc->target_host,
               (unsigned)lc->target_port);
      break;
    case PX_MODE_TRANSPARENT: snprintf(buf, len, "transparent mode"); break;
    case PX_MODE_SOCKS5: snprintf(buf, len, "SOCKS5 mode"); break;
    default: snprintf(buf, len, "explicit proxy mode"); break;
  }
  return buf;
}

/* Adds a transcript filter; its set_slot (may be NULL) learns its index. */
static int add_sink(px_runtime_t *rt, void *self, const flt_ops_t *ops,
                    void (*set_slot)(void *, int), const char *what, struct flt_expr *expr) {
  int slot = flt_chain_add(&rt->shared.chain, ops, self);
  if (slot < 0) {
    flt_log_error("cannot add the %s: too many filters", what);
    return -1;
  }
  if (set_slot) set_slot(self, slot);
  flt_chain_set_expr(&rt->shared.chain, slot, expr, rt->shared.cfg->body_cap);
  return 0;
}

/* --load FILE.so[:ARG]: a filter plugin, refused unless built for an ABI
 * this tlspeek speaks (FLT_ABI_MIN_VERSION to FLT_ABI_VERSION). */
static int load_plugin(px_runtime_t *rt, const char *spec) {
  char path[1024];
  const char *arg = NULL;
  const char *colon = strchr(spec, ':');
  snprintf(path, sizeof(path), "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
  if (colon) arg = colon + 1;
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) {
    flt_log_error("cannot load plugin %s: %s", path, dlerror());
    return -1;
  }
  const flt_plugin_t *pl = dlsym(dl, FLT_PLUGIN_SYMBOL);
  if (pl == NULL || pl->ops == NULL || pl->create == NULL) {
    flt_log_error("%s is not a tlspeek plugin: it exports no '%s' (see filters/filter.h)", path,
                  FLT_PLUGIN_SYMBOL);
    dlclose(dl);
    return -1;
  }
  int abi = pl->abi_version, ops_abi = pl->ops->abi_version;
  if (abi < FLT_ABI_MIN_VERSION || abi > FLT_ABI_VERSION || ops_abi != abi) {
    int bad = abi < FLT_ABI_MIN_VERSION || abi > FLT_ABI_VERSION ? abi : ops_abi;
    flt_log_error("plugin %s was built for filter ABI %d, but this tlspeek speaks ABI %d to %d: "
                  "rebuild it against this tlspeek's filters/filter.h",
                  path, bad, FLT_ABI_MIN_VERSION, FLT_ABI_VERSION);
    dlclose(dl);
    return -1;
  }
  char err[512] = "";
  int slot = rt->shared.chain.n;
  void *self = pl->create(arg, slot, err, sizeof(err));
  if (self == NULL) {
    flt_log_error("plugin %s refused to start: %s", path, err[0] ? err : "no reason given");
    dlclose(dl);
    return -1;
  }
  rt->plugins[rt->n_plugins].dl = dl;
  rt->plugins[rt->n_plugins].plugin = pl;
  rt->plugins[rt->n_plugins].self = self;
  rt->n_plugins++;
  if (flt_chain_add(&rt->shared.chain, pl->ops, self) != slot) {
    flt_log_error("cannot add plugin %s: too many filters", path);
    return -1;
  }
  flt_log_info("loaded plugin %s (%s, filter ABI %d)", pl->name ? pl->name : path, path, abi);
  return 0;
}

static int setup_transcripts(px_runtime_t *rt, const px_config_t *cfg) {
  char err[600];
  if (cfg->har_path) {
    rt->har = flt_har_new(cfg->har_path, cfg->body_cap, PX_VERSION, err, sizeof(err));
    if (rt->har == NULL || add_sink(rt, rt->har, &flt_har_ops, flt_har_set_slot, "HAR transcript",
                 cfg->har_expr) != 0)
      goto Fail;
  }
  if (cfg->jsonl_path) {
    rt->jsonl = flt_jsonl_new(cfg->jsonl_path, cfg->body_cap, err, sizeof(err));
    if (rt->jsonl == NULL ||
        add_sink(rt, rt->jsonl, &flt_jsonl_ops, flt_jsonl_set_slot, "JSONL transcript",
                 cfg->jsonl_expr) != 0)
      goto Fail;
  }
  flt_har_jsonl_share(rt->har, rt->jsonl);
  if (cfg->pcap_path) {
    rt->pcap = flt_pcap_new(cfg->pcap_path, err, sizeof(err));
    if (rt->pcap == NULL || add_sink(rt, rt->pcap, &flt_pcap_ops, flt_pcap_set_slot, "PCAP transcript",
                 cfg->pcap_expr) != 0)
      goto Fail;
  }
  if (cfg->keylog_path) {
    rt->keylog = flt_keylog_new(cfg->keylog_path, err, sizeof(err));
    if (rt->keylog == NULL || add_sink(rt, rt->keylog, &flt_keylog_ops, NULL, "key log", cfg->keylog_expr) != 0)
      goto Fail;
    rt->shared.want_keylog = 1;
  }
  return 0;
Fail:
  flt_log_error("%s", err);
  return -1;
}

static int setup_shared(px_runtime_t *rt, const px_config_t *cfg) {
  char err[CA_ERR_LEN];
  int created = 0;
  px_shared_t *sh = &rt->shared;

  sh->cfg = cfg;
  if (ca_open(cfg->ca_dir, 1, cfg->ca_key_type, &sh->ca, &created, err, sizeof(err)) != 0) {
    flt_log_error("%s", err);
    return -1;
  }
  if (created)
    flt_log_info("created a new CA in %s — trust %s in your clients (tlspeek ca info)",
                 ca_dir(sh->ca), ca_cert_pem_path(sh->ca));
  if (ca_minter_new(sh->ca, cfg->leaf_key_type, cfg->cert_cache, &sh->minter, err,
                    sizeof(err)) != 0) {
    flt_log_error("%s", err);
    return -1;
  }
  if (RAND_bytes(sh->ticket_keys, sizeof(sh->ticket_keys)) != 1) {
    flt_log_error("cannot generate TLS ticket keys");
    return -1;
  }
  /* tlspeek replay: its filter tags flows before everyone else sees them. */
  if (cfg->replay) {
    int slot = flt_chain_add(&sh->chain, &px_replay_filter_ops, cfg->replay);
    if (slot < 0) return -1;
    px_replay_set_slot(cfg->replay, slot);
  }
  /* Plugins first: tags they set are then seen by the views after them. */
  for (int i = 0; i < cfg->n_plugins; i++)
    if (load_plugin(rt, cfg->plugins[i]) != 0) return -1;
  int tls_view = cfg->show_handshake || cfg->show_wire || cfg->explain;
  if (cfg->detail > 0 || tls_view) {
    /* At detail 0 with a TLS view, the console only lends it its writer. */
    flt_console_opts_t co = {.detail = cfg->detail > 3 ? 3 : cfg->detail,
                             .body_limit = cfg->body_limit, .color = -1, .fd = 1,
                             .filtered = cfg->console_expr != NULL};
    rt->console = flt_console_new(&co);
    if (rt->console == NULL ||
        add_sink(rt, rt->console, &flt_console_ops, flt_console_set_slot, "console view",
                 cfg->console_expr) != 0)
      return -1;
  }
  if (tls_view) {
    flt_tlsview_opts_t to = {.handshake = cfg->show_handshake || cfg->explain,
                             .wire = cfg->show_wire, .wire_limit = cfg->wire_limit,
                             .explain = cfg->explain, .color = flt_console_color(rt->console),
                             .out = flt_console_output(rt->console)};
    rt->tlsview = flt_tlsview_new(&to);
    if (rt->tlsview == NULL ||
        add_sink(rt, rt->tlsview, &flt_tlsview_ops, flt_tlsview_set_slot, "TLS view", NULL) != 0)
      return -1;
    /* The record versions of hellos come from the wire bytes. */
    sh->want_wire = 1;
  }
  sh->want_tls_messages = 1; /* JA3/JA4 for every connection (HAR, ~ja3) */
  if (cfg->web) {
    rt->web_store = flt_web_store_new(cfg->web_flows, cfg->body_cap);
    if (rt->web_store == NULL ||
        add_sink(rt, rt->web_store, &flt_web_ops, flt_web_store_set_slot,
                 "flow browser", NULL) != 0)
      return -1;
    sh->want_wire = 1; /* the page's wire view */
  }
  return setup_transcripts(rt, cfg);
}

/* --web: the page's server, once the listeners' ports are known. */
static int start_web(px_runtime_t *rt, const px_config_t *cfg) {
  char err[600];
  px_web_opts_t o;
  memset(&o, 0, sizeof(o));
  if (px_web_parse_addr(cfg->web, &o, err, sizeof(err)) < 0) goto Fail;
  o.store = rt->web_store;
  snprintf(o.proxy, sizeof(o.proxy), "%s", rt->web_proxy);
  o.ca = ca_cert_pem_path(rt->shared.ca);
  o.proxyauth = cfg->proxyauth;
  o.version = PX_VERSION;
  if ((rt->web = px_web_start(&o, err, sizeof(err))) != NULL) return 0;
Fail:
  flt_log_error("%s", err);
  return -1;
}

/* "127.0.0.1:PORT" of the first explicit (or upstream) listener. */
static void note_web_proxy(px_runtime_t *rt, const px_listen_cfg_t *lc, uint16_t port) {
  const char *h = lc->host;
  if (rt->web_proxy[0] || (lc->mode != PX_MODE_EXPLICIT && lc->mode != PX_MODE_UPSTREAM)) return;
  if (strcmp(h, "0.0.0.0") == 0 || h[0] == '\0') h = "127.0.0.1";
  if (strcmp(h, "::") == 0) h = "::1";
  snprintf(rt->web_proxy, sizeof(rt->web_proxy), "%s%s%s:%u", strchr(h, ':') ? "[" : "", h,
           strchr(h, ':') ? "]" : "", (unsigned)port);
}

static void teardown(px_runtime_t *rt) {
  for (int i = 0; i < rt->n_workers; i++) worker_free(rt->workers[i]);
  free(rt->workers);
  px_web_stop(rt->web);
  flt_emit_shutdown(&rt->shared.chain);
  if (rt->tlsview) flt_tlsview_free(rt->tlsview);
  if (rt->console) flt_console_free(rt->console);
  for (int i = 0; i < rt->n_plugins; i++) {
    if (rt->plugins[i].plugin->destroy) rt->plugins[i].plugin->destroy(rt->plugins[i].self);
    dlclose(rt->plugins[i].dl);
  }
  /* Expressions the chain took are freed with it; the others here. */
  const px_config_t *cfg = rt->shared.cfg;
  struct flt_expr *mine[] = {cfg->console_expr, cfg->har_expr, cfg->jsonl_expr, cfg->pcap_expr,
                             cfg->keylog_expr};
  for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
    int owned = 0;
    for (int k = 0; k < FLT_MAX_FILTERS; k++) owned |= rt->shared.chain.exprs[k] == mine[i];
    if (!owned) flt_expr_free(mine[i]);
  }
  for (int i = 0; i < cfg->n_actions; i++) flt_expr_free(cfg->actions[i].expr);
  for (int i = 0; i < cfg->n_map_remote; i++) flt_expr_free(cfg->map_remote[i].expr);
  for (int i = 0; i < cfg->n_throttle; i++) flt_expr_free(cfg->throttle[i].expr);
  for (int i = 0; i < cfg->n_ignore_exprs; i++) flt_expr_free(cfg->ignore_exprs[i]);
  for (int i = 0; i < cfg->n_intercepts; i++) flt_expr_free(cfg->intercepts[i]);
  flt_chain_free(&rt->shared.chain);
  if (rt->har) flt_har_free(rt->har);
  if (rt->jsonl) flt_jsonl_free(rt->jsonl);
  if (rt->pcap) flt_pcap_free(rt->pcap);
  if (rt->keylog) flt_keylog_free(rt->keylog);
  flt_web_store_free(rt->web_store);
  px_passthrough_free();
  ca_minter_free(rt->shared.minter);
  ca_free(rt->shared.ca);
}

int px_worker_run(const px_config_t *cfg) {
  px_runtime_t rt;
  char err[512] = "", mode[400];
  uint16_t port = 0;
  int rc = 1, started = 0;

  memset(&rt, 0, sizeof(rt));
  signal(SIGPIPE, SIG_IGN);
  px_accept_fd_limit_raise();
  px_tlsctx_init_index();
  if (setup_shared(&rt, cfg) != 0 || px_passthrough_init(cfg) != 0) goto Exit;
  /* Every mode can be pointed back at tlspeek itself. */
  px_loopguard_enable();
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
    flt_log_error("cannot initialise the DNS library (c-ares)");
    goto Exit;
  }
  if (cfg->insecure)
    flt_log_warn("-k/--insecure: upstream certificates are NOT verified; anyone on the path "
                 "can impersonate the servers you reach");
  px_proxyauth_startup_notes(cfg);
  rt.n_workers = cfg->threads > 0 ? cfg->threads : (int)uv_available_parallelism();
  if (rt.n_workers < 1) rt.n_workers = 1;
  rt.workers = calloc((size_t)rt.n_workers, sizeof(*rt.workers));
  if (rt.workers == NULL) goto Exit;
  for (int i = 0; i < rt.n_workers; i++) {
    rt.workers[i] = worker_new(&rt, i, err, sizeof(err));
    if (rt.workers[i] == NULL) {
      flt_log_error("%s", err);
      goto Exit;
    }
  }
  for (int li = 0; li < cfg->n_listens; li++) {
    if (open_listener(&rt, li, &port) != 0) goto Exit;
    px_loopguard_add_listener(rt.workers[0]->listeners[li].fd);
    for (int i = 0; i < rt.n_workers; i++) {
      px_listener_t *l = &rt.workers[i]->listeners[li];
      /* listen() now, before "listening on" is printed: the worker's loop
       * is not running yet, so this thread may still touch its handles. */
      int lrc = px_accept_listener_start(rt.workers[i], l);
      if (lrc < 0) {
        flt_log_error("cannot listen on %s:%u: %s", cfg->listens[li].host, (unsigned)port,
                      uv_strerror(lrc));
        goto Exit;
      }
    }
    flt_log_info("listening on %s:%u (%s, %d thread%s)", cfg->listens[li].host, (unsigned)port,
                 mode_text(&cfg->listens[li], mode, sizeof(mode)), rt.n_workers,
                 rt.n_workers == 1 ? "" : "s");
    note_web_proxy(&rt, &cfg->listens[li], port);
  }
  if (cfg->web && start_web(&rt, cfg) != 0) goto Exit;
  if (init_main_loop(&rt, port) != 0) goto Exit;

  px_accept_fd_limit_report();
  flt_log_info("CA certificate: %s", ca_cert_pem_path(rt.shared.ca));
  for (int i = 0; i < rt.n_workers; i++) {
    if (uv_thread_create(&rt.workers[i]->thread, worker_main, rt.workers[i]) != 0) {
      flt_log_error("cannot start worker thread %d", i);
      _exit(1);
    }
    started++;
  }
  if (rt.command) start_command(&rt);
  if (cfg->replay) start_replay(&rt, port);
  /* The main loop only waits for signals, or for the command; it ends when
   * they are stopped, or the command has exited. */
  while (!rt.command_done && uv_run(&rt.main_loop, UV_RUN_ONCE) && rt.signals_seen == 0) {
  }
  for (int i = 0; i < started; i++) uv_thread_join(&rt.workers[i]->thread);
  close_main_loop(&rt);
  flt_log_info("stopped");
  rc = cfg->run_argv ? rt.command_status : 0;
Exit:
  px_runcmd_free(rt.command); /* a start-up failure after it was prepared */
  teardown(&rt);
  flt_log_flush();
  return rc;
}
