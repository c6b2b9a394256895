/* session_intercept.c — --intercept on the session's flows: a matching
 * request (or, for a rule with ~s, response) is held: its head as it would
 * be forwarded and its body, up to PX_ICPT_MAX_BODY, are kept here instead
 * of going on, until the flow browser decides (proxy/intercept.h) or
 * --intercept-timeout passes. The decision comes through the hold's own
 * uv_async_t on this worker's loop; it is applied here: the head and body
 * sent on (edited: the head rebuilt, a new body with its Content-Length),
 * or a 502 from tlspeek. While a flow of the session is held, the next
 * message behind it waits in its codec (PX_CODEC_HOLD); a held response's
 * end and the upstream's EOF wait too (deferred, then run as they would
 * have). Other connections are not affected.
 *
 * Works on the flow and its captured bytes, not on the HTTP/1 framer: the
 * head is captured as send_head (session_http.c) would send it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/intercept.h"
#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

#define ICPT_TICK_MS 1000

struct px_icpt_hold {
  px_session_t *s; /* NULL once the session is gone */
  px_flow_t *flow;
  uint64_t flow_id;
  px_icpt_entry_t *entry;
  uv_async_t wake;
  uv_timer_t timer;
  int handles;       /* open handles; freed when 0 */
  uint64_t start_ms; /* uv_now */
  flt_strbuf_t head; /* the head as it would be forwarded */
  flt_strbuf_t body; /* the body bytes as framed, so far */
  int have_head;
  int decided;       /* capturing stops: bytes go on (or are dropped) */
  int drop_rest;     /* the body was replaced: the client's is not sent */
  int req_ended;      /* request: its end was seen */
  int response;       /* the response is held, not the request */
  int resp_status;    /* response: its status, and its end deferred: */
  void (*end)(void *, px_codec_t *, uint32_t);
  px_codec_t *end_c;
  uint32_t end_stream;
  void (*closed)(px_session_t *); /* the upstream's EOF, deferred */
  int start_upstream; /* not connected when held: connect on resume */
  int absolute;       /* forwarded in absolute-form (to a next proxy) */
  size_t origin_len;  /* of flow.url's "scheme://authority" */
};


static double waited_s(const px_icpt_hold_t *h) {
  return (double)(uv_now(h->wake.loop) - h->start_ms) / 1000.0;
}

/* ---- the hold's life ---------------------------------------------------------------- */

static void on_hold_closed(uv_handle_t *handle) {
  px_icpt_hold_t *h = handle->data;
  if (--h->handles > 0) return;
  flt_strbuf_free(&h->head);
  flt_strbuf_free(&h->body);
  free(h);
}

/* Ends the hold: the entry withdrawn (the web thread can no longer wake
 * it), the handles closed, the session reading again. */
static void hold_end(px_icpt_hold_t *h) {
  px_session_t *s = h->s;
  void (*end)(void *, px_codec_t *, uint32_t) = h->end;
  void (*closed)(px_session_t *) = h->closed;
  px_icpt_withdraw(h->entry);
  h->entry = NULL;
  h->s = NULL;
  uv_close((uv_handle_t *)&h->wake, on_hold_closed);
  uv_close((uv_handle_t *)&h->timer, on_hold_closed);
  if (s == NULL) return;
  s->icpt = NULL;
  s->icpt_pause = 0;
  if (s->state == PX_S_CLOSING) return;
  if (end && s->end < PX_END_FLUSHING) { /* the held response's end, as it came */
    s->resp_status = h->resp_status;
    px_batch_begin(s, 0);
    end(s, h->end_c, h->end_stream);
    px_batch_end(s, 0);
  }
  if (closed && s->state != PX_S_CLOSING) closed(s);
  if (s->state == PX_S_CLOSING) return;
  /* What waited behind this flow: parse on. */
  if (px_codec_phase(s->upstream.codec) == PX_CODEC_HELD) {
    px_batch_begin(s, 0);
    px_codec_release(s->upstream.codec);
    px_batch_end(s, 0);
  }
  /* (A request held for an origin switch, PX_READ_HELD, is released there.) */
  if (s->state != PX_S_CLOSING && !(s->reading & PX_READ_HELD) &&
      px_codec_phase(s->client.codec) == PX_CODEC_HELD) {
    px_batch_begin(s, 1);
    px_codec_release(s->client.codec);
    px_batch_end(s, 1);
  }
  if (s->state == PX_S_CLOSING) return;
  px_update_reading(s);
  px_session_timer_deadline_update(s);
}

