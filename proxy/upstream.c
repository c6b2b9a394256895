/* upstream.c — the upstream leg: resolve (c-ares on the worker's loop,
 * dns.h: a slow name never holds up another session), refuse addresses
 * that are tlspeek's own listeners (loopguard.h), connect trying every
 * address, then TLS with verification (system trust store + --upstream-ca)
 * and resumption. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "filters/util/log.h"
#include "proxy/fsm.h"
#include "proxy/loopguard.h"
#include "proxy/tlsopts.h"
#include "proxy/session.h"
#include "proxy/worker.h"

static void try_next_address(px_session_t *s);

#define B PX_FSM_BIT

static const char *const up_names[PX_UP_COUNT] = {
    "idle", "resolving", "connecting", "proxy-connect", "tls", "ready", "failed", "closed",
    "released"};

/* Set-up runs forward (a CONNECT to the next proxy and TLS each optional)
 * and may fail at every step; a ready leg may still fail (a client
 * certificate refused after the handshake), be released when idle
 * (RELEASED, set up again by the next request) or closed to switch origins
 * (CLOSED, then IDLE). A failed leg stays failed: its session answers and
 * closes; unless it never got a connection (DNS, connect) and a request is
 * mapped elsewhere (--map-remote): then it starts afresh (IDLE). */
static const uint32_t up_allowed[PX_UP_COUNT] = {
    [PX_UP_IDLE] = B(PX_UP_RESOLVING),
    [PX_UP_RESOLVING] = B(PX_UP_CONNECTING) | B(PX_UP_FAILED),
    [PX_UP_CONNECTING] = B(PX_UP_PROXY_CONNECT) | B(PX_UP_TLS) | B(PX_UP_READY) | B(PX_UP_FAILED),
    [PX_UP_PROXY_CONNECT] = B(PX_UP_TLS) | B(PX_UP_READY) | B(PX_UP_FAILED),
    [PX_UP_TLS] = B(PX_UP_READY) | B(PX_UP_FAILED),
    [PX_UP_READY] = B(PX_UP_FAILED) | B(PX_UP_RELEASED) | B(PX_UP_CLOSED),
    [PX_UP_FAILED] = B(PX_UP_IDLE),
    [PX_UP_CLOSED] = B(PX_UP_IDLE),
    [PX_UP_RELEASED] = B(PX_UP_RESOLVING),
};

const px_fsm_t px_up_fsm = {"upstream", up_names, PX_UP_COUNT, up_allowed};

static const char *const bind_names[PX_BIND_COUNT] = {"free", "pinned"};

/* Pinned is for good: the authentication belongs to the connection. */
static const uint32_t bind_allowed[PX_BIND_COUNT] = {
    [PX_BIND_FREE] = B(PX_BIND_PINNED),
    [PX_BIND_PINNED] = 0,
};

const px_fsm_t px_bind_fsm = {"binding", bind_names, PX_BIND_COUNT, bind_allowed};

void px_upstream_set_bind(px_session_t *s, px_up_bind_t next) {
  if (s->up_bind == next || px_fsm_check(&px_bind_fsm, s->conn.id, s->up_bind, next) != 0) return;
  s->up_bind = next;
}

/* The set-up state goes once the leg is ready: an idle connection does not
 * carry it. A failed leg keeps it until the session ends. */
static void setup_free(px_session_t *s) {
  px_up_setup_t *u = s->up_setup;
  if (u == NULL) return;
  px_dns_cancel(&u->dnsq);
  flt_strbuf_free(&u->proxy_resp);
  free(u);
  s->up_setup = NULL;
  s->w->up_setups--;
}

void px_upstream_set_state(px_session_t *s, px_up_state_t next) {
  if (s->up == next || px_fsm_check(&px_up_fsm, s->conn.id, s->up, next) != 0) return;
  s->up = next;
  if (next == PX_UP_READY) setup_free(s);
}

static char up_error_oom[] = "out of memory";

/* The failure's text, at its length. */
static void set_error(px_session_t *s, int status, const char *fmt, va_list ap) {
  char *text = NULL;
  if (s->up_error != up_error_oom) free(s->up_error);
  s->up_error = vasprintf(&text, fmt, ap) < 0 ? up_error_oom : text;
  s->up_error_status = status;
}

