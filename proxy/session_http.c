/* session_http.c — HTTP through a session: what a request head and a
 * response head reported by the legs' codecs (session_codec.c) mean, the
 * flows they start and end (flow.h), explicit-proxy requests (CONNECT,
 * absolute-form), the actions (--block, --set-header, --remove-header; the
 * choice of --map-local and --serve-from, which session_answer.c answers,
 * as it answers for an ABI 2 plugin; an ABI 2 plugin's head edits; a head
 * held with its body goes to bodyhold.c; and through their own files
 * --map-remote, action_remote.h, and --throttle, throttle.h) and the error
 * answers tlspeek gives itself (400,
 * 502, 504). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/action_remote.h"
#include "proxy/bodyhold.h"
#include "proxy/flowact.h"
#include "proxy/modes/proxyauth.h"
#include "proxy/throttle.h"
#include "proxy/session.h"
#include "proxy/session_answer.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

static const flt_chain_t *chain_of(px_session_t *s) { return &s->w->shared->chain; }

/* ---- flows ---------------------------------------------------------------- */

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
static void flow_set_sent(px_session_t *s, px_flow_t *n, int response_side,
                          const px_remote_target_t *rt) {
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  int any = collect_edits(s, &n->flow, response_side, &e);
  /* --map-remote: the target and Host sent (the path within flow.url). */
  const char *path = rt && strcmp(n->flow.url, rt->url) == 0 ? strstr(n->flow.url, "://") : NULL;
  if (path && e.n_set < PX_HEAD_MAX_EDITS) {
    e.set_name[e.n_set] = "Host";
    e.set_value[e.n_set++] = rt->authority;
    path += 3 + strlen(rt->authority);
    any = 1;
  }
  if (!(px_flow_act_edits(&n->flow, response_side, &e) || any)) return;
  flt_head_t *sent = px_head_edited(response_side ? &n->flow.resp : &n->flow.req, &e);
  if (sent == NULL) return;
  if (path) {
    sent->url = path;
    sent->head_bytes = px_head_wire_size(sent);
  }
  redact(s, sent); /* a value set by an action, too */
  flt_head_t *old = response_side ? n->resp_sent : n->req_sent;
  if (old && px_flow_act_get(&n->flow)) { /* views may still point at it: kept */
    free(n->act->old_sent[response_side]);
    n->act->old_sent[response_side] = old;
  } else {
    free(old);
  }
  if (response_side) {
    n->resp_sent = sent;
    n->flow.resp_sent = sent;
  } else {
    n->req_sent = sent;
    n->flow.req_sent = sent;
  }
}

/* A 1xx the client gets before the final response (flow.interim). */
static void flow_add_interim(px_session_t *s, px_flow_t *n, px_codec_t *c, uint32_t stream) {
  if (n->flow.n_interim >= FLT_MAX_INTERIM) return;
  flt_head_t *copy = px_codec_head_copy(c, stream);
  if (copy == NULL) return;
  redact(s, copy);
  px_flow_add_interim(n, copy);
}

/* --map-remote: the flow records the URL actually fetched (action_remote.h). */
static void flow_mapped(px_flow_t *n, const px_remote_target_t *rt) {
  char *mapped = strdup(rt->url);
  if (mapped == NULL) return;
  char *orig = n->flow.url;
  n->flow.url = mapped;
  snprintf(n->flow.scheme, sizeof(n->flow.scheme), "%s", rt->rule->tls ? "https" : "http");
  flt_flow_action(&n->flow, "map-remote", "%s -> %s", orig ? orig : "?", mapped);
  free(orig);
}

/* `n` is still one of the session's flows (an upstream set-up that fails
 * at once answers and ends the flows it was for). */
static int flow_alive(const px_session_t *s, const px_flow_t *n) {
  for (const px_flow_t *f = s->flows.head; f; f = f->next)
    if (f == n) return 1;
  return 0;
}

