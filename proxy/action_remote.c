/* action_remote.c — --map-remote (action_remote.h). */
#include "proxy/action_remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* The path and query of an absolute URL ("/" when it has none); the
 * fragment is not part of a request. */
static void url_path(const char *url, const char **p, size_t *len) {
  const char *a = strstr(url, "://");
  a = a ? a + 3 : url;
  const char *path = a + strcspn(a, "/?#");
  *p = path;
  *len = strcspn(path, "#");
}

void px_remote_target_free(px_remote_target_t *t) {
  free(t->path);
  free(t->url);
  t->path = t->url = NULL;
}

int px_remote_map(const px_config_t *cfg, const flt_flow_t *f, px_remote_target_t *t) {
  memset(t, 0, sizeof(*t));
  const px_map_remote_t *m = NULL;
  for (int i = 0; i < cfg->n_map_remote && m == NULL; i++)
    if (flt_expr_match_flow(cfg->map_remote[i].expr, f, NULL)) m = &cfg->map_remote[i];
  if (m == NULL || f->url == NULL) return 0;
  t->rule = m;
  const char *path;
  size_t plen;
  url_path(f->url, &path, &plen);
  int slash = plen == 0 || path[0] != '/'; /* "?q" or "" becomes "/?q", "/" */
  int deflt = m->port == (m->tls ? 443 : 80);
  snprintf(t->authority, sizeof(t->authority), strchr(m->host, ':') ? "[%s]" : "%s", m->host);
  if (!deflt)
    snprintf(t->authority + strlen(t->authority), sizeof(t->authority) - strlen(t->authority),
             ":%u", (unsigned)m->port);
  if (asprintf(&t->path, "%s%s%.*s", m->prefix, slash ? "/" : "", (int)plen, path) < 0)
    t->path = NULL;
  if (t->path == NULL ||
      asprintf(&t->url, "%s://%s%s", m->tls ? "https" : "http", t->authority, t->path) < 0) {
    t->url = NULL;
    px_remote_target_free(t);
    return -1;
  }
  return 1;
}

/* Aims the unconnected upstream leg at host:port (TLS or not). */
static void aim(px_session_t *s, const char *host, uint16_t port, int tls) {
  px_session_set_target(s, host, port);
  s->up_tls_wanted = tls;
  s->conn.upstream_tls = tls;
}

/* Keeps the connection's own origin (its first mapping away from it). */
static int keep_home(px_session_t *s) {
  if (s->remote_home) return 0;
  px_remote_home_t *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    px_session_close(s, "out of memory");
    return -1;
  }
  snprintf(h->host, sizeof(h->host), "%s", s->up_host);
  h->port = s->up_port;
  h->tls = s->up_tls_wanted;
  s->remote_home = h;
  return 0;
}

/* The connection's own origin failed before its first request (an https://
 * tunnel reaches it at the ClientHello) and never connected (DNS, connect):
 * a mapped request does not need it. The upstream leg starts afresh and the
 * connection serves HTTP again. Returns 1 when it did. */
static int recover(px_session_t *s) {
  if (s->state != PX_S_ERROR_REPLY || s->up != PX_UP_FAILED || s->upstream.tcp_open ||
      s->flows.head != NULL || s->end != PX_END_OPEN || keep_home(s) != 0)
    return 0;
  px_session_log(s, FLT_LOG_DEBUG, "%s:%u failed (%s); the request is mapped elsewhere",
                 s->up_host, (unsigned)s->up_port, s->up_error ? s->up_error : "?");
  px_upstream_reset(s);
  s->conn.server_addr[0] = '\0';
  s->tls_sniffed = 1; /* what follows is HTTP: its codec has parsed a request head */
  px_session_set_state(s, PX_S_HTTP);
  return s->state == PX_S_HTTP && px_upstream_unconnected(s);
}

int px_remote_route(px_session_t *s, const px_remote_target_t *t) {
  const char *host;
  uint16_t port;
  int tls;
  if (t) {
    host = t->rule->host;
    port = t->rule->port;
    tls = t->rule->tls;
  } else if (s->remote_home) {
    host = s->remote_home->host;
    port = s->remote_home->port;
    tls = s->remote_home->tls;
  } else {
    return 0; /* never mapped: the connection's own origin, as always */
  }
  if (t && recover(s)) {
    aim(s, host, port, tls);
    return 0;
  }
  if (s->state == PX_S_ERROR_REPLY || s->up == PX_UP_FAILED) return 0; /* answered with the error */
  int same = strcasecmp(host, s->up_host) == 0 && port == s->up_port && tls == s->up_tls_wanted;
  if (same) return 0;
  if (keep_home(s) != 0) return 0; /* leaving the connection's own origin */
  if (px_upstream_unconnected(s)) {
    aim(s, host, port, tls);
    return 0;
  }
  /* Connected to another origin: wait for its answers, then switch
   * (px_session_http_switch_when_idle, after this input). */
  px_session_set_reading(s, PX_READ_HELD, 1);
  px_update_reading(s);
  return PX_CODEC_HOLD;
}