void px_upstream_fail(px_session_t *s, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(s, status, fmt, ap);
  va_end(ap);
  px_upstream_set_state(s, PX_UP_FAILED);
  px_session_upstream_failed(s);
}

/* up_host and up_name until they are set: "" (never freed). */
static char no_name[1];

static int set_name(px_session_t *s, char **dst, const char *src) {
  char *copy = src ? strdup(src) : NULL;
  if (*dst != no_name) free(*dst);
  *dst = copy ? copy : no_name;
  if (copy != NULL || src == NULL) return 0;
  px_session_close(s, "out of memory");
  return -1;
}

int px_upstream_set_names(px_session_t *s, const char *host, const char *name) {
  if (s->up_host == NULL) s->up_host = no_name; /* a new session */
  if (s->up_name == NULL) s->up_name = no_name;
  if (host && set_name(s, &s->up_host, host) != 0) return -1;
  if (name || host == NULL) return set_name(s, &s->up_name, name);
  return 0;
}

void px_upstream_free(px_session_t *s) {
  setup_free(s);
  if (s->up_error != up_error_oom) free(s->up_error);
  s->up_error = NULL;
  if (s->up_host != no_name) free(s->up_host);
  if (s->up_name != no_name) free(s->up_name);
  s->up_host = s->up_name = no_name;
}

void px_upstream_cancel_lookup(px_session_t *s) {
  if (s->up_setup) px_dns_cancel(&s->up_setup->dnsq);
}

static int is_ip_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
    snprintf(out, len, "[%s]", ip);
  } else {
    uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
    snprintf(out, len, "%s", ip);
  }
}

/* 1 (with `why`) when one of `a` is one of our own listeners. */
static int addrs_target_us(const char *host, uint16_t port, const px_dns_addrs_t *a, char *why,
                           size_t len) {
  for (int i = 0; i < a->n; i++) {
    char lis[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN + 2];
    if (!px_loopguard_targets_us(&a->a[i], lis, sizeof(lis))) continue;
    addr_text(&a->a[i], ip, sizeof(ip));
    snprintf(why, len,
             "%s:%u (%s) is tlspeek's own listener %s; connecting to it would loop back into "
             "tlspeek",
             host, (unsigned)port, ip, lis);
    return 1;
  }
  return 0;
}

int px_upstream_targets_us(const char *host, uint16_t port, char *why, size_t len) {
  px_dns_addrs_t a;
  return px_dns_resolve_local(host, port, &a) && addrs_target_us(host, port, &a, why, len);
}

/* The host the upstream leg connects to: the next proxy in upstream mode. */
static const char *connect_host(const px_session_t *s, uint16_t *port) {
  if (s->lc->mode == PX_MODE_UPSTREAM) {
    *port = s->lc->target_port;
    return s->lc->target_host;
  }
  *port = s->up_port;
  return s->up_host;
}

static void on_resolved(void *arg, int status, const char *why, const px_dns_addrs_t *addrs) {
  px_session_t *s = arg;
  px_up_setup_t *u = s->up_setup;
  /* cannot happen: cancelled */
  if (s->up != PX_UP_RESOLVING || s->state == PX_S_CLOSING || u == NULL) return;
  s->conn.dns_us = (int64_t)((uv_hrtime() - u->t_phase) / 1000);
  u->t_phase = uv_hrtime();
  if (status != 0) {
    px_upstream_fail(s, status, "%s", why);
    return;
  }
  uint16_t port;
  const char *host = connect_host(s, &port);
  char loop[512];
  if (addrs_target_us(host, port, addrs, loop, sizeof(loop))) {
    px_upstream_fail(s, 508, "%s", loop);
    return;
  }
  u->addrs = *addrs;
  u->addr_next = 0;
  px_set_deadline(s, s->w->shared->cfg->connect_timeout_ms, PX_T_CONNECT);
  try_next_address(s);
}