/* A plugin edited this side's head in its head event (flt_flow_set_header). */
static int plugin_edited(const px_flow_t *n, int response_side) {
  const px_flow_act_t *a = n->act;
  return a && (a->n_set[response_side] || a->n_remove[response_side]);
}

static px_flow_t *flow_start(px_session_t *s, px_codec_t *c, const px_codec_head_t *head,
                             const px_remote_target_t *rt) {
  px_upstream_count_idle(s, 0); /* busy again */
  flt_head_t *req = px_codec_head_copy(c, head->stream);
  if (req == NULL) return NULL;
  redact(s, req);
  uint64_t id = atomic_fetch_add(&s->w->shared->next_flow_id, 1) + 1;
  px_flow_t *n = px_flow_new(id, &s->conn, req, px_http_absolute_url(&s->conn, req), head->stream);
  if (n == NULL) return NULL;
  snprintf(n->flow.scheme, sizeof(n->flow.scheme), "%s", s->conn.client_tls ? "https" : "http");
  n->upgrade_asked = head->upgrade;
  if (rt) flow_mapped(n, rt);
  px_flows_push(&s->flows, n);
  /* Answered by tlspeek itself (an upstream error, --block): not forwarded. */
  if (s->state != PX_S_ERROR_REPLY && blocking_action(s, &n->flow) == NULL) {
    flow_set_sent(s, n, 0, rt);
    n->throttled = px_throttle_flow_start(s, &n->flow);
  }
  flt_emit_request_head(chain_of(s), &n->flow);
  if (plugin_edited(n, 0)) flow_set_sent(s, n, 0, rt);
  return n;
}

/* Ends the oldest flow (the one the upstream answers now). */
void px_session_http_flow_finish(px_session_t *s, const char *error) {
  px_flow_t *n = s->flows.head;
  if (n == NULL) return;
  px_answer_forget(s, n); /* ended before its local answer was out */
  if (s->conn.client_eof_us) s->answered_after_eof = 1;
  if (n->throttled) px_throttle_flow_end(s);
  /* A WebSocket's flow stays open until the connection closes. */
  if (error != NULL || !px_session_ws_adopt(s, n)) px_flows_finish(&s->flows, n, chain_of(s), error);
  if (s->flows.head == NULL) {
    /* Idle from here on (keep-alive): give back the grown TLS buffers. */
    px_tls_trim(&s->client.tls);
    px_tls_trim(&s->upstream.tls);
    px_session_timer_rearm(s); /* --upstream-idle counts from here */
    px_session_timer_deadline_update(s); /* --keepalive-timeout too */
  }
  if (error == NULL) px_answer_next(s); /* a local answer waiting for its turn */
  if (s->end >= PX_END_DRAINING && s->flows.head == NULL && s->state != PX_S_CLOSING) {
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
  }
}

void px_session_http_fail_flows(px_session_t *s, const char *why) {
  while (s->flows.head) px_session_http_flow_finish(s, why);
  px_answer_forget(s, NULL);
  px_session_ws_end(s, why);
}

/* ---- tlspeek's own answers -------------------------------------------------- */

