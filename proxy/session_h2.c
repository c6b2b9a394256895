/* session_h2.c — a session whose client leg speaks HTTP/2 (proxy/codec/h2.h).
 *
 * The client leg gets an h2 codec when its TLS negotiated "h2" by ALPN.
 * The upstream leg speaks what the upstream chose: h2 (then every client
 * stream is one upstream stream, and the two connections' flow control is
 * linked stream by stream: a stream's window is given back on one leg only
 * once the other leg has sent its bytes), or HTTP/1.1 when the upstream
 * did not pick h2 (a client that offered only h2, against an HTTP/1.1-only
 * upstream).
 *
 * Against HTTP/1.1 the requests of the client's streams go out on the one
 * upstream connection one after another, each once the response before it
 * has ended (translation, session_h2_h1.c). The session owns one upstream
 * leg, with its TLS, deadlines, loop guard and release logic; opening more
 * connections would mean a pool of legs per session. Serialising keeps
 * that model, at the cost of head-of-line waiting across the client's
 * streams; their request bodies wait in tlspeek within each stream's
 * HTTP/2 window (never without bound: the window is not given back until
 * they are sent).
 *
 * Every stream is a flow (flow.h): the same flow events, expressions and
 * actions as HTTP/1 (session_http.c's helpers). The data events (and so
 * --pcap) carry the client leg's HTTP/2 bytes both ways. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/util/log.h"
#include "proxy/codec/h2.h"
#include "proxy/session.h"
#include "proxy/session_h2.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

static const flt_chain_t *chain_of(px_session_t *s) {
  return &s->w->shared->chain;
}

/* ---- flows ------------------------------------------------------------------------------ */

/* tlspeek answers one stream itself (--block, the upstream failed); the
 * flow ends (with `error`) before the answer goes: sending the end may
 * close the stream, and a stream closed with its flow open ends it as cut. */
static void answer_stream(px_session_t *s, px_flow_t *f, int status, const char *text,
                          const char *error) {
  char len[24];
  snprintf(len, sizeof(len), "%zu", strlen(text));
  flt_header_t hdr[2] = {{"content-type", 12, "text/plain; charset=utf-8", 25},
                         {"content-length", 14, len, strlen(len)}};
  flt_head_t h = {.http_major = 2, .status = status, .reason = "", .headers = hdr, .n_headers = 2};
  if (!f->flow.has_response) {
    f->resp_copy = px_head_copy(&h);
    if (f->resp_copy) {
      f->flow.resp = *f->resp_copy;
      f->flow.has_response = 1;
      f->flow.t_resp_head_us = flt_now_us();
      flt_emit_response_head(chain_of(s), &f->flow);
      f->flow.resp_body_bytes = strlen(text);
      flt_emit_response_body(chain_of(s), &f->flow, (const uint8_t *)text, strlen(text));
    }
  }
  uint32_t stream = f->client_stream;
  px_session_h2_end_flow(s, f, error);
  px_h2_response(s->client.codec, stream, &h, NULL);
  px_h2_data(s->client.codec, stream, text, strlen(text));
  px_h2_end(s->client.codec, stream, NULL);
}

/* ---- the client leg: requests ---------------------------------------------------------- */

static void default_authority(px_session_t *s, char *out, size_t len) {
  const char *host = s->conn.sni[0] ? s->conn.sni : s->conn.server_host;
  int deflt = (s->conn.client_tls && s->conn.server_port == 443) ||
              (!s->conn.client_tls && s->conn.server_port == 80);
  snprintf(out, len, strchr(host, ':') ? "[%s]" : "%s", host);
  if (!deflt) snprintf(out + strlen(out), len - strlen(out), ":%u", s->conn.server_port);
}

/* The request goes upstream: as a stream of the h2 upstream leg, or in
 * line for the HTTP/1 one. */
static void request_upstream(px_session_t *s, px_codec_t *c, px_flow_t *f,
                             const px_codec_head_t *hd) {
  px_head_edit_t edit;
  char hostval[300], authority[300];
  memset(&edit, 0, sizeof(edit));
  px_session_http_request_edits(s, f, &edit, hostval, sizeof(hostval));
  if (!px_codec_is_h2(s->upstream.codec)) {
    px_session_h2_h1_request(s, c, f, &edit, hd);
    return;
  }
  flt_head_t view;
  px_codec_head_view(c, hd->stream, &view);
  default_authority(s, authority, sizeof(authority));
  if (px_upstream_unconnected(s)) px_upstream_start(s); /* h2c: on the first request */
  if (s->state == PX_S_CLOSING) return;
  int32_t id = px_h2_request(s->upstream.codec, &view, &edit, authority,
                             s->up_tls_wanted ? "https" : "http");
  if (id < 0) {
    /* The upstream takes no new stream (it sent GOAWAY): the client may
     * retry this one elsewhere, and opens no more here. */
    px_session_h2_end_flow(s, f, px_codec_error(s->upstream.codec));
    px_h2_reset(c, hd->stream, PX_H2_REFUSED_STREAM);
    px_h2_goaway(c, PX_H2_NO_ERROR);
    return;
  }
  f->upstream_stream = (uint32_t)id;
}