void px_upstream_start(px_session_t *s) {
  uint16_t port;
  if (s->state == PX_S_CLOSING) return;
  snprintf(s->conn.server_host, sizeof(s->conn.server_host), "%s", s->up_host);
  s->conn.server_port = s->up_port;
  px_upstream_set_state(s, PX_UP_RESOLVING);
  setup_free(s); /* a reconnect starts afresh */
  px_up_setup_t *u = s->up_setup = calloc(1, sizeof(*u));
  if (u == NULL) {
    px_upstream_fail(s, 502, "out of memory");
    return;
  }
  s->w->up_setups++;
  flt_strbuf_init(&u->proxy_resp, 16 * 1024);
  u->t_phase = uv_hrtime();
  /* Through the next proxy: plain HTTP requests go to it as they are
   * (absolute-form); everything else through a CONNECT tunnel. */
  if (s->lc->mode == PX_MODE_UPSTREAM) s->up_tunnel = s->state != PX_S_PROXY_HTTP;
  const char *host = connect_host(s, &port);
  px_dns_addrs_t local;
  if (px_dns_resolve_local(host, port, &local)) {
    on_resolved(s, 0, NULL, &local);
    return;
  }
  /* The resolver answers within --dns-timeout; this is only a backstop. */
  px_set_deadline(s, s->w->shared->cfg->dns_timeout_ms + 2000, PX_T_DNS);
  px_dns_lookup(s->w->dns, host, port, on_resolved, s, &u->dnsq);
}

static void start_tls(px_session_t *s);

void px_upstream_forget(px_session_t *s) {
  uv_os_fd_t fd;
  if (s->loopguard_registered && uv_fileno((uv_handle_t *)&s->upstream.tcp, &fd) == 0)
    px_loopguard_remove(fd);
  s->loopguard_registered = 0;
}

/* Upstream mode: ask the next proxy for a tunnel to the real server. */
static void proxy_connect_send(px_session_t *s) {
  char req[700], hp[300];
  if (strchr(s->up_host, ':'))
    snprintf(hp, sizeof(hp), "[%s]:%u", s->up_host, (unsigned)s->up_port);
  else
    snprintf(hp, sizeof(hp), "%s:%u", s->up_host, (unsigned)s->up_port);
  int n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hp, hp);
  px_upstream_set_state(s, PX_UP_PROXY_CONNECT);
  px_write_owned(s, &s->upstream, strdup(req), (size_t)n);
}

/* The tunnel is up (or refused); returns the bytes of `data` consumed, or
 * -1 when the session failed. */
static long proxy_connect_reply(px_session_t *s, const char *data, size_t len) {
  flt_strbuf_t *resp = &s->up_setup->proxy_resp;
  size_t before = resp->len;
  if (flt_strbuf_append(resp, data, len) != 0) {
    px_upstream_fail(s, 502, "the upstream proxy %s:%u sent an over-long answer to CONNECT",
                     s->lc->target_host, (unsigned)s->lc->target_port);
    return -1;
  }
  const char *end = strstr(resp->data, "\r\n\r\n");
  if (end == NULL) return (long)len;
  size_t head = (size_t)(end + 4 - resp->data);
  int major, minor, status = 0;
  if (sscanf(resp->data, "HTTP/%d.%d %d", &major, &minor, &status) != 3 ||
      status < 200 || status > 299) {
    size_t line = strcspn(resp->data, "\r\n");
    px_upstream_fail(s, 502, "the upstream proxy %s:%u refused CONNECT %s:%u: %.*s",
                     s->lc->target_host, (unsigned)s->lc->target_port, s->up_host,
                     (unsigned)s->up_port, (int)(line > 200 ? 200 : line), resp->data);
    return -1;
  }
  flt_strbuf_free(resp);
  if (s->up_tls_wanted) {
    start_tls(s);
  } else {
    px_upstream_set_state(s, PX_UP_READY);
    px_session_upstream_ready(s);
  }
  return (long)(head - before);
}

