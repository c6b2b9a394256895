/* session_http.c — HTTP/1.1 through a session: the framers' callbacks, the
 * flows they produce, explicit-proxy requests (CONNECT, absolute-form) and
 * the error answers tlspeek gives itself (400, 502, 504). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/modes/proxyauth.h"
#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

flt_head_t *px_http_copy_head(px_http_t *h);

static const flt_chain_t *chain_of(px_session_t *s) { return &s->w->shared->chain; }

/* ---- flows ---------------------------------------------------------------- */

static void flow_free(px_flow_node_t *n) {
  free(n->flow.url);
  free(n->req_copy);
  free(n->resp_copy);
  free(n->req_sent);
  free(n->resp_sent);
  for (size_t i = 0; i < n->flow.n_interim; i++) free((flt_head_t *)n->interim[i]);
  free(n);
}

/* --redact: the copy that views and transcripts see shows <redacted>. */
static void redact(px_session_t *s, flt_head_t *h) {
  const px_config_t *cfg = s->w->shared->cfg;
  px_http_redact_head(cfg->redact, cfg->n_redact, cfg->proxyauth != NULL, h);
}

static const px_action_t *blocking_action(px_session_t *s, const flt_flow_t *f);
static int collect_edits(px_session_t *s, const flt_flow_t *f, int response_side,
                         px_head_edit_t *e);

/* The head as forwarded, for the views, when actions edit it: set before
 * its head event, from the same edits send_head applies (flow.req_sent,
 * flow.resp_sent). Out of memory, the views show the head as received. */
static void flow_set_sent(px_session_t *s, px_flow_node_t *n, int response_side) {
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  if (!collect_edits(s, &n->flow, response_side, &e)) return;
  flt_head_t *sent = px_head_edited(response_side ? &n->flow.resp : &n->flow.req, &e);
  if (sent == NULL) return;
  redact(s, sent); /* a value set by an action, too */
  if (response_side) {
    n->resp_sent = sent;
    n->flow.resp_sent = sent;
  } else {
    n->req_sent = sent;
    n->flow.req_sent = sent;
  }
}

/* A 1xx the client gets before the final response (flow.interim). */
static void flow_add_interim(px_session_t *s, px_flow_node_t *n, px_http_t *h) {
  if (n->flow.n_interim >= FLT_MAX_INTERIM) return;
  flt_head_t *copy = px_http_copy_head(h);
  if (copy == NULL) return;
  redact(s, copy);
  n->interim[n->flow.n_interim++] = copy;
  n->flow.interim = n->interim;
}

static px_flow_node_t *flow_start(px_session_t *s, px_http_t *h) {
  px_upstream_count_idle(s, 0); /* busy again */
  px_flow_node_t *n = calloc(1, sizeof(*n));
  if (n == NULL) return NULL;
  n->req_copy = px_http_copy_head(h);
  if (n->req_copy == NULL) {
    free(n);
    return NULL;
  }
  redact(s, n->req_copy);
  n->flow.id = atomic_fetch_add(&s->w->shared->next_flow_id, 1) + 1;
  n->flow.conn = &s->conn;
  snprintf(n->flow.scheme, sizeof(n->flow.scheme), "%s", s->conn.client_tls ? "https" : "http");
  n->flow.req = *n->req_copy;
  n->flow.url = px_http_absolute_url(&s->conn, &n->flow.req);
  n->flow.t_start_us = flt_now_us();
  n->head_only = strcmp(n->flow.req.method, "HEAD") == 0;
  n->upgrade_asked = h->parser.upgrade;
  if (s->flows_tail)
    s->flows_tail->next = n;
  else
    s->flows_head = n;
  s->flows_tail = n;
  s->req_flow = n;
  /* Answered by tlspeek itself (an upstream error, --block): not forwarded. */
  if (s->state != PX_S_ERROR_REPLY && blocking_action(s, &n->flow) == NULL)
    flow_set_sent(s, n, 0);
  flt_emit_request_head(chain_of(s), &n->flow);
  return n;
}