void px_session_http_reply_error(px_session_t *s, int status, const char *reason,
                                 const char *extra, const char *text) {
  char head[512];
  size_t body_len = strlen(text) + 1;
  if (s->end >= PX_END_FLUSHING || s->state == PX_S_CLOSING) return;
  /* The flow waiting for this answer ends with the error. */
  if (s->flows.head && !s->flows.head->flow.has_response) px_session_http_flow_finish(s, text);
  px_session_http_fail_flows(s, text);
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

void px_session_http_bad_request(px_session_t *s, const char *why) {
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
static void reply_blocked(px_session_t *s, px_flow_t *n, int status) {
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
    flt_flow_action(&n->flow, "blocked", "answered %d by tlspeek (--block), not sent upstream", status);
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
  while (s->flows.head && s->flows.head != n) px_session_http_flow_finish(s, "closed: a later request was blocked");
  px_session_http_flow_finish(s, NULL);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
}

/* A plugin answers the newest flow itself (flt_flow_answer), through
 * session_answer.c as --map-local does: the connection stays usable.
 * Returns 1 when it answered. */
static int reply_plugin_answer(px_session_t *s, px_flow_t *n) {
  const px_flow_act_t *a = n->act;
  if (a == NULL || a->answer_status == 0) return 0;
  flt_header_t ct = {"Content-Type", 12, a->answer_type ? a->answer_type : "", 0};
  ct.value_len = strlen(ct.value);
  px_reply_t r = {.status = a->answer_status, .headers = &ct, .n_headers = a->answer_type ? 1 : 0,
                  .body = (const uint8_t *)a->answer_body, .body_len = a->answer_len, .fd = -1};
  flt_flow_action(&n->flow, "answered", "%d by a plugin (%zu bytes), not sent upstream",
                  a->answer_status, a->answer_len);
  if (px_answer_flow(s, n, &r) != 0)
    px_session_close(s, "out of memory");
  else
    px_answer_continue(s, n);
  return 1;
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

/* The head goes on, or: while --serve-match url+body has not decided on
 * its flow yet, session_answer.c keeps it until the request's end (nothing
 * goes upstream before that); while --intercept holds its flow, it is kept
 * with it (session_intercept.c: the body that follows is kept the same way,
 * before bodyhold sees it, so an intercepted message is not also rewritten);
 * else it is held with its body when --replace or a plugin rewrites that
 * (bodyhold.h). */
static void put_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd, px_flow_t *n,
                     const px_head_edit_t *e, int to_client, const char *data, size_t len) {
  if (!to_client && px_answer_keeps_request(s)) {
    px_answer_keep(s, data, len);
    return;
  }
  if (px_session_intercept_capture(s, to_client, data, len)) {
    px_flow_act_t *a = px_flow_act_of(&n->flow);
    if (a) a->head_sent[to_client] = 1; /* too late for a plugin's head edits */
    return;
  }
  if (px_hold_head(s, n, to_client, c, hd, e, data, len)) return;
  if (to_client)
    px_send_client(s, data, len);
  else
    px_send_upstream(s, data, len);
}

/* Sends a head on, rewritten when `e` (or an action, or a plugin) asks
 * for changes. */
static void send_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd, px_flow_t *n,
                      px_head_edit_t *e, int to_client) {
  /* Hop-by-hop fields are the client's business with tlspeek: they never
   * go upstream as they came (RFC 9110 §7.6.1). */
  if (!to_client) e->strip_hop = px_codec_head_has_hop_by_hop(c, hd->stream);
  int edited = collect_edits(s, &n->flow, to_client, e);
  edited = px_flow_act_edits(&n->flow, to_client, e) || edited || e->url || e->host ||
           e->n_remove > 0 || e->strip_hop;
  if (!edited) {
    put_head(s, c, hd, n, e, to_client, hd->raw, hd->raw_len);
    return;
  }
  flt_strbuf_t head;
  flt_strbuf_init(&head, PX_HTTP_MAX_HEAD + 8192);
  if (px_codec_head_build(c, hd->stream, e, &head) == 0)
    put_head(s, c, hd, n, e, to_client, head.data, head.len);
  flt_strbuf_free(&head);
}

/* ---- explicit proxy requests -------------------------------------------------- */

static void release_held_requests(px_session_t *s);

/* The old upstream connection is gone: start afresh with the held request,
 * whose origin becomes the target (proxy_request, px_upstream_unconnected). */
static void on_switch_closed(uv_handle_t *h) {
  px_session_t *s = px_upstream_handle_closed(h);
  if (s == NULL) return;
  px_upstream_reset(s);
  s->conn.server_addr[0] = '\0';
  px_session_set_reading(s, PX_READ_HELD, 0);
  release_held_requests(s);
  px_update_reading(s);
}

/* Explicit plain HTTP may name another origin on the same client
 * connection. Its request was held (proxy_request); once the current origin
 * has answered every request before it, close that upstream connection and
 * go on with the held one. Called wherever that may have become true. */
void px_session_http_switch_when_idle(px_session_t *s) {
  if (!(s->reading & PX_READ_HELD) || s->flows.head != NULL || s->end >= PX_END_FLUSHING ||
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

static int proxy_connect(px_session_t *s, px_codec_t *c, const char *url) {
  char host[256];
  uint16_t port;
  /* RFC 9112 §3.2.3: authority-form is host:port and nothing else. */
  if (strchr(url, '@')) {
    px_session_http_bad_request(s, "CONNECT target must be HOST:PORT; user information (user@) is not allowed "
                   "in it (RFC 9112 §3.2.3)");
    return 0;
  }
  if (strpbrk(url, "/?#") || px_http_split_authority(url, host, sizeof(host), &port, 443) != 0 ||
      strchr(url, ':') == NULL) {
    px_session_http_bad_request(s, "CONNECT needs HOST:PORT (authority-form, RFC 9112 §3.2.3)");
    return 0;
  }
  if (targets_us(s, host, port)) return 0;
  if (!px_upstream_unconnected(s)) {
    /* The upstream leg already serves plain requests to another host. */
    px_session_http_bad_request(s, "CONNECT on a connection already used for plain http:// requests; "
                   "open a new connection for the tunnel");
    return 0;
  }
  px_session_set_target(s, host, port);
  px_send_client(s, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
  px_session_set_state(s, PX_S_PEEK);
  px_codec_set_raw(c); /* what follows the CONNECT goes to px_session_peek */
  return 0;
}

/* The request head as the transcripts see it: with --proxyauth, without
 * the client's credentials for tlspeek (they are not sent upstream). */
static void emit_request_without_auth(px_session_t *s, px_codec_t *c,
                                      const px_codec_head_t *hd) {
  const char *raw = hd->raw;
  size_t raw_len = hd->raw_len;
  if (s->w->shared->cfg->proxyauth == NULL) {
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)raw, raw_len);
    return;
  }
  px_head_edit_t edit;
  flt_strbuf_t head;
  memset(&edit, 0, sizeof(edit));
  edit.remove[edit.n_remove++] = "Proxy-Authorization";
  flt_strbuf_init(&head, PX_HTTP_MAX_HEAD + 8192);
  if (px_codec_head_build(c, hd->stream, &edit, &head) == 0)
    flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)head.data, head.len);
  flt_strbuf_free(&head);
}