static void on_connected(uv_connect_t *req, int status) {
  px_session_t *s = req->data;
  if (status == UV_ECANCELED || s->state == PX_S_CLOSING) return;
  if (s->up != PX_UP_CONNECTING) return; /* timed out meanwhile: stay failed */
  px_up_setup_t *u = s->up_setup;
  if (status < 0) {
    snprintf(u->last_err, sizeof(u->last_err), "%s", uv_strerror(status));
    try_next_address(s);
    return;
  }
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  char ip[INET6_ADDRSTRLEN] = "?";
  if (uv_tcp_getpeername(&s->upstream.tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
      snprintf(s->conn.server_addr, sizeof(s->conn.server_addr), "[%s]:%u", ip,
               (unsigned)s->up_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
      snprintf(s->conn.server_addr, sizeof(s->conn.server_addr), "%s:%u", ip,
               (unsigned)s->up_port);
    }
  }
  s->conn.connect_us = (int64_t)((uv_hrtime() - u->t_phase) / 1000);
  u->t_phase = uv_hrtime();
  uv_tcp_nodelay(&s->upstream.tcp, 1);
  px_leg_read_start(&s->upstream);
  if (s->up_tunnel) {
    proxy_connect_send(s);
  } else if (s->up_tls_wanted) {
    start_tls(s);
  } else {
    px_upstream_set_state(s, PX_UP_READY);
    px_session_upstream_ready(s);
  }
}

px_session_t *px_upstream_handle_closed(uv_handle_t *h) {
  px_session_t *s = h->data;
  s->handles_open--;
  px_leg_closed(&s->upstream);
  if (s->state == PX_S_CLOSING) {
    px_session_close(s, NULL); /* finish a close that waited for us */
    return NULL;
  }
  return s;
}

static void on_retry_closed(uv_handle_t *h) {
  px_session_t *s = px_upstream_handle_closed(h);
  if (s) try_next_address(s);
}

static void try_next_address(px_session_t *s) {
  px_up_setup_t *u = s->up_setup;
  if (s->upstream.tcp_open) {
    /* A released leg still closing: on_release_closed comes back here. */
    if (uv_is_closing((uv_handle_t *)&s->upstream.tcp)) return;
    /* A failed connect leaves the handle unusable: close, then retry. */
    px_upstream_forget(s);
    uv_close((uv_handle_t *)&s->upstream.tcp, on_retry_closed);
    return;
  }
  if (u->addr_next >= u->addrs.n) {
    uint16_t port;
    const char *host = connect_host(s, &port);
    px_upstream_fail(s, 502, "cannot connect to %s:%u: %s", host, (unsigned)port,
                     u->last_err[0] ? u->last_err : "no usable address");
    return;
  }
  const struct sockaddr_storage *addr = &u->addrs.a[u->addr_next++];
  int irc = px_leg_open(&s->upstream, &s->w->loop, (unsigned)addr->ss_family);
  if (irc < 0) {
    /* No socket: the handle was never linked, so it must not be closed;
     * try the next address. */
    snprintf(u->last_err, sizeof(u->last_err), "%s",
             irc == UV_EMFILE || irc == UV_ENFILE
                 ? "no file descriptor left for the upstream socket (the open-file limit, "
                   "ulimit -n, is reached)"
                 : uv_strerror(irc));
    try_next_address(s);
    return;
  }
  if (s->w->shared->cfg->mark) {
    /* Lets an iptables rule exempt our own upstream traffic from REDIRECT. */
    uv_os_fd_t fd;
    int mark = s->w->shared->cfg->mark;
    if (uv_fileno((uv_handle_t *)&s->upstream.tcp, &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
      flt_log_warn("cannot set SO_MARK %d on an upstream socket: %s (needs CAP_NET_ADMIN)", mark,
                   strerror(errno));
  }
  s->handles_open++;
  px_upstream_set_state(s, PX_UP_CONNECTING);
  u->connect_req.data = s;
  int rc = uv_tcp_connect(&u->connect_req, &s->upstream.tcp, (const struct sockaddr *)addr,
                          on_connected);
  if (rc < 0) {
    snprintf(u->last_err, sizeof(u->last_err), "%s", uv_strerror(rc));
    try_next_address(s);
    return;
  }
  /* connect() has chosen the local address already: register it now, not
   * once connected, so that a connection that comes back into one of our
   * listeners is recognised however soon it is accepted. */
  uv_os_fd_t ufd;
  if (uv_fileno((uv_handle_t *)&s->upstream.tcp, &ufd) == 0) {
    px_loopguard_add(ufd, (const struct sockaddr *)addr);
    s->loopguard_registered = 1;
  }
}

static void upstream_handshake(px_session_t *s);

static void start_tls(px_session_t *s) {
  char key[280];
  const char *name = s->up_name[0] ? s->up_name : s->up_host;

  if (px_tls_init(&s->upstream.tls, s->w->client_ctx, 0) != 0) {
    char buf[256];
    px_upstream_fail(s, 502, "cannot start TLS to %s: %s", name,
                     px_tls_error_text(buf, sizeof(buf), "SSL_new failed"));
    return;
  }
  SSL_set_ex_data(s->upstream.tls.ssl, px_tlsctx_session_index(), s);
  s->up_cert_file = px_tlsopts_use_client_cert(s->upstream.tls.ssl, name);
  s->up_cert_requested = 0;
  if (is_ip_literal(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->upstream.tls.ssl), name);
  } else {
    SSL_set_tlsext_host_name(s->upstream.tls.ssl, name);
    SSL_set1_host(s->upstream.tls.ssl, name);
  }
  if (s->alpn_offer_len > 0)
    SSL_set_alpn_protos(s->upstream.tls.ssl, s->alpn_offer, (unsigned)s->alpn_offer_len);
  snprintf(key, sizeof(key), "%s:%u", name, (unsigned)s->up_port);
  SSL_SESSION *cached = px_tlsctx_upsess_get(s->w, key);
  if (cached) SSL_set_session(s->upstream.tls.ssl, cached);
  px_upstream_set_state(s, PX_UP_TLS);
  px_set_deadline(s, s->w->shared->cfg->handshake_timeout_ms, PX_T_UPSTREAM_TLS);
  upstream_handshake(s);
}

/* The server's alert (OpenSSL's reason codes for a received alert are
 * 1000 + the alert number), or -1 when the error was not one. */
static int received_alert(void) {
  int r = ERR_GET_REASON(ERR_peek_error());
  return r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256 ? r - SSL_AD_REASON_OFFSET
                                                                      : -1;
}

/* Alerts a server sends for a missing or refused client certificate. */
static int is_client_cert_alert(int alert) {
  switch (alert) {
    case SSL_AD_HANDSHAKE_FAILURE: case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE: case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED: case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA: case SSL_AD_ACCESS_DENIED: case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_CERTIFICATE_REQUIRED:
      return 1;
    default:
      return 0;
  }
}

static int client_cert_error(px_session_t *s, char *text, size_t len) {
  const char *name = s->up_name[0] ? s->up_name : s->up_host;
  int alert = received_alert();
  if (s->up_cert_file == NULL &&
      (s->up_cert_requested || alert == SSL_AD_CERTIFICATE_REQUIRED)) {
    snprintf(text, len,
             "the server %s:%u requested a client certificate and tlspeek has none for it: "
             "use --client-cert [%s=]FILE",
             name, (unsigned)s->up_port, name);
  } else if (s->up_cert_file != NULL && s->up_cert_requested && is_client_cert_alert(alert)) {
    snprintf(text, len,
             "the server %s:%u rejected the client certificate from --client-cert %s "
             "(alert %s)",
             name, (unsigned)s->up_port, s->up_cert_file, SSL_alert_desc_string_long(alert));
  } else {
    return 0;
  }
  ERR_clear_error();
  return 1;
}

static void upstream_handshake(px_session_t *s) {
  const char *name = s->up_name[0] ? s->up_name : s->up_host;
  int rc = SSL_do_handshake(s->upstream.tls.ssl);
  px_flush_tls(s, &s->upstream);
  if (rc == 1) {
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    s->conn.ssl_us = (int64_t)((uv_hrtime() - s->up_setup->t_phase) / 1000);
    snprintf(s->conn.up_tls_version, sizeof(s->conn.up_tls_version), "%s",
             SSL_get_version(s->upstream.tls.ssl));
    snprintf(s->conn.up_cipher, sizeof(s->conn.up_cipher), "%s",
             SSL_get_cipher_name(s->upstream.tls.ssl));
    SSL_get0_alpn_selected(s->upstream.tls.ssl, &alpn, &alpn_len);
    if (alpn && alpn_len < sizeof(s->conn.up_alpn)) {
      memcpy(s->conn.up_alpn, alpn, alpn_len);
      s->conn.up_alpn[alpn_len] = '\0';
    }
    long vr = SSL_get_verify_result(s->upstream.tls.ssl);
    snprintf(s->conn.up_verify, sizeof(s->conn.up_verify), "%s",
             vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr));
    s->up_cert = SSL_get1_peer_certificate(s->upstream.tls.ssl);
    px_upstream_set_state(s, PX_UP_READY);
    px_session_log(s, FLT_LOG_DEBUG, "upstream %s TLS up (%s, %s%s)", s->conn.server_addr,
                   SSL_get_version(s->upstream.tls.ssl), SSL_get_cipher_name(s->upstream.tls.ssl),
                   SSL_session_reused(s->upstream.tls.ssl) ? ", resumed" : "");
    px_session_upstream_ready(s);
    return;
  }
  int e = SSL_get_error(s->upstream.tls.ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  long vr = SSL_get_verify_result(s->upstream.tls.ssl);
  snprintf(s->conn.up_verify, sizeof(s->conn.up_verify), "%s",
           vr == X509_V_OK ? "handshake failed before verification"
                           : X509_verify_cert_error_string(vr));
  if (vr != X509_V_OK && !s->w->shared->cfg->insecure) {
    ERR_clear_error();
    px_upstream_fail(s, 502,
                     "certificate for %s failed verification: %s — pass --upstream-ca FILE "
                     "(to trust its CA) or -k (to skip verification)",
                     name, X509_verify_cert_error_string(vr));
    return;
  }
  char buf[256], cert_text[1024];
  if (client_cert_error(s, cert_text, sizeof(cert_text))) {
    px_upstream_fail(s, 502, "%s", cert_text);
    return;
  }
  px_upstream_fail(s, 502, "TLS handshake with %s:%u failed: %s", name, (unsigned)s->up_port,
                   px_tls_error_text(buf, sizeof(buf),
                                     e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL
                                         ? "the server closed the connection"
                                         : "handshake error"));
}

/* SSL_free() marks the session of a connection that ended without our
 * close_notify as broken and it is never offered again, so without this
 * every upstream connection after the first paid for a full handshake. A
 * leg whose handshake finished without a fatal error (OpenSSL leaves the
 * handshake state after one) says goodbye properly. The alert goes out
 * with uv_try_write: best effort, no write request outlives the call. */
void px_upstream_tls_close(px_session_t *s) {
  if (s->up == PX_UP_READY) px_leg_tls_close_now(&s->upstream);
}

/* TLS 1.3: the server judges our client certificate after our side of the
 * handshake is done, often before the client's request has arrived. The
 * request waiting, or the next one, gets the 502. */
static void refused_after_handshake(px_session_t *s, const char *text) {
  int waiting = s->flows.head && !s->flows.head->flow.has_response;
  if (!waiting && s->state != PX_S_CLIENT_TLS && s->state != PX_S_HTTP) {
    px_session_log(s, FLT_LOG_WARN, "%s", text);
    px_upstream_closed(s);
    return;
  }
  if (s->up_error != up_error_oom) free(s->up_error);
  s->up_error = strdup(text);
  if (s->up_error == NULL) s->up_error = up_error_oom;
  s->up_error_status = 502;
  px_upstream_set_state(s, PX_UP_FAILED);
  s->upstream.eof = 1;
  if (waiting) {
    px_session_upstream_failed(s); /* replies now (PX_S_HTTP) */
    return;
  }
  char about[300];
  snprintf(about, sizeof(about), "upstream %s:%u", s->up_host, (unsigned)s->up_port);
  px_session_fail(s, FLT_LOG_WARN, about, text, PX_FAIL_KEEP);
  px_session_set_state(s, PX_S_ERROR_REPLY);
}

void px_upstream_on_read(px_session_t *s, const char *data, size_t len) {
  if (s->up == PX_UP_PROXY_CONNECT) {
    long used = proxy_connect_reply(s, data, len);
    if (used < 0 || (size_t)used >= len || s->state == PX_S_CLOSING) return;
    data += used; /* the server spoke first: its bytes follow the 200 */
    len -= (size_t)used;
  }
  if (s->up == PX_UP_TLS || (s->up == PX_UP_READY && s->upstream.tls.ssl)) {
    if (px_tls_feed(&s->upstream.tls, data, len) != 0) {
      px_session_close(s, "out of memory");
      return;
    }
  }
  if (s->up == PX_UP_TLS) {
    upstream_handshake(s);
    if (s->up != PX_UP_READY) return;
  }
  if (s->up != PX_UP_READY) return;
  if (s->upstream.tls.ssl == NULL) {
    px_upstream_plaintext(s, data, len);
    return;
  }
  px_leg_read_t r = px_leg_tls_read(&s->upstream);
  if (r == PX_LEG_READ_STOPPED) return;
  px_flush_tls(s, &s->upstream); /* alerts, key updates */
  if (r == PX_LEG_READ_AGAIN) return;
  if (r == PX_LEG_READ_CLOSED) {
    px_upstream_closed(s);
    return;
  }
  char eb[1024];
  if (client_cert_error(s, eb, sizeof(eb))) {
    refused_after_handshake(s, eb);
    return;
  }
  px_session_log(s, FLT_LOG_INFO, "upstream TLS error: %s",
                 px_tls_error_text(eb, sizeof(eb), "connection reset"));
  px_upstream_closed(s);
}

/* ---- releasing an idle upstream (--upstream-idle) ------------------------ */

/* The leg forgets its connection and goes to `next` (IDLE, RELEASED). */
static void reset_to(px_session_t *s, px_up_state_t next) {
  px_tls_free(&s->upstream.tls);
  if (s->up_cert) X509_free(s->up_cert);
  s->up_cert = NULL;
  s->up_cert_file = NULL;
  s->up_cert_requested = 0;
  setup_free(s);
  px_upstream_set_state(s, next);
  s->upstream.eof = 0;
  s->upstream.paused = 0;
  /* A fresh codec state, which also gives back the header tables it grew;
   * the same sink (session_codec.c's, set by px_session_new). */
  px_codec_reset(s->upstream.codec);
}

void px_upstream_reset(px_session_t *s) { reset_to(s, PX_UP_IDLE); }

/* Only between HTTP requests, with nothing half-sent either way: a tunnel,
 * an upgrade or a body in flight belongs to this connection. */
static int between_requests(const px_session_t *s) {
  return s->up == PX_UP_READY && (s->state == PX_S_HTTP || s->state == PX_S_PROXY_HTTP) &&
         s->flows.head == NULL &&
         s->flows.req == NULL && px_codec_phase(s->client.codec) == PX_CODEC_IDLE &&
         px_codec_phase(s->upstream.codec) == PX_CODEC_IDLE && !(s->reading & PX_READ_HELD) &&
         s->upstream.pending.len == 0 && s->upstream.batch.len == 0 && s->upstream.writes == 0 &&
         !s->upstream.eof && !s->client.eof && s->end == PX_END_OPEN;
}

int px_upstream_releasable(const px_session_t *s) {
  return s->w->shared->cfg->upstream_idle_ms > 0 && s->up_bind == PX_BIND_FREE &&
         between_requests(s);
}

/* Idle upstreams a worker keeps for the full --upstream-idle; beyond that
 * many, newly idle ones close after PX_IDLE_UPSTREAM_FAST_MS, so thousands
 * of idle keep-alive clients do not hold thousands of upstream TLS
 * connections (and their memory is reused at once by new connections). */
#define PX_IDLE_UPSTREAM_MAX 64
#define PX_IDLE_UPSTREAM_FAST_MS 100

uint64_t px_upstream_release_delay(const px_session_t *s) {
  uint64_t d = s->w->shared->cfg->upstream_idle_ms;
  if (s->up_idle_fast && d > PX_IDLE_UPSTREAM_FAST_MS) d = PX_IDLE_UPSTREAM_FAST_MS;
  return d;
}

/* Whether an upstream is beyond the limit is decided when it becomes idle:
 * one within it keeps its full --upstream-idle even when its timer wakes
 * (to go quiet, px_upstream_quiet) while later ones are over the limit. */
void px_upstream_count_idle(px_session_t *s, int idle) {
  if (idle == s->up_idle_counted) return;
  if (s->up_idle_fast) s->w->idle_fast--;
  s->up_idle_counted = idle;
  s->w->idle_upstreams += idle ? 1 : -1;
  s->up_idle_fast = idle && s->w->idle_upstreams > PX_IDLE_UPSTREAM_MAX;
  if (s->up_idle_fast) s->w->idle_fast++;
}

/* A burst of connections leaves the memory its handshakes and released
 * upstream legs used free inside the heap, between the connections that
 * stay: glibc reuses it for the next ones but keeps it resident meanwhile
 * (1-3 MiB after a few thousand). Once no idle upstream is left beyond
 * the worker's limit (each is released after PX_IDLE_UPSTREAM_FAST_MS) and
 * no upstream is being set up, the burst is over: the whole free pages go
 * back to the system. malloc_trim walks the free lists of every arena
 * (locking each, and advising away every free chunk again, however often
 * it runs: several ms in a large heap), so it runs only then, only after
 * PX_TRIM_RELEASES releases since the last trim, and at most once every
 * PX_TRIM_GAP_MS for the whole process: not after every release of a
 * client that comes back now and then, nor for each of a few clients. */
#define PX_TRIM_RELEASES 32
#define PX_TRIM_GAP_MS 1000
static atomic_int trim_releases, trims;
static _Atomic uint64_t trim_last_ms;

static void trim_after_burst(px_worker_t *w) {
  int n = atomic_fetch_add(&trim_releases, 1) + 1;
  uint64_t now = uv_hrtime() / 1000000u, last = atomic_load(&trim_last_ms);

  if (w->up_setups != 0 || w->idle_fast != 0 || n < PX_TRIM_RELEASES ||
      now - last < PX_TRIM_GAP_MS)
    return;
  if (!atomic_compare_exchange_strong(&trim_last_ms, &last, now)) return; /* another worker */
  atomic_store(&trim_releases, 0);
  malloc_trim(0);
  flt_log_debug("heap trim %d: %d upstream releases since the last; free pages given back "
                "(malloc_trim)", atomic_fetch_add(&trims, 1) + 1, n);
}

static void on_release_closed(uv_handle_t *h) {
  px_session_t *s = px_upstream_handle_closed(h);
  /* A reconnect resolved its address while this close was under way. */
  if (s && s->up == PX_UP_RESOLVING && s->up_setup && s->up_setup->addrs.n > 0)
    try_next_address(s);
}

void px_upstream_release(px_session_t *s) {
  px_session_log(s, FLT_LOG_DEBUG, "upstream %s:%u idle for %.1f s: closed until the next request",
                 s->up_host, (unsigned)s->up_port, (double)px_upstream_release_delay(s) / 1000.0);
  px_upstream_tls_close(s); /* a clean end: the session stays resumable */
  px_upstream_count_idle(s, 0);
  px_upstream_forget(s);
  uv_close((uv_handle_t *)&s->upstream.tcp, on_release_closed);
  reset_to(s, PX_UP_RELEASED);
  /* The next flow pays for a new set-up (transcripts' timings). */
  s->conn.dns_us = s->conn.connect_us = s->conn.ssl_us = -1;
  px_codec_trim(s->client.codec);
  px_tls_trim_all(&s->client.tls);
  trim_after_burst(s->w);
}

/* ---- a quiet connection --------------------------------------------------- */

/* Nothing moved for this long with nothing in flight: the connection gives
 * back what only moving bytes needs (px_upstream_quiet), the moment an idle
 * upstream beyond PX_IDLE_UPSTREAM_MAX is released too. */
#define PX_QUIET_MS PX_IDLE_UPSTREAM_FAST_MS

uint64_t px_upstream_quiet_due(const px_session_t *s) {
  if (s->quiet_at == s->last_activity || !between_requests(s)) return UINT64_MAX;
  return s->last_activity + PX_QUIET_MS;
}

/* A connection whose upstream stays open (for --upstream-idle, pinned by
 * connection-bound authentication, or for good with --upstream-idle 0)
 * holds the framers and the memory BIOs (with the buffers the last
 * response grew in them) of both legs: about 3 KiB that the next request
 * makes again in microseconds. px_upstream_release does the client leg's
 * part itself. */
void px_upstream_quiet(px_session_t *s) {
  px_codec_trim(s->client.codec);
  px_codec_trim(s->upstream.codec);
  px_tls_trim_all(&s->client.tls);
  px_tls_trim_all(&s->upstream.tls);
  s->quiet_at = s->last_activity;
}

void px_upstream_reconnect(px_session_t *s) {
  px_session_log(s, FLT_LOG_DEBUG, "reconnecting upstream %s:%u", s->up_host, (unsigned)s->up_port);
  px_upstream_start(s);
}