static void flow_finish(px_session_t *s, const char *error) {
  px_flow_node_t *n = s->flows_head;
  if (n == NULL) return;
  s->flows_head = n->next;
  if (s->flows_head == NULL) s->flows_tail = NULL;
  if (s->req_flow == n) s->req_flow = NULL;
  n->flow.t_end_us = flt_now_us();
  n->flow.error = error;
  if (s->conn.client_eof_us) s->answered_after_eof = 1;
  flt_emit_flow_end(chain_of(s), &n->flow);
  flow_free(n);
  if (s->flows_head == NULL) {
    /* Idle from here on (keep-alive): give back the grown TLS buffers. */
    px_tls_trim(&s->client.tls);
    px_tls_trim(&s->upstream.tls);
    px_session_rearm_timer(s); /* --upstream-idle counts from here */
    px_client_deadline_update(s); /* --keepalive-timeout too */
  }
  if (s->end >= PX_END_DRAINING && s->flows_head == NULL && s->state != PX_S_CLOSING) {
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
  }
}

void px_flows_fail_all(px_session_t *s, const char *why) {
  while (s->flows_head) flow_finish(s, why);
}

/* ---- tlspeek's own answers -------------------------------------------------- */

void px_session_http_reply_error(px_session_t *s, int status, const char *reason,
                                 const char *extra, const char *text) {
  char head[512];
  size_t body_len = strlen(text) + 1;
  if (s->end >= PX_END_FLUSHING || s->state == PX_S_CLOSING) return;
  /* The flow waiting for this answer ends with the error. */
  if (s->flows_head && !s->flows_head->flow.has_response) flow_finish(s, text);
  px_flows_fail_all(s, text);
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\nServer: tlspeek\r\n\r\n",
                   status, reason, extra, body_len);
  if (n < 0 || (size_t)n >= sizeof(head)) n = 0;
  px_send_client(s, head, (size_t)n);
  px_send_client(s, text, body_len - 1);
  px_send_client(s, "\n", 1);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
}

static void bad_request(px_session_t *s, const char *why) {
  char text[400];
  snprintf(text, sizeof(text), "tlspeek: malformed HTTP request: %s", why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, 400);
}

/* ---- actions: --block, --set-header, --remove-header ------------------------- */

static const char *status_reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 418: return "I'm a teapot";
    case 429: return "Too Many Requests";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : "Blocked";
  }
}

static const px_action_t *blocking_action(px_session_t *s, const flt_flow_t *f) {
  const px_config_t *cfg = s->w->shared->cfg;
  for (int i = 0; i < cfg->n_actions; i++)
    if (cfg->actions[i].kind == PX_ACT_BLOCK && flt_expr_match_flow(cfg->actions[i].expr, f, NULL))
      return &cfg->actions[i];
  return NULL;
}

/* Answers the newest flow ourselves with the --block status, then closes:
 * what the client sends after it is not read. */
static void reply_blocked(px_session_t *s, px_flow_node_t *n, int status) {
  static const char body[] = "tlspeek: this request was blocked by --block\n";
  char head[300];
  flt_header_t hdr[2] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                         {"Content-Length", 14, "45", 2}};
  flt_head_t h = {.http_major = 1, .http_minor = 1, .status = status,
                  .reason = status_reason(status), .headers = hdr, .n_headers = 2};
  n->resp_copy = px_head_copy(&h);
  if (n->resp_copy) {
    n->flow.resp = *n->resp_copy;
    n->flow.has_response = 1;
    n->flow.t_resp_head_us = flt_now_us();
    flt_flow_tag(&n->flow, "blocked");
    flt_emit_response_head(chain_of(s), &n->flow);
    n->flow.resp_body_bytes = sizeof(body) - 1;
    flt_emit_response_body(chain_of(s), &n->flow, (const uint8_t *)body, sizeof(body) - 1);
  }
  int len = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\nServer: tlspeek\r\n\r\n",
                     status, status_reason(status), sizeof(body) - 1);
  px_send_client(s, head, (size_t)len);
  px_send_client(s, body, sizeof(body) - 1);
  while (s->flows_head && s->flows_head != n) flow_finish(s, "closed: a later request was blocked");
  flow_finish(s, NULL);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
}