void px_session_intercept_drop(px_session_t *s) {
  if (s->icpt) hold_end(s->icpt);
}

/* The flow is still the session's (not ended by an error meanwhile). */
static int flow_alive(px_session_t *s, const px_icpt_hold_t *h) {
  for (px_flow_t *f = s->flows.head; f; f = f->next)
    if (f == h->flow && f->flow.id == h->flow_id) return 1;
  return s->flows.req == h->flow && h->flow && h->flow->flow.id == h->flow_id;
}

/* ---- the edited head ------------------------------------------------------------------ */

static int hop_or_framing(const char *name, size_t len) {
  static const char *const h[] = {"connection", "keep-alive", "proxy-connection",
                                  "proxy-authorization", "te", "trailer", "transfer-encoding",
                                  "upgrade", "content-length", "host", "expect"};
  for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
    if (strlen(h[i]) == len && strncasecmp(name, h[i], len) == 0) return 1;
  return 0;
}

/* Fields that describe the body as it came, dropped with a new body. */
static int framing(const char *name, size_t len) {
  static const char *const f[] = {"content-length", "transfer-encoding", "trailer", "expect"};
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
    if (strlen(f[i]) == len && strncasecmp(name, f[i], len) == 0) return 1;
  return 0;
}

/* The forwarded head's line for header `name` (case-insensitive), or NULL;
 * *vlen its value's length. */
static const char *forwarded_value(const flt_strbuf_t *head, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head->data, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2, *colon = strchr(line, ':'), *end = strstr(line, "\r\n");
    if (colon == NULL || end == NULL || colon > end) continue;
    if ((size_t)(colon - line) != nl || strncasecmp(line, name, nl) != 0) continue;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    *vlen = (size_t)(end - v);
    return v;
  }
  return NULL;
}

/* Copies the forwarded head's lines for the fields in `keep` ("host",
 * framing, Connection) that the edit does not replace. */
static void keep_forwarded(const flt_strbuf_t *head, flt_strbuf_t *out, int with_framing,
                           int with_host) {
  static const char *const names[] = {"host", "connection", "content-length", "transfer-encoding"};
  for (size_t i = 0; i < 4; i++) {
    if ((i == 0 && !with_host) || (i >= 2 && !with_framing)) continue;
    size_t vlen;
    const char *v = forwarded_value(head, names[i], &vlen);
    if (v) flt_strbuf_appendf(out, "%s: %.*s\r\n", i == 0 ? "Host" : i == 1 ? "Connection"
                                                  : i == 2 ? "Content-Length" : "Transfer-Encoding",
                              (int)vlen, v);
  }
}