static int on_req_head(void *owner, px_codec_t *c, const px_codec_head_t *hd) {
  px_session_t *s = owner;
  if (s->end >= PX_END_FLUSHING || s->state == PX_S_CLOSING) return -1;
  px_flow_t *f = px_session_http_flow_begin(s, c, hd);
  if (f == NULL) {
    px_session_close(s, "out of memory");
    return -1;
  }
  s->flows.req = NULL; /* requests arrive side by side: found by stream */
  f->upstream_stream = PX_H2_NO_STREAM;
  if (s->state == PX_S_ERROR_REPLY) {
    answer_stream(s, f, s->up_error_status ? s->up_error_status : 502,
                  s->up_error ? s->up_error : "upstream failed", s->up_error);
    return 0;
  }
  const px_action_t *block = px_session_http_blocking(s, &f->flow);
  if (block) {
    flt_flow_tag(&f->flow, "blocked");
    answer_stream(s, f, block->status, "tlspeek: this request was blocked by --block\n", NULL);
    return 0;
  }
  request_upstream(s, c, f, hd);
  return 0;
}

static void on_req_body(void *owner, px_codec_t *c, uint32_t stream, const char *data, size_t len) {
  px_session_t *s = owner;
  px_flow_t *f = px_session_h2_flow(s, stream);
  if (f == NULL || f->flow.t_req_end_us) {
    px_h2_consume(c, stream, len);
    return;
  }
  f->flow.req_body_bytes += len;
  flt_emit_request_body(chain_of(s), &f->flow, (const uint8_t *)data, len);
  if (!px_codec_is_h2(s->upstream.codec)) {
    px_session_h2_h1_body(s, f, data, len);
  } else if (f->upstream_stream == PX_H2_NO_STREAM ||
             px_h2_data(s->upstream.codec, f->upstream_stream, data, len) != 0) {
    px_h2_consume(c, stream, len);
  }
}

static void req_end(px_session_t *s, uint32_t stream, const flt_head_t *trailers) {
  px_flow_t *f = px_session_h2_flow(s, stream);
  if (f == NULL || f->flow.t_req_end_us) return;
  f->flow.t_req_end_us = flt_now_us();
  flt_emit_request_end(chain_of(s), &f->flow);
  if (!px_codec_is_h2(s->upstream.codec))
    px_session_h2_h1_end(s, f, trailers);
  else if (f->upstream_stream != PX_H2_NO_STREAM)
    px_h2_end(s->upstream.codec, f->upstream_stream, trailers);
}

static void on_req_end(void *owner, px_codec_t *c, uint32_t stream) {
  (void)c;
  req_end(owner, stream, NULL);
}

static void on_req_trailers(void *owner, px_codec_t *c, uint32_t stream, const flt_head_t *t) {
  (void)c;
  req_end(owner, stream, t);
}

static void on_client_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  char text[400];
  (void)c, (void)stream;
  if (s->state == PX_S_CLOSING) return;
  snprintf(text, sizeof(text), "client sent malformed HTTP/2: %s; connection ended with GOAWAY",
           why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_KEEP);
  while (s->flows.head)
    px_session_h2_end_flow(s, s->flows.head, text);
  if (px_codec_is_h2(s->upstream.codec)) px_h2_goaway(s->upstream.codec, PX_H2_NO_ERROR);
  px_session_set_end(s, PX_END_FLUSHING);
  px_update_reading(s);
  px_maybe_finish(s);
}

static void on_client_forward(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                              size_t len) {
  (void)owner, (void)c, (void)stream, (void)data, (void)len;
}

static void client_send(void *owner, px_codec_t *c, const char *data, size_t len) {
  px_session_t *s = owner;
  (void)c;
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_RESPONSE, (const uint8_t *)data, len);
  px_send_client(s, data, len);
}

/* Response bytes reached the client: the upstream may send as much again. */
static void client_sent(void *owner, px_codec_t *c, uint32_t stream, size_t len) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_session_h2_flow(s, stream);
  if (f && px_codec_is_h2(s->upstream.codec) && f->upstream_stream != PX_H2_NO_STREAM)
    px_h2_consume(s->upstream.codec, f->upstream_stream, len);
  else if (!px_codec_is_h2(s->upstream.codec))
    px_update_reading(s); /* the HTTP/1 upstream may be read again */
}