/* Collects the header edits of the actions that match `f` on one side. */
static int collect_edits(px_session_t *s, const flt_flow_t *f, int response_side,
                         px_head_edit_t *e) {
  const px_config_t *cfg = s->w->shared->cfg;
  int any = 0;
  for (int i = 0; i < cfg->n_actions; i++) {
    const px_action_t *a = &cfg->actions[i];
    if (a->kind == PX_ACT_BLOCK || a->response_side != response_side) continue;
    if (!flt_expr_match_flow(a->expr, f, NULL)) continue;
    if (a->kind == PX_ACT_SET_HEADER && e->n_set < PX_HEAD_MAX_EDITS) {
      e->set_name[e->n_set] = a->name;
      e->set_value[e->n_set++] = a->value;
      any = 1;
    } else if (a->kind == PX_ACT_REMOVE_HEADER && e->n_remove < PX_HEAD_MAX_EDITS) {
      e->remove[e->n_remove++] = a->name;
      any = 1;
    }
  }
  return any;
}

/* Sends a head on, rewritten when `e` (or an action) asks for changes. */
static void send_head(px_session_t *s, px_http_t *h, const flt_flow_t *f, px_head_edit_t *e,
                      const char *raw, size_t len, int to_client) {
  /* Hop-by-hop fields are the client's business with tlspeek: they never
   * go upstream as they came (RFC 9110 §7.6.1). */
  if (!to_client) e->strip_hop = px_http_has_hop_by_hop(h);
  int edited = collect_edits(s, f, to_client, e) || e->url || e->host || e->n_remove > 0 ||
               e->strip_hop;
  if (!edited) {
    if (to_client)
      px_send_client(s, raw, len);
    else
      px_send_upstream(s, raw, len);
    return;
  }
  flt_strbuf_t head;
  flt_strbuf_init(&head, PX_HTTP_MAX_HEAD + 8192);
  if (px_http_head_build(h, e, &head) == 0) {
    if (to_client)
      px_send_client(s, head.data, head.len);
    else
      px_send_upstream(s, head.data, head.len);
  }
  flt_strbuf_free(&head);
}

/* ---- explicit proxy requests -------------------------------------------------- */

static void release_held_requests(px_session_t *s);

/* The old upstream connection is gone: start afresh with the held request,
 * whose origin becomes the target (proxy_request, up == PX_UP_IDLE). */
static void on_switch_closed(uv_handle_t *h) {
  px_session_t *s = px_upstream_handle_closed(h);
  if (s == NULL) return;
  px_upstream_reset(s);
  s->conn.server_addr[0] = '\0';
  s->switch_pending = 0;
  release_held_requests(s);
  px_update_reading(s);
}

/* Explicit plain HTTP may name another origin on the same client
 * connection. Its request was held (proxy_request); once the current origin
 * has answered every request before it, close that upstream connection and
 * go on with the held one. Called wherever that may have become true. */
static void switch_when_idle(px_session_t *s) {
  if (!s->switch_pending || s->flows_head != NULL || s->end >= PX_END_FLUSHING ||
      s->state == PX_S_CLOSING || s->up == PX_UP_CLOSED)
    return;
  if (!s->upstream.tcp_open || uv_is_closing((uv_handle_t *)&s->upstream.tcp)) {
    /* Every flow has its answer, so the leg was connected; be safe anyway. */
    px_session_close(s, "no upstream connection to switch from");
    return;
  }
  px_upstream_tls_close(s); /* keeps its session resumable */
  px_upstream_set_state(s, PX_UP_CLOSED); /* until on_switch_closed */
  px_upstream_forget(s);
  uv_close((uv_handle_t *)&s->upstream.tcp, on_switch_closed);
}

/* A request whose target is one of our own listeners would make tlspeek
 * connect to itself, again and again: refuse it (508 Loop Detected) before
 * answering. Targets that need DNS are caught after resolution (upstream.c),
 * inside the tunnel for CONNECT. */
static int targets_us(px_session_t *s, const char *host, uint16_t port) {
  char why[400], text[450];
  if (!px_upstream_targets_us(host, port, why, sizeof(why))) return 0;
  snprintf(text, sizeof(text), "tlspeek: %s", why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, 508);
  return 1;
}

