/* session_codec.c — the session's sinks for its legs' codecs
 * (proxy/codec/codec.h): what each leg's plaintext becomes. The client leg's
 * codec reports requests, the upstream leg's responses; heads go to
 * session_http.c, bodies and ends to the flows (flow.h), bytes to forward to
 * the other leg — or, while a message is held for an action that rewrites
 * its body, to bodyhold.c. Also the leg's EOF, the first-bytes check inside TLS, and
 * the switch of both legs to the raw codec for a relay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/util/log.h"
#include "proxy/bodyhold.h"
#include "proxy/session.h"
#include "proxy/session_answer.h"
#include "proxy/codec/h2.h"
#include "proxy/session_h2.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

static const flt_chain_t *chain_of(px_session_t *s) { return &s->w->shared->chain; }

/* ---- the client leg: requests ---------------------------------------------------- */

static int on_req_head(void *owner, px_codec_t *c, const px_codec_head_t *head) {
  return px_session_http_request_head(owner, c, head);
}

static void on_req_forward(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                           size_t len) {
  px_session_t *s = owner;
  if (s->state == PX_S_PEEK) {
    px_session_peek(s, data, len); /* after CONNECT's 200 */
    return;
  }
  if (s->end >= PX_END_FLUSHING) return;
  if (px_session_ws_input(s, FLT_DIR_REQUEST, data, len)) return;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
  if (px_codec_relaying(c))
    flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
  if (px_answer_take_body(s, data, len)) return; /* tlspeek answers (or decides later) */
  if (px_session_intercept_capture(s, 0, data, len)) return; /* held by --intercept */
  px_flow_t *f = px_flows_request(&s->flows, stream);
  if (f && f->act && px_hold_forward(s, f, 0, data, len)) return; /* bodyhold.h */
  px_send_upstream(s, data, len);
}

static void on_req_body(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                        size_t len) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_request(&s->flows, stream);
  if (f == NULL) return;
  f->flow.req_body_bytes += len;
  flt_emit_request_body(chain_of(s), &f->flow, (const uint8_t *)data, len);
  px_answer_request_body(s, data, len);
  if (f->act) px_hold_body(s, f, 0, data, len);
}

static void on_req_end(void *owner, px_codec_t *c, uint32_t stream) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_request(&s->flows, stream);
  if (f == NULL) return;
  f->flow.t_req_end_us = flt_now_us();
  flt_emit_request_end(chain_of(s), &f->flow);
  if (f->act) px_hold_end(s, f, 0);
  s->flows.req = NULL;
  px_session_intercept_request_end(s, f);
  /* Tlspeek's own answer may go out now, or a kept request upstream. */
  if (px_answer_request_end(s, f)) px_session_http_forward_kept(s);
}

static void on_req_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  (void)c, (void)stream;
  if (s->state != PX_S_CLOSING) px_session_http_bad_request(s, why);
}

static const px_codec_sink_t client_sink = {on_req_head, on_req_body, on_req_forward,
                                            on_req_end, on_req_error, NULL};

/* ---- the upstream leg: responses ------------------------------------------------- */

static int on_resp_head(void *owner, px_codec_t *c, const px_codec_head_t *head) {
  return px_session_http_response_head(owner, c, head);
}

static void on_resp_forward(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                            size_t len) {
  px_session_t *s = owner;
  if (px_session_ws_input(s, FLT_DIR_RESPONSE, data, len)) return;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
  if (px_codec_relaying(c))
    flt_emit_raw(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
  if (px_session_intercept_capture(s, 1, data, len)) return; /* held by --intercept */
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f && f->act && px_hold_forward(s, f, 1, data, len)) return; /* bodyhold.h */
  px_send_client(s, data, len);
}

static void on_resp_body(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                         size_t len) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f == NULL || !f->flow.has_response) return;
  f->flow.resp_body_bytes += len;
  flt_emit_response_body(chain_of(s), &f->flow, (const uint8_t *)data, len);
  if (f->act) px_hold_body(s, f, 1, data, len);
}

static void on_resp_end(void *owner, px_codec_t *c, uint32_t stream) {
  px_session_t *s = owner;
  int status = s->resp_status;
  if (status >= 100 && status < 200 && status != 101) return;
  /* A held response ends when it is decided: this again, then. */
  if (px_session_intercept_defer(s, on_resp_end, c, stream)) return;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f && f->act) px_hold_end(s, f, 1); /* a held response goes out now (bodyhold.h) */
  px_session_http_flow_finish(s, NULL);
  if (status == 101) {
    px_codec_set_raw(s->client.codec); /* both directions are now a raw stream */
    px_codec_set_raw(c);
  } else if (px_codec_phase(s->client.codec) == PX_CODEC_VERDICT) {
    /* No switch: what the client sent after its Upgrade request is HTTP,
     * parsed (and --block'ed, and recorded) like any other request. */
    px_batch_begin(s, 1);
    px_codec_resume(s->client.codec);
    px_batch_end(s, 1);
  }
  px_update_reading(s);
  px_session_http_switch_when_idle(s);
  px_session_timer_deadline_update(s);
}