/* How many header names the edit changed (added, removed, other values). */
static int headers_changed(const flt_strbuf_t *head, const px_icpt_decision_t *d) {
  int changed = 0;
  for (size_t i = 0; i < d->n_headers; i++) {
    size_t vlen, seen = 0;
    int dup = 0;
    for (size_t j = 0; j < i; j++) dup |= strcasecmp(d->names[j], d->names[i]) == 0;
    if (dup || hop_or_framing(d->names[i], strlen(d->names[i]))) continue;
    const char *v = forwarded_value(head, d->names[i], &vlen);
    for (size_t j = 0; j < d->n_headers; j++) seen += strcasecmp(d->names[j], d->names[i]) == 0;
    if (v == NULL || seen != 1 || vlen != strlen(d->values[i]) || memcmp(v, d->values[i], vlen) != 0)
      changed++;
  }
  for (const char *p = strstr(head->data, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2, *colon = strchr(line, ':');
    size_t nl = colon ? (size_t)(colon - line) : 0;
    int found = 0;
    if (nl == 0 || hop_or_framing(line, nl)) continue;
    for (size_t j = 0; j < d->n_headers && !found; j++)
      found = strlen(d->names[j]) == nl && strncasecmp(d->names[j], line, nl) == 0;
    changed += !found;
  }
  return changed;
}

/* The edited head's first line: "HTTP/1.1 STATUS REASON" for a response
 * (the reason kept while the status is), else "METHOD TARGET HTTP/1.1"
 * (an edited URL's path and query, or all of it in absolute-form). */
static void start_line(const px_icpt_hold_t *h, const px_icpt_decision_t *d, flt_strbuf_t *out) {
  const char *fl = h->head.data;
  size_t m_len = strcspn(fl, " "), t_off = m_len + 1, t_len = strcspn(fl + t_off, " \r\n");
  if (h->response) {
    int was = atoi(fl + t_off), status = d->status ? d->status : was;
    const char *reason = fl + t_off + t_len + (fl[t_off + t_len] == ' ');
    size_t rlen = strcspn(reason, "\r\n");
    if (status != was) {
      reason = http_status_str((enum http_status)status);
      rlen = strlen(reason);
    }
    flt_strbuf_appendf(out, "HTTP/1.1 %d %.*s\r\n", status, (int)rlen, reason);
    return;
  }
  if (d->method) flt_strbuf_appendf(out, "%s ", d->method);
  else flt_strbuf_append(out, fl, m_len + 1);
  if (d->url == NULL) {
    flt_strbuf_append(out, fl + t_off, t_len);
  } else if (h->absolute) {
    flt_strbuf_append(out, d->url, strlen(d->url));
  } else {
    const char *rest = d->url + h->origin_len;
    flt_strbuf_appendf(out, "%s%s", rest[0] == '/' ? "" : "/", rest);
  }
  flt_strbuf_append(out, " HTTP/1.1\r\n", 11);
}

/* The head to send for decision `d`: the forwarded one with the edits.
 * `what` gets a description ("method, 2 headers, body"). */
static void build_head(const px_icpt_hold_t *h, const px_icpt_decision_t *d, flt_strbuf_t *out,
                       char *what, size_t wlen) {
  const char *fl = h->head.data;
  size_t m_len = strcspn(fl, " "), t_off = m_len + 1;
  const char *url = d->url ? d->url : NULL;
  int nh = d->has_headers ? headers_changed(&h->head, d) : 0, any_host = 0;

  start_line(h, d, out);
  if (d->has_headers) {
    for (size_t i = 0; i < d->n_headers; i++) {
      size_t vlen;
      const char *v = d->values[i];
      any_host |= strcasecmp(d->names[i], "host") == 0;
      if (hop_or_framing(d->names[i], strlen(d->names[i])) && strcasecmp(d->names[i], "host") != 0)
        continue;
      /* A value the page showed as <redacted> keeps what was forwarded. */
      const char *fv = strcmp(v, "<redacted>") == 0 ? forwarded_value(&h->head, d->names[i], &vlen) : NULL;
      if (fv) flt_strbuf_appendf(out, "%s: %.*s\r\n", d->names[i], (int)vlen, fv);
      else flt_strbuf_appendf(out, "%s: %s\r\n", d->names[i], v);
    }
    keep_forwarded(&h->head, out, !d->has_body, !any_host && !h->response);
  } else {
    /* The forwarded fields as they were; only the framing may change. */
    for (const char *p = strstr(fl, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
      const char *line = p + 2, *end = strstr(line, "\r\n");
      size_t nl = strcspn(line, ":");
      if (d->has_body && framing(line, nl)) continue;
      flt_strbuf_append(out, line, (size_t)(end - line) + 2);
    }
  }
  if (d->has_body) flt_strbuf_appendf(out, "Content-Length: %zu\r\n", d->body_len);
  flt_strbuf_append(out, "\r\n", 2);

  int n = snprintf(what, wlen, "%s", "");
  const char *sep = "";
#define WHAT(...) (n += snprintf(what + n, wlen - (size_t)n, __VA_ARGS__), sep = ", ")
  if (d->method && ((size_t)m_len != strlen(d->method) || strncmp(fl, d->method, m_len) != 0))
    WHAT("%smethod", sep);
  if (d->status && d->status != atoi(fl + t_off)) WHAT("%sstatus", sep);
  if (url && strcmp(url, h->flow->flow.url ? h->flow->flow.url : "") != 0) WHAT("%sURL", sep);
  if (nh) WHAT("%s%d header%s", sep, nh, nh == 1 ? "" : "s");
  if (d->has_body && (d->body_len != h->body.len || memcmp(d->body, h->body.data, d->body_len) != 0))
    WHAT("%sbody", sep);
#undef WHAT
}

/* flow.req_sent: the edited head, for the views and transcripts. */
static void record_sent(px_session_t *s, px_icpt_hold_t *h, const flt_strbuf_t *head) {
  flt_header_t hdr[PX_ICPT_MAX_HEADERS + 8];
  flt_head_t v = {.http_major = 1, .http_minor = 1, .headers = hdr};
  char *copy = strndup(head->data, head->len);
  if (copy == NULL) return;
  char *line = copy, *end = strstr(line, "\r\n");
  if (end == NULL) goto Exit;
  *end = '\0';
  char *sp = strchr(line, ' ');
  if (sp == NULL) goto Exit;
  *sp = '\0';
  if (h->response) {
    v.status = atoi(sp + 1);
    v.reason = sp + 1 + strcspn(sp + 1, " ");
    if (*v.reason == ' ') v.reason++;
  } else {
    v.method = line;
    v.url = sp + 1;
    *strrchr(v.url, ' ') = '\0';
  }
  for (line = end + 2; (end = strstr(line, "\r\n")) != NULL && end != line; line = end + 2) {
    *end = '\0';
    char *colon = strchr(line, ':');
    if (colon == NULL || v.n_headers == sizeof(hdr) / sizeof(hdr[0])) continue;
    char *val = colon + 1;
    while (*val == ' ') val++;
    hdr[v.n_headers++] = (flt_header_t){line, (size_t)(colon - line), val, strlen(val)};
  }
  v.head_bytes = head->len;
  flt_head_t *sent = px_head_copy(&v);
  if (sent) {
    const px_config_t *cfg = s->w->shared->cfg;
    px_http_redact_head(cfg->redact, cfg->n_redact, cfg->proxyauth != NULL, sent);
    flt_head_t **own = h->response ? &h->flow->resp_sent : &h->flow->req_sent;
    free(*own);
    *own = sent;
    if (h->response) h->flow->flow.resp_sent = sent;
    else h->flow->flow.req_sent = sent;
  }
Exit:
  free(copy);
}

/* ---- decisions ------------------------------------------------------------------------- */

/* "POST https://..." or "response 200 to POST https://...", for the log. */
static void describe(const px_icpt_hold_t *h, char *out, size_t len) {
  const flt_flow_t *f = &h->flow->flow;
  if (h->response)
    snprintf(out, len, "response %d to %s %s", h->resp_status, f->req.method, f->url ? f->url : "");
  else
    snprintf(out, len, "%s %s", f->req.method, f->url ? f->url : "");
}

/* Bytes of the decided message: to the upstream (a request; its leg is
 * started now if it was not) or to the client (a response). */
static void send_out(px_session_t *s, const px_icpt_hold_t *h, const char *p, size_t n) {
  if (h->response) px_send_client(s, p, n);
  else px_send_upstream(s, p, n);
}

static void send_on(px_session_t *s, px_icpt_hold_t *h, const px_icpt_decision_t *d,
                    const char *why) {
  flt_strbuf_t head;
  char what[200] = "", msg[600];
  int edited = d && (d->method || d->url || d->status || d->has_headers || d->has_body);
  flt_strbuf_init(&head, 0);
  if (edited) build_head(h, d, &head, what, sizeof(what));
  double secs = waited_s(h);
  const char *side = h->response ? "response " : "";
  if (edited && what[0])
    flt_flow_action(&h->flow->flow, "intercepted", "%sedited in the flow browser (%s) after %.1f s",
                    side, what, secs);
  else
    flt_flow_action(&h->flow->flow, "intercepted", "%s%s after %.1f s", side,
                    why ? why : "resumed unchanged in the flow browser", secs);
  describe(h, msg, sizeof(msg));
  flt_log_info("\xe2\x96\xb6 resumed: %s after %.1f s%s%s%s", msg, secs,
               what[0] ? " (edited: " : "", what, what[0] ? ")" : why ? " (--intercept-timeout)" : "");
  if (edited) record_sent(s, h, &head);
  if (!h->response && h->start_upstream && px_upstream_unconnected(s)) {
    if (s->up == PX_UP_RELEASED)
      px_upstream_reconnect(s);
    else
      px_upstream_start(s);
    if (s->state == PX_S_CLOSING) goto Exit;
  }
  px_batch_begin(s, !h->response);
  if (edited)
    send_out(s, h, head.data, head.len);
  else
    send_out(s, h, h->head.data, h->head.len);
  if (d && d->has_body) {
    send_out(s, h, d->body, d->body_len);
    h->drop_rest = 1;
  } else {
    send_out(s, h, h->body.data, h->body.len);
  }
  px_batch_end(s, !h->response);
Exit:
  flt_strbuf_free(&head);
}

static void kill_flow(px_session_t *s, px_icpt_hold_t *h, const char *why) {
  char text[300], msg[600];
  const char *side = h->response ? "response " : "";
  flt_flow_action(&h->flow->flow, "intercepted", "%s%s after %.1f s", side, why, waited_s(h));
  describe(h, msg, sizeof(msg));
  flt_log_info("\xe2\x9c\x96 killed: %s after %.1f s (%s)", msg, waited_s(h), why);
  if (h->response)
    snprintf(text, sizeof(text), "tlspeek: the response was %s (--intercept); the upstream's "
             "answer was not passed on", why);
  else
    snprintf(text, sizeof(text), "tlspeek: the request was %s (--intercept); it was not sent "
             "upstream", why);
  h->end = NULL; /* the flow ends with the 502, the session after it */
  h->closed = NULL;
  px_reply_error(s, 502, "Bad Gateway", text);
}

/* Applies `d` (NULL: the timeout's choice). */
static void decide(px_icpt_hold_t *h, px_icpt_decision_t *d) {
  px_session_t *s = h->s;
  const px_config_t *cfg = s->w->shared->cfg;
  if (!flow_alive(s, h) || s->end >= PX_END_FLUSHING) {
    hold_end(h);
    return;
  }
  h->decided = 1;
  px_icpt_withdraw(h->entry);
  h->entry = NULL;
  if (d ? d->verdict == PX_ICPT_KILL : !cfg->intercept_timeout_resume) {
    kill_flow(s, h, d ? "killed in the flow browser" : "killed by --intercept-timeout");
    hold_end(h);
    return;
  }
  send_on(s, h, d, d ? NULL : "resumed by --intercept-timeout");
  /* Whole (or its end deferred): done; else the rest passes as it comes. */
  if ((h->response ? h->end != NULL || h->closed != NULL : h->req_ended) ||
      s->state == PX_S_CLOSING) {
    hold_end(h);
  } else if (s->icpt_pause) {
    s->icpt_pause = 0;
    px_update_reading(s);
  }
}

static void on_wake(uv_async_t *a) {
  px_icpt_hold_t *h = a->data;
  px_icpt_decision_t d;
  if (h->s == NULL || h->decided || !px_icpt_take(h->entry, &d)) return;
  decide(h, &d);
  px_icpt_decision_free(&d);
}

static void on_tick(uv_timer_t *t) {
  px_icpt_hold_t *h = t->data;
  px_session_t *s = h->s;
  if (s == NULL || h->decided) return;
  uint64_t timeout = s->w->shared->cfg->intercept_timeout_ms;
  if (timeout == 0) timeout = PX_ICPT_TIMEOUT_MS;
  s->last_activity = px_session_now(s); /* waiting for the user is not idle */
  if (timeout != UINT64_MAX && uv_now(t->loop) - h->start_ms >= timeout) decide(h, NULL);
}

/* ---- the session's calls ------------------------------------------------------------- */

static int matches(px_session_t *s, const px_flow_t *n, int response) {
  const px_config_t *cfg = s->w->shared->cfg;
  for (int i = 0; i < cfg->n_intercepts; i++)
    if (cfg->intercept_response[i] == response &&
        flt_expr_match_flow(cfg->intercepts[i], &n->flow, NULL))
      return 1;
  return 0;
}

/* A hold for flow `n`, published as waiting; NULL when it cannot be. */
static px_icpt_hold_t *hold_new(px_session_t *s, px_flow_t *n, int response) {
  px_icpt_hold_t *h = calloc(1, sizeof(*h));
  if (h == NULL) return NULL;
  h->s = s;
  h->flow = n;
  h->flow_id = n->flow.id;
  h->response = response;
  const char *url = n->flow.url ? n->flow.url : "";
  const char *p = strstr(url, "://");
  h->origin_len = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : 0;
  flt_strbuf_init(&h->head, PX_HTTP_MAX_HEAD + 8192);
  flt_strbuf_init(&h->body, PX_ICPT_MAX_BODY + 2 * PX_READ_BUF);
  uv_async_init(&s->w->loop, &h->wake, on_wake);
  uv_timer_init(&s->w->loop, &h->timer);
  h->wake.data = h->timer.data = h;
  h->handles = 2;
  h->start_ms = uv_now(&s->w->loop);
  uv_timer_start(&h->timer, on_tick, ICPT_TICK_MS, ICPT_TICK_MS);
  s->icpt = h;
  h->entry = px_icpt_publish(n->flow.id, response, url, h->origin_len, &h->wake);
  if (h->entry == NULL) {
    hold_end(h);
    return NULL;
  }
  return h;
}

int px_session_intercept_request(px_session_t *s, px_flow_t *n, int absolute) {
  if (s->w->shared->cfg->n_intercepts == 0 || s->icpt || !matches(s, n, 0)) return 0;
  int unconnected = px_upstream_unconnected(s);
  px_icpt_hold_t *h = hold_new(s, n, 0);
  if (h == NULL) return 0;
  h->absolute = absolute;
  h->start_upstream = unconnected;
  flt_log_info("\xe2\x8f\xb8 intercepted: %s %s waiting in the flow browser", n->flow.req.method,
               n->flow.url ? n->flow.url : "");
  return 1;
}

int px_session_intercept_response(px_session_t *s, px_flow_t *n) {
  if (s->w->shared->cfg->n_intercepts == 0 || s->icpt || !matches(s, n, 1)) return 0;
  px_icpt_hold_t *h = hold_new(s, n, 1);
  if (h == NULL) return 0;
  h->resp_status = n->flow.resp.status;
  char msg[600];
  describe(h, msg, sizeof(msg));
  flt_log_info("\xe2\x8f\xb8 intercepted: %s waiting in the flow browser", msg);
  return 1;
}

int px_session_intercept_busy(px_session_t *s) {
  if (s->icpt == NULL) return 0;
  s->icpt_pause |= 1;
  px_update_reading(s);
  return 1;
}

int px_session_intercept_busy_response(px_session_t *s) {
  if (s->icpt == NULL || !s->icpt->response) return 0;
  s->icpt_pause |= 2;
  px_update_reading(s);
  return 1;
}

/* What the page shows: the head, and the body once complete (or too
 * large, or chunked: not shown). */
static void publish(px_icpt_hold_t *h, px_icpt_body_t state) {
  size_t vlen;
  if (state == PX_ICPT_BODY_COMPLETE && forwarded_value(&h->head, "transfer-encoding", &vlen))
    state = PX_ICPT_BODY_CHUNKED;
  int shown = state == PX_ICPT_BODY_COMPLETE;
  px_icpt_set_message(h->entry, h->head.data, h->head.len, shown ? h->body.data : NULL,
                      shown ? h->body.len : 0, state);
}

int px_session_intercept_capture(px_session_t *s, int response, const char *data, size_t len) {
  px_icpt_hold_t *h = s->icpt;
  if (h == NULL || h->response != response) return 0;
  if (h->decided) return h->drop_rest; /* sent on as it comes, or dropped */
  flt_strbuf_t *b = h->have_head ? &h->body : &h->head;
  if (flt_strbuf_append(b, data, len) != 0 || b->truncated) {
    px_session_close(s, "out of memory holding an intercepted message");
    return 1;
  }
  if (!h->have_head) publish(h, PX_ICPT_BODY_PENDING);
  h->have_head = 1;
  int bit = response ? 2 : 1;
  if (b == &h->body && h->body.len >= PX_ICPT_MAX_BODY && !(s->icpt_pause & bit)) {
    s->icpt_pause |= bit; /* the rest waits in the socket until the decision */
    px_update_reading(s);
    publish(h, PX_ICPT_BODY_TOO_LARGE);
  }
  return 1;
}

void px_session_intercept_request_end(px_session_t *s, const px_flow_t *f) {
  px_icpt_hold_t *h = s->icpt;
  if (h == NULL || h->response || h->flow != f) return;
  h->req_ended = 1;
  if (h->decided) hold_end(h);
  else if (!(s->icpt_pause & 1)) publish(h, PX_ICPT_BODY_COMPLETE);
}

int px_session_intercept_defer(px_session_t *s, void (*end)(void *, px_codec_t *, uint32_t),
                               px_codec_t *c, uint32_t stream) {
  px_icpt_hold_t *h = s->icpt;
  if (h == NULL || !h->response) return 0;
  if (h->decided) { /* its rest passed as it came: it ends as usual */
    hold_end(h);
    return 0;
  }
  h->end = end;
  h->end_c = c;
  h->end_stream = stream;
  if (!(s->icpt_pause & 2)) publish(h, PX_ICPT_BODY_COMPLETE);
  return 1;
}

int px_session_intercept_defer_close(px_session_t *s, void (*closed)(px_session_t *)) {
  px_icpt_hold_t *h = s->icpt;
  if (h == NULL || !h->response || h->decided) return 0;
  h->closed = closed;
  if (h->end == NULL && !(s->icpt_pause & 2)) publish(h, PX_ICPT_BODY_COMPLETE); /* close-delimited */
  return 1;
}