static int proxy_connect(px_session_t *s, px_http_t *h, const char *url) {
  char host[256];
  uint16_t port;
  /* RFC 9112 §3.2.3: authority-form is host:port and nothing else. */
  if (strchr(url, '@')) {
    bad_request(s, "CONNECT target must be HOST:PORT; user information (user@) is not allowed "
                   "in it (RFC 9112 §3.2.3)");
    return 0;
  }
  if (strpbrk(url, "/?#") || px_http_split_authority(url, host, sizeof(host), &port, 443) != 0 ||
      strchr(url, ':') == NULL) {
    bad_request(s, "CONNECT needs HOST:PORT (authority-form, RFC 9112 §3.2.3)");
    return 0;
  }
  if (targets_us(s, host, port)) return 0;
  if (s->up != PX_UP_IDLE) {
    /* The upstream leg already serves plain requests to another host. */
    bad_request(s, "CONNECT on a connection already used for plain http:// requests; "
                   "open a new connection for the tunnel");
    return 0;
  }
  px_session_set_target(s, host, port);
  px_send_client(s, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
  px_session_set_state(s, PX_S_PEEK);
  px_http_set_raw(h); /* what follows the CONNECT goes to px_session_peek */
  return 0;
}

/* The request head as the transcripts see it: with --proxyauth, without
 * the client's credentials for tlspeek (they are not sent upstream). */
static void emit_request_without_auth(px_session_t *s, px_http_t *h, const char *raw,
                                      size_t raw_len) {
  if (s->w->shared->cfg->proxyauth == NULL) {
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)raw, raw_len);
    return;
  }
  px_head_edit_t edit;
  flt_strbuf_t head;
  memset(&edit, 0, sizeof(edit));
  edit.remove[edit.n_remove++] = "Proxy-Authorization";
  flt_strbuf_init(&head, PX_HTTP_MAX_HEAD + 8192);
  if (px_http_head_build(h, &edit, &head) == 0)
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)head.data, head.len);
  flt_strbuf_free(&head);
}

/* A plain-HTTP request to the proxy: absolute-form, sent on in origin-form
 * (RFC 9112 §3.2.2: only proxies get absolute-form). */
static int proxy_request(px_session_t *s, px_http_t *h, const char *url, const char *raw,
                         size_t raw_len) {
  struct http_parser_url u;
  char host[256], origin[PX_HTTP_MAX_HEAD];
  uint16_t port;
  size_t ulen = strlen(url);

  http_parser_url_init(&u);
  if (http_parser_parse_url(url, ulen, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST))) {
    bad_request(s, "tlspeek is an HTTP proxy: send absolute-form requests "
                   "(GET http://host/path) or CONNECT host:port");
    return 0;
  }
  if (!(u.field_set & (1 << UF_SCHEMA)) || u.field_data[UF_SCHEMA].len != 4 ||
      strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0) {
    bad_request(s, "only http:// URLs can be sent in absolute-form; use CONNECT for https://");
    return 0;
  }
  size_t hl = u.field_data[UF_HOST].len;
  if (hl >= sizeof(host)) {
    bad_request(s, "host name too long");
    return 0;
  }
  memcpy(host, url + u.field_data[UF_HOST].off, hl);
  host[hl] = '\0';
  port = (u.field_set & (1 << UF_PORT)) ? u.port : 80;
  int has_path = (u.field_set & (1 << UF_PATH)) != 0;
  size_t po = ulen, end = ulen;
  if (has_path)
    po = u.field_data[UF_PATH].off;
  else if (u.field_set & (1 << UF_QUERY))
    po = (size_t)u.field_data[UF_QUERY].off - 1; /* the '?' */
  if (u.field_set & (1 << UF_FRAGMENT)) end = (size_t)u.field_data[UF_FRAGMENT].off - 1;
  if (end < po) end = po;
  snprintf(origin, sizeof(origin), "%s%.*s", has_path ? "" : "/", (int)(end - po), url + po);

  if (targets_us(s, host, port)) return 0;
  if (s->lc->mode != PX_MODE_UPSTREAM && s->up != PX_UP_IDLE &&
      (strcasecmp(host, s->up_host) != 0 || port != s->up_port)) {
    /* Another origin. Its request (and whatever follows it) waits unparsed
     * until the current origin has answered the requests before it, so
     * that bytes never go to the wrong connection and answers keep their
     * order (switch_when_idle). */
    s->switch_pending = 1;
    px_update_reading(s);
    return PX_HTTP_HOLD;
  }
  if (s->up == PX_UP_IDLE) px_session_set_target(s, host, port);
  s->conn.match_ready = 1;
  emit_request_without_auth(s, h, raw, raw_len);
  px_flow_node_t *n = flow_start(s, h);
  if (n == NULL || s->state == PX_S_CLOSING) return 0;
  const px_action_t *block = blocking_action(s, &n->flow);
  if (block) { /* decided by the request alone: upstream is not contacted */
    reply_blocked(s, n, block->status);
    return 0;
  }
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  /* RFC 9112 §3.2.2: a proxy replaces Host with the target's authority, so
   * the server answers for the site the flow records (userinfo dropped). */
  char authority[300];
  snprintf(authority, sizeof(authority), strchr(host, ':') ? "[%s]" : "%s", host);
  if (u.field_set & (1 << UF_PORT))
    snprintf(authority + strlen(authority), sizeof(authority) - strlen(authority), ":%u",
             (unsigned)port);
  edit.host = authority;
  if (s->lc->mode == PX_MODE_UPSTREAM) {
    /* The next proxy takes absolute-form requests for any host as they are. */
    if (s->up == PX_UP_IDLE) px_upstream_start(s);
  } else {
    if (s->up == PX_UP_IDLE) px_upstream_start(s);
    edit.url = origin;
  }
  if (s->state == PX_S_CLOSING) return 0;
  send_head(s, h, &n->flow, &edit, raw, raw_len, 0);
  return 0;
}