/* The response the client waits for cannot be passed on (malformed, or cut
 * short). When none of it has reached the client yet (its head is still in
 * this input's batch), the client gets a 502 naming the cause instead of a
 * truncated answer; otherwise the connection is closed. One log line. */
static void upstream_broke(px_session_t *s, const char *text) {
  px_flow_t *n = s->flows.head;
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_KEEP);
  if (n && n->flow.has_response && px_hold_active(n, 1))
    n->flow.has_response = 0; /* its head is held (bodyhold.h): nothing was sent */
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

static void on_resp_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  (void)c, (void)stream;
  if (s->state == PX_S_CLOSING) return;
  char text[800];
  snprintf(text, sizeof(text), "upstream %s:%u sent a malformed HTTP response: %s", s->up_host,
           (unsigned)s->up_port, why);
  upstream_broke(s, text);
}

static const px_codec_sink_t upstream_sink = {on_resp_head, on_resp_body, on_resp_forward,
                                              on_resp_end, on_resp_error, NULL};

/* ---- plaintext in ------------------------------------------------------------------ */

static void client_plaintext(px_session_t *s, const char *data, size_t len);

/* An HTTP/2 session answers on the leg it reads too (SETTINGS and PING
 * acks, WINDOW_UPDATE, the frames of many streams): while one input is
 * handled, both legs' output is gathered, so that it leaves in one write. */
static int h2_session(const px_session_t *s) {
  return px_codec_is_h2(s->client.codec) || px_codec_is_h2(s->upstream.codec);
}

void px_session_codec_client_plaintext(px_session_t *s, const char *data, size_t len) {
  int both = h2_session(s);
  px_batch_begin(s, 1);
  if (both) px_batch_begin(s, 0);
  client_plaintext(s, data, len);
  if (both) px_batch_end(s, 0);
  px_batch_end(s, 1);
  px_session_timer_deadline_update(s); /* a head begun, completed, or the next awaited */
}

/* The first decrypted bytes: HTTP (empty lines allowed before it) or another
 * protocol, relayed as it is. Returns 1 when they were taken (and handled). */
static int sniff_tls_plaintext(px_session_t *s, const char *data, size_t len) {
  if (flt_strbuf_append(&s->peek, data, len) != 0) {
    px_session_close(s, "out of memory");
    return 1;
  }
  int kind = px_http_sniff(s->peek.data, s->peek.len);
  if (kind == PX_SNIFF_MORE) return 1;
  s->tls_sniffed = 1;
  if (kind == PX_SNIFF_RAW) {
    s->conn.kind = FLT_CONN_RAW_TLS;
    px_session_codec_relay(s, 0);
    if (s->state == PX_S_CLOSING) return 1;
  }
  flt_strbuf_t first = s->peek;
  flt_strbuf_init(&s->peek, 0);
  client_plaintext(s, first.data, first.len);
  flt_strbuf_free(&first);
  return 1;
}

static void client_plaintext(px_session_t *s, const char *data, size_t len) {
  if (s->end >= PX_END_FLUSHING || s->state == PX_S_CLOSING) return;
  /* ALPN chose h2: both legs get their codecs (session_h2.c). */
  if ((s->state == PX_S_HTTP || s->state == PX_S_ERROR_REPLY) && px_session_h2_wanted(s) &&
      px_session_h2_start(s, strcmp(s->conn.up_alpn, "h2") == 0) != 0) {
    px_session_close(s, "out of memory");
    return;
  }
  if (px_codec_is_h2(s->client.codec)) {
    px_session_h2_client_input(s, data, len);
    return;
  }
  if (s->state == PX_S_HTTP && s->conn.kind == FLT_CONN_HTTPS && !s->tls_sniffed &&
      sniff_tls_plaintext(s, data, len))
    return;
  px_codec_input(s->client.codec, data, len); /* a failure: on_req_error */
  px_session_http_switch_when_idle(s);
}

static void upstream_plaintext(px_session_t *s, const char *data, size_t len) {
  if (s->state == PX_S_CLOSING) return;
  if (px_codec_phase(s->upstream.codec) == PX_CODEC_FAILED && s->end >= PX_END_FLUSHING)
    return; /* reported once */
  s->resp_head_mark = SIZE_MAX;
  /* An h2 server speaks first (SETTINGS), maybe before the client's
   * handshake is done: the client will get h2 too (tlsctx.c). */
  if (strcmp(s->conn.up_alpn, "h2") == 0 && !px_codec_is_h2(s->upstream.codec) &&
      px_session_h2_start(s, 1) != 0) {
    px_session_close(s, "out of memory");
    return;
  }
  px_codec_input(s->upstream.codec, data, len); /* a failure: on_resp_error */
}