/* --map-remote in explicit mode: the rule's origin and path replace the
 * URL's. Returns 1 when the new scheme is https. */
static int proxy_map(const px_remote_target_t *rt, char *host, size_t hlen, uint16_t *port,
                     char *origin, size_t olen) {
  snprintf(host, hlen, "%s", rt->rule->host);
  *port = rt->rule->port;
  snprintf(origin, olen, "%s", rt->path);
  return rt->rule->tls;
}

/* The upstream leg goes to host:port, with TLS (a mapped http:// request)
 * or not. */
static void proxy_aim(px_session_t *s, const char *host, uint16_t port, int tls) {
  px_session_set_target(s, host, port);
  s->up_tls_wanted = s->conn.upstream_tls = tls;
}

/* A plain-HTTP request to the proxy: absolute-form, sent on in origin-form
 * (RFC 9112 §3.2.2: only proxies get absolute-form). */
static int proxy_request(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd,
                         const char *url, const px_remote_target_t *rt) {
  struct http_parser_url u;
  char host[256], origin[PX_HTTP_MAX_HEAD];
  uint16_t port;

  const char *why = px_http_split_absolute_url(url, &u, host, &port, origin, sizeof(origin));
  if (why) {
    px_session_http_bad_request(s, why);
    return 0;
  }
  if (rt && s->lc->mode == PX_MODE_UPSTREAM) rt = NULL; /* the next proxy takes the URL as it is */
  int tls = rt ? proxy_map(rt, host, sizeof(host), &port, origin, sizeof(origin)) : 0;

  if (targets_us(s, host, port)) return 0;
  if (s->lc->mode != PX_MODE_UPSTREAM && !px_upstream_unconnected(s) &&
      (strcasecmp(host, s->up_host) != 0 || port != s->up_port || tls != s->up_tls_wanted)) {
    /* Another origin. Its request (and whatever follows it) waits unparsed
     * until the current origin has answered the requests before it, so
     * that bytes never go to the wrong connection and answers keep their
     * order (switch_when_idle). */
    px_session_set_reading(s, PX_READ_HELD, 1);
    px_update_reading(s);
    return PX_CODEC_HOLD;
  }
  if (px_upstream_unconnected(s)) proxy_aim(s, host, port, tls);
  s->conn.match_ready = 1;
  emit_request_without_auth(s, c, hd);
  px_flow_t *n = flow_start(s, c, hd, rt);
  if (n == NULL || s->state == PX_S_CLOSING) return 0;
  const px_action_t *block = blocking_action(s, &n->flow);
  if (block) { /* decided by the request alone: upstream is not contacted */
    reply_blocked(s, n, block->status);
    return 0;
  }
  int local = px_answer_request_head(s, n); /* --map-local, --serve-from */
  if (local == 1) return 0;
  if (local == 0 && reply_plugin_answer(s, n)) return 0;
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  /* RFC 9112 §3.2.2: a proxy replaces Host with the target's authority, so
   * the server answers for the site the flow records (userinfo dropped). */
  char authority[300];
  snprintf(authority, sizeof(authority), strchr(host, ':') ? "[%s]" : "%s", host);
  if (u.field_set & (1 << UF_PORT))
    snprintf(authority + strlen(authority), sizeof(authority) - strlen(authority), ":%u",
             (unsigned)port);
  edit.host = rt ? rt->authority : authority;
  int held = local == 0 && px_session_intercept_request(s, n, s->lc->mode == PX_MODE_UPSTREAM);
  if (!held && local == 0 && px_upstream_unconnected(s)) px_upstream_start(s);
  /* The next proxy takes absolute-form requests for any host as they are. */
  if (s->lc->mode != PX_MODE_UPSTREAM) edit.url = origin;
  if (s->state == PX_S_CLOSING || !flow_alive(s, n)) return 0;
  send_head(s, c, hd, n, &edit, 0);
  return 0;
}