/* ---- request direction ------------------------------------------------------ */

/* --proxyauth: every request to the proxy itself (CONNECT, absolute-form)
 * carries Proxy-Authorization: Basic; otherwise 407 and close. Returns 1 to
 * go on, 0 when answered, PX_HTTP_HOLD when requests before this one (with
 * credentials, pipelined) are still unanswered: it waits, as a request to
 * another origin does (switch_when_idle), then comes back here. */
static int proxy_auth_ok(px_session_t *s, const flt_head_t *view) {
  const char *expect = s->w->shared->cfg->proxyauth;
  if (expect == NULL) return 1;
  const flt_header_t *pa = flt_head_find(view, "proxy-authorization");
  if (pa && px_proxyauth_basic_ok(expect, pa->value, pa->value_len)) return 1;
  if (s->flows_head != NULL && s->up != PX_UP_IDLE) {
    s->switch_pending = 1;
    px_update_reading(s);
    return PX_HTTP_HOLD;
  }
  char text[200];
  snprintf(text, sizeof(text), "tlspeek: proxy authentication %s (--proxyauth is set)",
           pa ? "failed: wrong username or password" : "required: no Proxy-Authorization");
  px_log_client_limited(s, text);
  flt_emit_error(chain_of(s), &s->conn, text);
  px_reply_error_hdr(s, 407, "Proxy Authentication Required",
                     "Proxy-Authenticate: Basic realm=\"" PX_PROXYAUTH_REALM "\"\r\n", text);
  return 0;
}