static void client_closed(void *owner, px_codec_t *c, uint32_t stream, uint32_t code) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_session_h2_flow(s, stream);
  if (f == NULL && code != PX_H2_NO_ERROR && code != PX_H2_CANCEL && px_codec_error(c)[0])
    px_session_log(s, FLT_LOG_WARN, "%s: HTTP/2 stream %u reset (%s) before its request: %s",
                   s->conn.client, (unsigned)stream, nghttp2_http2_strerror(code),
                   px_codec_error(c)); /* nghttp2's reason (error_callback2) */
  if (f == NULL) return;
  char text[120];
  snprintf(text, sizeof(text), "the client reset the HTTP/2 stream (%s)",
           nghttp2_http2_strerror(code));
  if (!px_codec_is_h2(s->upstream.codec)) {
    px_session_h2_h1_cancel(s, f,
                            code ? text : "the HTTP/2 stream closed before its response ended");
    return;
  }
  uint32_t up = f->upstream_stream;
  /* Ended first: the reset below may close the upstream's stream at once. */
  px_session_h2_end_flow(s, f, code ? text : "the HTTP/2 stream closed before its response ended");
  if (up != PX_H2_NO_STREAM) px_h2_reset(s->upstream.codec, up, code ? code : PX_H2_CANCEL);
}

static const px_codec_sink_t client_sink = {on_req_head, on_req_body,     on_client_forward,
                                            on_req_end,  on_client_error, NULL};
/* A stream the codec refused (a cap): one line, the connection goes on. */
static void client_refused(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  (void)c;
  px_session_log(s, FLT_LOG_WARN, "%s: HTTP/2 stream %u reset: %s", s->conn.client,
                 (unsigned)stream, why);
}

static const px_h2_io_t client_io = {client_send, client_sent, on_req_trailers, client_closed,
                                     NULL, client_refused};

/* ---- the upstream leg (h2): responses ---------------------------------------------- */

static int on_resp_head(void *owner, px_codec_t *c, const px_codec_head_t *hd) {
  px_session_t *s = owner;
  px_flow_t *f = px_flows_response(&s->flows, hd->stream);
  if (f == NULL) return -1;
  flt_head_t view;
  px_codec_head_view(c, hd->stream, &view);
  if (hd->status >= 100 && hd->status < 200) {
    px_session_http_interim(s, f, c, hd->stream);
    px_h2_response(s->client.codec, f->client_stream, &view, NULL);
    return 0;
  }
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  px_session_http_response_begin(s, f, c, hd->stream, &edit);
  px_h2_response(s->client.codec, f->client_stream, &view, &edit);
  return 0;
}

static void on_resp_body(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                         size_t len) {
  px_session_t *s = owner;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f == NULL || !f->flow.has_response ||
      px_h2_data(s->client.codec, f->client_stream, data, len) != 0) {
    px_h2_consume(c, stream, len);
    if (f == NULL || !f->flow.has_response) return;
  }
  f->flow.resp_body_bytes += len;
  flt_emit_response_body(chain_of(s), &f->flow, (const uint8_t *)data, len);
}

static void resp_end(px_session_t *s, uint32_t stream, const flt_head_t *trailers) {
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f == NULL) return;
  uint32_t client = f->client_stream;
  px_session_h2_end_flow(s, f, NULL); /* first: the end may close the client's stream */
  px_h2_end(s->client.codec, client, trailers);
}

static void on_resp_end(void *owner, px_codec_t *c, uint32_t stream) {
  (void)c;
  resp_end(owner, stream, NULL);
}

static void on_resp_trailers(void *owner, px_codec_t *c, uint32_t stream, const flt_head_t *t) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f && f->trailers_copy == NULL) { /* shown and recorded with the flow */
    f->trailers_copy = px_head_copy(t);
    if (f->trailers_copy) px_session_http_redact(s, f->trailers_copy);
    f->flow.resp_trailers = f->trailers_copy;
  }
  resp_end(s, stream, t);
}

static void on_upstream_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  char text[600];
  (void)c, (void)stream;
  if (s->state == PX_S_CLOSING) return;
  snprintf(text, sizeof(text), "upstream %s:%u sent malformed HTTP/2: %s", s->up_host,
           (unsigned)s->up_port, why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_KEEP);
  px_session_h2_upstream_gone(s, text);
}

static void upstream_send(void *owner, px_codec_t *c, const char *data, size_t len) {
  (void)c;
  px_send_upstream(owner, data, len);
}