/* ---- request heads ------------------------------------------------------------ */

/* --proxyauth: every request to the proxy itself (CONNECT, absolute-form)
 * carries Proxy-Authorization: Basic; otherwise 407 and close. Returns 1 to
 * go on, 0 when answered, PX_CODEC_HOLD when requests before this one (with
 * credentials, pipelined) are still unanswered: it waits, as a request to
 * another origin does (px_session_http_switch_when_idle), then comes back here. */
static int proxy_auth_ok(px_session_t *s, const flt_head_t *view) {
  const char *expect = s->w->shared->cfg->proxyauth;
  if (expect == NULL) return 1;
  const flt_header_t *pa = flt_head_find(view, "proxy-authorization");
  if (pa && px_proxyauth_basic_ok(expect, pa->value, pa->value_len)) return 1;
  if (s->flows.head != NULL && !px_upstream_unconnected(s)) {
    px_session_set_reading(s, PX_READ_HELD, 1);
    px_update_reading(s);
    return PX_CODEC_HOLD;
  }
  char text[200];
  snprintf(text, sizeof(text), "tlspeek: proxy authentication %s (--proxyauth is set)",
           pa ? "failed: wrong username or password" : "required: no Proxy-Authorization");
  px_session_timer_log_client(s, text);
  flt_emit_error(chain_of(s), &s->conn, text);
  px_reply_error_hdr(s, 407, "Proxy Authentication Required",
                     "Proxy-Authenticate: Basic realm=\"" PX_PROXYAUTH_REALM "\"\r\n", text);
  return 0;
}