static int on_req_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  px_session_t *s = ud;
  flt_head_t view;
  px_http_head_view(h, &view);
  if (s->end >= PX_END_FLUSHING) return 0;
  if (px_http_binds_connection(&view, "authorization")) s->up_pinned = 1;
  const char *s_url = h->store.data ? h->store.data + h->url_off : "";
  char url[PX_HTTP_MAX_HEAD];
  snprintf(url, sizeof(url), "%.*s", (int)h->url_len, s_url);

  if (s->state == PX_S_PROXY_HTTP) {
    int auth = proxy_auth_ok(s, &view);
    if (auth != 1) return auth;
  }
  if (s->state == PX_S_PROXY_HTTP && h->parser.method == HTTP_CONNECT)
    return proxy_connect(s, h, url); /* the tunnel's set-up is not traffic */
  if (s->state == PX_S_PROXY_HTTP) return proxy_request(s, h, url, raw, len);
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)raw, len);
  if (flow_start(s, h) == NULL) {
    px_session_close(s, "out of memory");
    return 0;
  }
  if (s->state == PX_S_ERROR_REPLY) {
    px_reply_error(s, s->up_error_status ? s->up_error_status : 502,
                   s->up_error_status == 504   ? "Gateway Timeout"
                   : s->up_error_status == 508 ? "Loop Detected"
                                               : "Bad Gateway",
                   s->up_error);
    return 0;
  }
  px_flow_node_t *n = s->flows_tail;
  const px_action_t *block = blocking_action(s, &n->flow);
  if (block) {
    reply_blocked(s, n, block->status);
    return 0;
  }
  if (s->up == PX_UP_IDLE) {
    /* The first request of plain HTTP (peek_input waits for it), or the
     * next one after --upstream-idle closed the leg. */
    if (s->up_released)
      px_upstream_reconnect(s);
    else
      px_upstream_start(s);
    if (s->state == PX_S_CLOSING) return 0;
  }
  px_head_edit_t edit;
  char hostval[300];
  memset(&edit, 0, sizeof(edit));
  if (s->lc->mode == PX_MODE_REVERSE && s->w->shared->cfg->rewrite_host) {
    int deflt = (s->up_tls_wanted && s->up_port == 443) || (!s->up_tls_wanted && s->up_port == 80);
    snprintf(hostval, sizeof(hostval), strchr(s->up_host, ':') ? "[%s]" : "%s", s->up_host);
    if (!deflt)
      snprintf(hostval + strlen(hostval), sizeof(hostval) - strlen(hostval), ":%u", s->up_port);
    edit.host = hostval;
  }
  send_head(s, h, &n->flow, &edit, raw, len, 0);
  return 0;
}

static void on_req_forward(void *ud, const char *data, size_t len) {
  px_session_t *s = ud;
  if (s->state == PX_S_PEEK) {
    px_session_peek(s, data, len);
    return;
  }
  if (s->end >= PX_END_FLUSHING) return;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
  if (s->req.upgraded) flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
  px_send_upstream(s, data, len);
}

static void on_req_body(void *ud, const char *data, size_t len) {
  px_session_t *s = ud;
  if (s->req_flow == NULL) return;
  s->req_flow->flow.req_body_bytes += len;
  flt_emit_request_body(chain_of(s), &s->req_flow->flow, (const uint8_t *)data, len);
}

static void on_req_end(void *ud, px_http_t *h) {
  px_session_t *s = ud;
  (void)h;
  if (s->req_flow == NULL) return;
  s->req_flow->flow.t_req_end_us = flt_now_us();
  flt_emit_request_end(chain_of(s), &s->req_flow->flow);
  s->req_flow = NULL;
}

const px_http_cbs_t px_req_cbs = {on_req_head, on_req_forward, on_req_body, on_req_end};

/* ---- response direction ------------------------------------------------------- */

static int on_resp_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  px_session_t *s = ud;
  int status = (int)h->parser.status_code;
  px_flow_node_t *n = s->flows_head;
  int rc;

  if (n == NULL) {
    /* HTTP/1 responses carry no request id: passed on, this one would be
     * read by the client as the answer to its next request, to whatever
     * host (explicit mode shares one client connection between origins). */
    snprintf(h->error, sizeof(h->error), "a response (%d) when no request was waiting for one",
             status);
    return -1;
  }
  if (status == 101 && !n->upgrade_asked) {
    /* RFC 9110 §15.2.2: a server switches only to a protocol the client
     * asked for. Switching anyway would turn the client's next requests
     * (to any host, in explicit mode) into an unparsed stream to this
     * server, past --block and the transcripts. */
    snprintf(h->error, sizeof(h->error),
             "101 Switching Protocols to a request that asked for no Upgrade");
    return -1;
  }
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)raw, len);
  if (status >= 100 && status < 200 && status != 101) {
    flow_add_interim(s, n, h);
    px_send_client(s, raw, len); /* 100 Continue and friends: pass on */
    return 0;
  }
  if (status == 401 || status == 407) {
    flt_head_t view;
    px_http_head_view(h, &view);
    if (px_http_binds_connection(&view, "www-authenticate") ||
        px_http_binds_connection(&view, "proxy-authenticate"))
      s->up_pinned = 1;
  }
  n->resp_copy = px_http_copy_head(h);
  if (n->resp_copy) {
    redact(s, n->resp_copy);
    n->flow.resp = *n->resp_copy;
    n->flow.has_response = 1;
    n->flow.t_resp_head_us = flt_now_us();
    flow_set_sent(s, n, 1);
    flt_emit_response_head(chain_of(s), &n->flow);
  }
  rc = n->head_only ? 1 : 0;
  if (strcmp(n->flow.req.method, "CONNECT") == 0 && status >= 200 && status < 300) {
    /* A tunnel through an origin (RFC 9110 §9.3.6): both ways are raw
     * from here, and the 2xx has no body. */
    rc = 1;
    px_http_set_raw(h);
    px_http_set_raw(&s->req);
  }
  s->resp_head_mark = s->client.batching ? s->client.batch.len : SIZE_MAX;
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  send_head(s, h, &n->flow, &edit, raw, len, 1);
  return rc;
}