void px_session_codec_upstream_plaintext(px_session_t *s, const char *data, size_t len) {
  int both = h2_session(s);
  px_batch_begin(s, 0);
  if (both) px_batch_begin(s, 1);
  upstream_plaintext(s, data, len);
  if (both) px_batch_end(s, 1);
  px_batch_end(s, 0);
}

/* The upstream's EOF cut a response short: the client hears why. Returns 1
 * when that ended the matter. */
static int upstream_cut(px_session_t *s) {
  if (s->flows.head && !s->flows.head->flow.has_response) { /* cut in its head */
    char text[800];
    snprintf(text, sizeof(text), "upstream %s:%u closed the connection in the middle of the "
             "response head", s->up_host, (unsigned)s->up_port);
    upstream_broke(s, text);
    return 1;
  }
  px_session_log(s, FLT_LOG_INFO, "upstream %s: %s", s->conn.server_addr,
                 px_codec_error(s->upstream.codec));
  if (s->flows.head)
    px_session_http_flow_finish(s, "upstream closed the connection in the middle of the response");
  return 0;
}

void px_session_codec_upstream_closed(px_session_t *s) {
  s->upstream.eof = 1;
  if (s->state == PX_S_CLOSING) return;
  if (px_session_intercept_defer_close(s, px_session_codec_upstream_closed)) return;
  if (px_codec_is_h2(s->client.codec)) {
    px_session_h2_upstream_closed(s);
    return;
  }
  if (s->state != PX_S_RAW && px_codec_eof(s->upstream.codec) != 0 && upstream_cut(s)) return;
  if (s->flows.head && !s->flows.head->flow.has_response && s->state != PX_S_RAW) {
    char text[600];
    snprintf(text, sizeof(text), "upstream %s:%u closed the connection without responding",
             s->up_host, (unsigned)s->up_port);
    px_reply_error(s, 502, "Bad Gateway", text);
    return;
  }
  if ((s->reading & PX_READ_HELD) && s->flows.head == NULL && s->end < PX_END_FLUSHING) {
    /* Done with this origin; a request to the next one is waiting. */
    px_session_http_switch_when_idle(s);
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

/* ---- which codec each leg runs ------------------------------------------------------ */

int px_session_codec_init(px_session_t *s) {
  s->client.codec = px_codec_http1_new(1, &client_sink, s);
  s->upstream.codec = px_codec_http1_new(0, &upstream_sink, s);
  return s->client.codec && s->upstream.codec ? 0 : -1;
}

void px_session_codec_h2c(px_session_t *s) {
  /* Through a tunnel the client chose the server: it gets the preface too.
   * A reverse upstream is asked in HTTP/1.1, which every backend speaks. */
  int up_h2 = s->lc->mode != PX_MODE_REVERSE;
  if (up_h2) s->up_tls_wanted = 0;
  s->alpn_offer = NULL;
  s->alpn_offer_len = 0;
  if (px_session_h2_start(s, up_h2) != 0) px_session_close(s, "out of memory");
}

void px_session_codec_free(px_session_t *s) {
  px_codec_free(s->client.codec);
  px_codec_free(s->upstream.codec);
  s->client.codec = s->upstream.codec = NULL;
  px_session_ws_free(s);
  px_session_h2_h1_free(s);
}

/* A leg's codec becomes raw, unless it relays already: an http1 codec
 * switched after CONNECT is the one whose callback may be running now. */
static int use_raw(px_session_t *s, px_leg_t *leg, const px_codec_sink_t *sink) {
  if (leg->codec && px_codec_relaying(leg->codec)) return 0;
  px_codec_t *raw = px_codec_raw_new(sink, s);
  if (raw == NULL) return -1;
  px_codec_free(leg->codec);
  leg->codec = raw;
  return 0;
}

void px_session_codec_relay(px_session_t *s, int passthrough) {
  if (passthrough) {
    s->conn.passthrough = 1;
    s->conn.kind = FLT_CONN_RAW_TLS;
    s->up_tls_wanted = 0;
    s->conn.upstream_tls = 0;
    px_tls_free(&s->client.tls);
  }
  px_session_set_state(s, PX_S_RAW);
  if (s->state != PX_S_RAW) return;
  if (use_raw(s, &s->client, &client_sink) != 0 || use_raw(s, &s->upstream, &upstream_sink) != 0)
    px_session_close(s, "out of memory");
}