/* Reverse mode with --rewrite-host: the Host the upstream expects. */
static void reverse_host(px_session_t *s, px_head_edit_t *edit, char *hostval, size_t len) {
  if (s->lc->mode != PX_MODE_REVERSE || !s->w->shared->cfg->rewrite_host) return;
  int deflt = (s->up_tls_wanted && s->up_port == 443) || (!s->up_tls_wanted && s->up_port == 80);
  snprintf(hostval, len, strchr(s->up_host, ':') ? "[%s]" : "%s", s->up_host);
  if (!deflt) snprintf(hostval + strlen(hostval), len - strlen(hostval), ":%u", s->up_port);
  edit->host = hostval;
}

/* --map-remote: whether a rule sends this request elsewhere (1, with `rt`
 * filled; 0 not; -1 out of memory), judged on the request head. */
static int remote_target(px_session_t *s, const flt_head_t *view, const char *target,
                         px_remote_target_t *rt) {
  const px_config_t *cfg = s->w->shared->cfg;
  if (cfg->n_map_remote == 0) return 0;
  flt_flow_t f;
  flt_conn_t home;
  memset(&f, 0, sizeof(f));
  f.conn = &s->conn;
  if (s->remote_home) {
    /* Judged as on the connection's own origin, not on where the last
     * mapped request went: rules do not chain. */
    home = s->conn;
    snprintf(home.server_host, sizeof(home.server_host), "%s", s->remote_home->host);
    home.server_port = s->remote_home->port;
    f.conn = &home;
  }
  f.req = *view;
  f.req.url = target; /* the view leaves it out */
  snprintf(f.scheme, sizeof(f.scheme), "%s", s->conn.client_tls ? "https" : "http");
  f.url = s->state == PX_S_PROXY_HTTP ? strdup(target) : px_http_absolute_url(f.conn, &f.req);
  if (f.url == NULL) return -1;
  int rc = px_remote_map(cfg, &f, rt);
  free(f.url);
  return rc;
}

static int origin_request(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd,
                          const px_remote_target_t *rt);

int px_session_http_request_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd) {
  flt_head_t view;
  px_codec_head_view(c, hd->stream, &view);
  if (s->end >= PX_END_FLUSHING) return 0;
  if (px_answer_busy(s)) return px_answer_hold(s); /* after tlspeek's own answer */
  if (px_session_intercept_busy(s)) return PX_CODEC_HOLD; /* after the held flow */
  if (px_http_binds_connection(&view, "authorization")) px_upstream_set_bind(s, PX_BIND_PINNED);
  char url[PX_HTTP_MAX_HEAD];
  snprintf(url, sizeof(url), "%.*s", (int)hd->target_len, hd->target);

  if (s->state == PX_S_PROXY_HTTP) {
    int auth = proxy_auth_ok(s, &view);
    if (auth != 1) return auth;
  }
  if (s->state == PX_S_PROXY_HTTP && hd->method == HTTP_CONNECT)
    return proxy_connect(s, c, url); /* the tunnel's set-up is not traffic */
  px_remote_target_t rt;
  int mapped = remote_target(s, &view, url, &rt);
  if (mapped < 0) {
    px_session_close(s, "out of memory");
    return 0;
  }
  int rc = s->state == PX_S_PROXY_HTTP ? proxy_request(s, c, hd, url, mapped ? &rt : NULL)
                                       : origin_request(s, c, hd, mapped ? &rt : NULL);
  if (mapped) px_remote_target_free(&rt);
  return rc;
}