static void on_resp_forward(void *ud, const char *data, size_t len) {
  px_session_t *s = ud;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
  if (s->resp.upgraded)
    flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
  px_send_client(s, data, len);
}

static void on_resp_body(void *ud, const char *data, size_t len) {
  px_session_t *s = ud;
  px_flow_node_t *n = s->flows_head;
  if (n == NULL || !n->flow.has_response) return;
  n->flow.resp_body_bytes += len;
  flt_emit_response_body(chain_of(s), &n->flow, (const uint8_t *)data, len);
}

static void on_resp_end(void *ud, px_http_t *h) {
  px_session_t *s = ud;
  int status = (int)h->parser.status_code;
  if (status >= 100 && status < 200 && status != 101) return;
  flow_finish(s, NULL);
  if (status == 101) {
    px_http_set_raw(&s->req); /* both directions are now a raw stream */
    px_http_set_raw(h);
  } else if (s->req.await_verdict) {
    /* No switch: what the client sent after its Upgrade request is HTTP,
     * parsed (and --block'ed, and recorded) like any other request. */
    px_batch_begin(s, 1);
    if (px_http_resume_http(&s->req) != 0 && s->state != PX_S_CLOSING)
      bad_request(s, s->req.error);
    px_batch_end(s, 1);
  }
  px_update_reading(s);
  switch_when_idle(s);
  px_client_deadline_update(s);
}

const px_http_cbs_t px_resp_cbs = {on_resp_head, on_resp_forward, on_resp_body, on_resp_end};

/* ---- plaintext in ---------------------------------------------------------------- */

static void client_plaintext(px_session_t *s, const char *data, size_t len);

void px_client_plaintext(px_session_t *s, const char *data, size_t len) {
  px_batch_begin(s, 1);
  client_plaintext(s, data, len);
  px_batch_end(s, 1);
  px_client_deadline_update(s); /* a head begun, completed, or the next awaited */
}

/* The upstream leg was switched: parse on from the request that waited. */
static void release_held_requests(px_session_t *s) {
  px_batch_begin(s, 1);
  if (px_http_release(&s->req) != 0 && s->state != PX_S_CLOSING) bad_request(s, s->req.error);
  px_batch_end(s, 1);
  switch_when_idle(s);
  px_client_deadline_update(s);
}

static void client_plaintext(px_session_t *s, const char *data, size_t len) {
  if (s->end >= PX_END_FLUSHING || s->state == PX_S_CLOSING) return;
  if (s->state == PX_S_HTTP && s->conn.kind == FLT_CONN_HTTPS && !s->tls_sniffed) {
    /* The first decrypted bytes: HTTP (empty lines allowed before it) or
     * another protocol, relayed as it is. */
    if (flt_strbuf_append(&s->peek, data, len) != 0) {
      px_session_close(s, "out of memory");
      return;
    }
    int kind = px_http_sniff(s->peek.data, s->peek.len);
    if (kind == PX_SNIFF_MORE) return;
    s->tls_sniffed = 1;
    if (kind == PX_SNIFF_RAW) {
      s->conn.kind = FLT_CONN_RAW_TLS;
      px_session_set_state(s, PX_S_RAW);
    }
    flt_strbuf_t first = s->peek;
    flt_strbuf_init(&s->peek, 0);
    client_plaintext(s, first.data, first.len);
    flt_strbuf_free(&first);
    return;
  }
  if (s->state == PX_S_RAW) {
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
    flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
    px_send_upstream(s, data, len);
    return;
  }
  if (px_http_feed(&s->req, data, len) != 0 && s->state != PX_S_CLOSING) bad_request(s, s->req.error);
  switch_when_idle(s);
}