/* Request bytes reached the upstream: the client may send as much again. */
static void upstream_sent(void *owner, px_codec_t *c, uint32_t stream, size_t len) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f) px_h2_consume(s->client.codec, f->client_stream, len);
}

static void upstream_closed(void *owner, px_codec_t *c, uint32_t stream, uint32_t code) {
  px_session_t *s = owner;
  (void)c;
  px_flow_t *f = px_flows_response(&s->flows, stream);
  if (f == NULL) return;
  char text[120];
  snprintf(text, sizeof(text), "the upstream reset the HTTP/2 stream (%s)",
           nghttp2_http2_strerror(code));
  uint32_t client = f->client_stream;
  px_session_h2_end_flow(
      s, f, code ? text : "the upstream closed the HTTP/2 stream before the response ended");
  px_h2_reset(s->client.codec, client, code ? code : PX_H2_CANCEL);
}

static const px_codec_sink_t upstream_sink = {on_resp_head, on_resp_body,      on_client_forward,
                                              on_resp_end,  on_upstream_error, NULL};
/* The upstream takes no new streams: the client hears it at once (in the
 * batch with the last response's end, as nginx sends them), so it opens
 * its next streams on a new connection instead of racing into a refusal. */
static void upstream_goaway(void *owner, px_codec_t *c, uint32_t code) {
  px_session_t *s = owner;
  (void)c, (void)code;
  px_h2_goaway(s->client.codec, PX_H2_NO_ERROR);
}

static const px_h2_io_t upstream_io = {upstream_send, upstream_sent, on_resp_trailers,
                                       upstream_closed, upstream_goaway, NULL};

/* ---- set-up and the connection's end --------------------------------------------------- */

int px_session_h2_wanted(const px_session_t *s) {
  return s->client.tls.ssl && strcmp(s->conn.alpn, "h2") == 0 && !px_codec_is_h2(s->client.codec);
}

int px_session_h2_start(px_session_t *s, int up_h2) {
  px_codec_t *client = px_codec_h2_new(1, &client_sink, &client_io, s);
  px_codec_t *up = NULL;
  if (client == NULL) return -1;
  up = up_h2 ? px_codec_h2_new(0, &upstream_sink, &upstream_io, s) : px_session_h2_h1_codec(s);
  if (up == NULL) {
    px_codec_free(client);
    return -1;
  }
  px_codec_free(s->client.codec);
  px_codec_free(s->upstream.codec);
  s->client.codec = client;
  s->upstream.codec = up;
  s->tls_sniffed = 1;
  /* One connection for every stream: never released while idle. */
  px_upstream_set_bind(s, PX_BIND_PINNED);
  if (s->client.tls.ssl)
    px_session_log(s, FLT_LOG_INFO, "client leg HTTP/2 (ALPN h2), upstream leg %s (ALPN %s)",
                   up_h2 ? "HTTP/2" : "HTTP/1.1", s->conn.up_alpn[0] ? s->conn.up_alpn : "none");
  else
    px_session_log(s, FLT_LOG_INFO,
                   "client leg HTTP/2 in clear (h2c, prior knowledge), "
                   "upstream leg %s",
                   up_h2 ? "h2c (prior knowledge)" : "HTTP/1.1");
  if (up_h2) px_h2_flush_codec(up); /* our preface and SETTINGS */
  /* Ours go out with the answer to the client's preface when its
   * handshake is not finished yet (the upstream spoke first). */
  if (s->client.tls.ssl == NULL || SSL_is_init_finished(s->client.tls.ssl))
    px_h2_flush_codec(client);
  return 0;
}

void px_session_h2_client_input(px_session_t *s, const char *data, size_t len) {
  flt_emit_data(chain_of(s), &s->conn, FLT_DIR_REQUEST, (const uint8_t *)data, len);
  px_codec_input(s->client.codec, data, len); /* a failure: on_client_error */
  if (s->state != PX_S_CLOSING && px_h2_done(s->client.codec) && s->end < PX_END_FLUSHING) {
    /* GOAWAY both ways: the client is done with this connection. */
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
  }
}

void px_session_h2_upstream_closed(px_session_t *s) {
  if (s->state == PX_S_CLOSING) return;
  if (!px_codec_is_h2(s->upstream.codec)) px_codec_eof(s->upstream.codec);
  if (s->flows.head == NULL) {
    px_h2_goaway(s->client.codec, PX_H2_NO_ERROR);
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
    return;
  }
  char text[400];
  snprintf(text, sizeof(text), "upstream %s:%u closed the connection with %s", s->up_host,
           (unsigned)s->up_port, "requests unanswered");
  px_session_log(s, FLT_LOG_INFO, "%s", text);
  px_session_h2_upstream_gone(s, text);
}