/* A request on a connection to one origin (TLS, reverse, transparent,
 * SOCKS5, a tunnel): on to the upstream leg, or answered by tlspeek. */
static int origin_request(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd,
                          const px_remote_target_t *rt) {
  int route = px_remote_route(s, rt);
  if (route != 0 || s->state == PX_S_CLOSING) return route;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)hd->raw, hd->raw_len);
  if (flow_start(s, c, hd, rt) == NULL) {
    px_session_close(s, "out of memory");
    return 0;
  }
  /* Answered here, also when the upstream could not be reached. */
  int local = blocking_action(s, &s->flows.tail->flow) ? 0
                                                         : px_answer_request_head(s, s->flows.tail);
  if (local == 1) return 0;
  if (s->state == PX_S_ERROR_REPLY) {
    px_reply_error(s, s->up_error_status ? s->up_error_status : 502,
                   s->up_error_status == 504   ? "Gateway Timeout"
                   : s->up_error_status == 508 ? "Loop Detected"
                                               : "Bad Gateway",
                   s->up_error);
    return 0;
  }
  px_flow_t *n = s->flows.tail;
  const px_action_t *block = blocking_action(s, &n->flow);
  if (block) {
    reply_blocked(s, n, block->status);
    return 0;
  }
  if (local == 0 && reply_plugin_answer(s, n)) return 0;
  int held = local == 0 && px_session_intercept_request(s, n, 0);
  if (!held && px_upstream_unconnected(s) && local == 0) {
    /* The first request of plain HTTP (peek_input waits for it), or the
     * next one after --upstream-idle closed the leg. */
    if (s->up == PX_UP_RELEASED)
      px_upstream_reconnect(s);
    else
      px_upstream_start(s);
    /* A set-up that failed at once (a loop to ourselves, no fd) has
     * answered and ended the flow already. */
    if (s->state == PX_S_CLOSING || !flow_alive(s, n)) return 0;
  }
  px_head_edit_t edit;
  char hostval[300];
  memset(&edit, 0, sizeof(edit));
  reverse_host(s, &edit, hostval, sizeof(hostval));
  if (rt) {
    edit.host = rt->authority;
    edit.url = rt->path;
  }
  send_head(s, c, hd, n, &edit, 0);
  return 0;
}

/* ---- response heads ------------------------------------------------------------- */

int px_session_http_response_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd) {
  int status = hd->status;
  px_flow_t *n = px_flows_response(&s->flows, hd->stream);
  int rc;

  if (px_session_intercept_busy_response(s)) return PX_CODEC_HOLD; /* after the held one */
  s->resp_status = status;
  if (n == NULL) {
    /* HTTP/1 responses carry no request id: passed on, this one would be
     * read by the client as the answer to its next request, to whatever
     * host (explicit mode shares one client connection between origins). */
    char why[120];
    snprintf(why, sizeof(why), "a response (%d) when no request was waiting for one", status);
    px_codec_refuse(c, hd->stream, why);
    return -1;
  }
  if (status == 101 && !n->upgrade_asked) {
    /* RFC 9110 §15.2.2: a server switches only to a protocol the client
     * asked for. Switching anyway would turn the client's next requests
     * (to any host, in explicit mode) into an unparsed stream to this
     * server, past --block and the transcripts. */
    px_codec_refuse(c, hd->stream, "101 Switching Protocols to a request that asked for no Upgrade");
    return -1;
  }
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)hd->raw, hd->raw_len);
  if (status >= 100 && status < 200 && status != 101) {
    flow_add_interim(s, n, c, hd->stream);
    px_send_client(s, hd->raw, hd->raw_len); /* 100 Continue and friends: pass on */
    return 0;
  }
  if (status == 401 || status == 407) {
    flt_head_t view;
    px_codec_head_view(c, hd->stream, &view);
    if (px_http_binds_connection(&view, "www-authenticate") ||
        px_http_binds_connection(&view, "proxy-authenticate"))
      px_upstream_set_bind(s, PX_BIND_PINNED);
  }
  n->resp_copy = px_codec_head_copy(c, hd->stream);
  if (n->resp_copy) {
    redact(s, n->resp_copy);
    n->flow.resp = *n->resp_copy;
    n->flow.has_response = 1;
    n->flow.t_resp_head_us = flt_now_us();
    flow_set_sent(s, n, 1, NULL);
    flt_emit_response_head(chain_of(s), &n->flow);
    if (plugin_edited(n, 1)) flow_set_sent(s, n, 1, NULL);
  }
  rc = n->head_only ? 1 : 0;
  if (strcmp(n->flow.req.method, "CONNECT") == 0 && status >= 200 && status < 300) {
    /* A tunnel through an origin (RFC 9110 §9.3.6): both ways are raw
     * from here, and the 2xx has no body. */
    rc = 1;
    px_codec_set_raw(c);
    px_codec_set_raw(s->client.codec);
  }
  s->resp_head_mark = s->client.batching ? s->client.batch.len : SIZE_MAX;
  if (status != 101 && strcmp(n->flow.req.method, "CONNECT") != 0 &&
      px_session_intercept_response(s, n))
    s->resp_head_mark = SIZE_MAX; /* held: none of it is in this batch */
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  send_head(s, c, hd, n, &edit, 1);
  return rc;
}