static void upstream_plaintext(px_session_t *s, const char *data, size_t len);

/* The response the client waits for cannot be passed on (malformed, or cut
 * short). When none of it has reached the client yet (its head is still in
 * this input's batch), the client gets a 502 naming the cause instead of a
 * truncated answer; otherwise the connection is closed. One log line. */
static void upstream_broke(px_session_t *s, const char *text) {
  px_flow_node_t *n = s->flows_head;
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_KEEP);
  if (n && n->flow.has_response && s->resp_head_mark != SIZE_MAX && s->client.batching &&
      s->resp_head_mark <= s->client.batch.len) {
    s->client.batch.len = s->resp_head_mark; /* unsend the head and body so far */
    if (s->client.batch.data) s->client.batch.data[s->client.batch.len] = '\0';
    n->flow.has_response = 0;
  }
  s->resp_head_mark = SIZE_MAX;
  if (n && !n->flow.has_response) {
    px_reply_error(s, 502, "Bad Gateway", text);
  } else if (n == NULL) {
    /* Every answer the client waited for is out (or in this batch): it
     * gets them, then the connection closes. */
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
  } else {
    px_session_close(s, text);
  }
}

void px_session_http_upstream_plaintext(px_session_t *s, const char *data, size_t len) {
  px_batch_begin(s, 0);
  upstream_plaintext(s, data, len);
  px_batch_end(s, 0);
}

static void upstream_plaintext(px_session_t *s, const char *data, size_t len) {
  if (s->state == PX_S_CLOSING) return;
  if (s->state == PX_S_RAW) {
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
    flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
    px_send_client(s, data, len);
    return;
  }
  if (s->resp.state == PX_HTTP_FAILED && s->end >= PX_END_FLUSHING) return; /* reported once */
  s->resp_head_mark = SIZE_MAX;
  if (px_http_feed(&s->resp, data, len) == 0 || s->state == PX_S_CLOSING) return;
  char text[800];
  snprintf(text, sizeof(text), "upstream %s:%u sent a malformed HTTP response: %s", s->up_host,
           (unsigned)s->up_port, s->resp.error);
  upstream_broke(s, text);
}

void px_session_http_upstream_closed(px_session_t *s) {
  s->upstream.eof = 1;
  if (s->state == PX_S_CLOSING) return;
  if (s->state != PX_S_RAW && px_http_eof(&s->resp) != 0) {
    if (s->flows_head && !s->flows_head->flow.has_response) { /* cut in its head */
      char text[800];
      snprintf(text, sizeof(text), "upstream %s:%u closed the connection in the middle of the "
               "response head", s->up_host, (unsigned)s->up_port);
      upstream_broke(s, text);
      return;
    }
    px_session_log(s, FLT_LOG_INFO, "upstream %s: %s", s->conn.server_addr, s->resp.error);
    if (s->flows_head) flow_finish(s, "upstream closed the connection in the middle of the response");
  }
  if (s->flows_head && !s->flows_head->flow.has_response && s->state != PX_S_RAW) {
    char text[600];
    snprintf(text, sizeof(text), "upstream %s:%u closed the connection without responding",
             s->up_host, (unsigned)s->up_port);
    px_reply_error(s, 502, "Bad Gateway", text);
    return;
  }
  if (s->switch_pending && s->flows_head == NULL && s->end < PX_END_FLUSHING) {
    /* Done with this origin; a request to the next one is waiting. */
    switch_when_idle(s);
    return;
  }
  /* Whatever the client still has to receive goes out first, then
   * close_notify and FIN (px_maybe_finish), also when every write is already
   * done: a bare FIN reads as a truncation, and clients drop the session
   * they would have resumed. */
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
  px_maybe_finish(s);
}