/* The upstream leg was switched: parse on from the request that waited
 * (a failure reaches the client codec's sink as on_error: 400). */
static void release_held_requests(px_session_t *s) {
  px_batch_begin(s, 1);
  px_codec_release(s->client.codec);
  px_batch_end(s, 1);
  px_session_http_switch_when_idle(s);
  px_session_timer_deadline_update(s);
}

/* --serve-match url+body found no recorded response for the request's body
 * (--serve-miss forward): the request goes upstream after all, its head and
 * body as session_answer.c kept them. */
void px_session_http_forward_kept(px_session_t *s) {
  flt_strbuf_t kept;
  if (px_answer_take_kept(s, &kept) != 0) return;
  if (px_upstream_unconnected(s)) {
    if (s->up == PX_UP_RELEASED)
      px_upstream_reconnect(s);
    else
      px_upstream_start(s);
  }
  if (s->state != PX_S_CLOSING) px_send_upstream(s, kept.data, kept.len);
  flt_strbuf_free(&kept);
}

/* ---- for the HTTP/2 streams (session_h2.c) ------------------------------------ */

px_flow_t *px_session_http_flow_begin(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd) {
  return flow_start(s, c, hd, NULL);
}

const px_action_t *px_session_http_blocking(px_session_t *s, const flt_flow_t *f) {
  return blocking_action(s, f);
}

void px_session_http_request_edits(px_session_t *s, px_flow_t *f, px_head_edit_t *e,
                                   char *hostval, size_t len) {
  reverse_host(s, e, hostval, len);
  collect_edits(s, &f->flow, 0, e);
}

void px_session_http_interim(px_session_t *s, px_flow_t *f, px_codec_t *c, uint32_t stream) {
  flow_add_interim(s, f, c, stream);
}

void px_session_http_response_begin(px_session_t *s, px_flow_t *f, px_codec_t *c,
                                    uint32_t stream, px_head_edit_t *e) {
  f->resp_copy = px_codec_head_copy(c, stream);
  if (f->resp_copy) {
    redact(s, f->resp_copy);
    f->flow.resp = *f->resp_copy;
    f->flow.has_response = 1;
    f->flow.t_resp_head_us = flt_now_us();
    flow_set_sent(s, f, 1, NULL);
    flt_emit_response_head(chain_of(s), &f->flow);
  }
  collect_edits(s, &f->flow, 1, e);
}

void px_session_http_redact(px_session_t *s, flt_head_t *h) { redact(s, h); }
