/* session_ws.c — WebSocket messages through a session (proxy/codec/ws.h).
 *
 * When a request with Upgrade: websocket is answered by 101 with Upgrade:
 * websocket, its flow is not ended with the response (session_http.c asks
 * px_session_ws_adopt first): the session keeps it here, outside its queue
 * of flows, until the connection closes (px_session_ws_end), so that the
 * messages are events of that flow and the transcripts record them in its
 * entry. Both legs' http1 codecs stay as they are, relaying (PX_CODEC_RAW):
 * the one that read the 101 is inside its own input when it switches, and
 * the bytes after the 101 in the same read come from it. What they relay
 * goes into a ws codec per direction (session_codec.c calls
 * px_session_ws_input), which reports each message and forwards the bytes
 * unchanged to the other leg. A malformed frame closes the connection
 * with one line naming the direction and the fault.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/codec/ws.h"
#include "proxy/session.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

struct px_ws {
  px_flow_t *flow;      /* the upgrade's flow, owned from adoption */
  px_codec_t *codec[2]; /* by flt_dir_t: the client's frames, the server's */
  int opcode[2];        /* the message being reported in each direction */
  int closed[2];        /* a close frame was seen, by flt_dir_t */
  int failed;           /* a malformed frame ends the connection */
};

static const flt_chain_t *chain_of(px_session_t *s) { return &s->w->shared->chain; }

/* Whether a head names `token` in header `name` (case-insensitive). */
static int head_has(const flt_head_t *h, const char *name, const char *token) {
  size_t n = strlen(token);
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    if (strlen(name) != hd->name_len || strncasecmp(hd->name, name, hd->name_len) != 0)
      continue;
    for (size_t j = 0; j + n <= hd->value_len; j++)
      if (strncasecmp(hd->value + j, token, n) == 0) return 1;
  }
  return 0;
}

/* ---- the ws codecs' sink -------------------------------------------------------- */

static int ws_dir(px_session_t *s, px_codec_t *c) {
  return s->ws && s->ws->codec[FLT_DIR_RESPONSE] == c ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST;
}

static int on_ws_head(void *owner, px_codec_t *c, const px_codec_head_t *head) {
  px_session_t *s = owner;
  if (s->ws) s->ws->opcode[ws_dir(s, c)] = head->opcode;
  return 0;
}

static void on_ws_body(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                       size_t len) {
  px_session_t *s = owner;
  (void)stream;
  if (s->ws == NULL || s->ws->flow == NULL) return;
  int dir = ws_dir(s, c), op = s->ws->opcode[dir];
  px_flow_t *f = s->ws->flow;
  flt_emit_ws_message(chain_of(s), &f->flow, (flt_dir_t)dir, op, (const uint8_t *)data, len);
  if (op != PX_WS_CLOSE) return;
  s->ws->closed[dir] = 1;
  /* The closing handshake is done: the WebSocket, and so its flow, ended
   * now (the connection closes after it). */
  if (s->ws->closed[0] && s->ws->closed[1]) px_session_ws_end(s, NULL);
}

static void on_ws_end(void *owner, px_codec_t *c, uint32_t stream) {
  (void)owner, (void)c, (void)stream;
}

static void on_ws_forward(void *owner, px_codec_t *c, uint32_t stream, const char *data,
                          size_t len) {
  px_session_t *s = owner;
  int dir = ws_dir(s, c);
  (void)stream;
  flt_emit_data(chain_of(s), &s->conn, (flt_dir_t)dir, (const uint8_t *)data, len);
  if (dir == FLT_DIR_REQUEST)
    px_send_upstream(s, data, len);
  else
    px_send_client(s, data, len);
}

static void on_ws_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  px_session_t *s = owner;
  char text[400];
  (void)stream;
  if (s->state == PX_S_CLOSING) return;
  if (s->ws) s->ws->failed = 1;
  snprintf(text, sizeof(text), "malformed WebSocket frame from the %s: %s",
           ws_dir(s, c) == FLT_DIR_REQUEST ? "client" : "server", why);
  px_session_fail(s, FLT_LOG_WARN, NULL, text, PX_FAIL_CLOSE);
}

static const px_codec_sink_t ws_sink = {on_ws_head, on_ws_body, on_ws_forward,
                                        on_ws_end, on_ws_error, NULL};

/* ---- the session's side ------------------------------------------------------------ */

int px_session_ws_adopt(px_session_t *s, px_flow_t *n) {
  const flt_flow_t *f = &n->flow;
  if (s->ws || !f->has_response || f->resp.status != 101 || !n->upgrade_asked ||
      !head_has(&f->req, "upgrade", "websocket") || !head_has(&f->resp, "upgrade", "websocket"))
    return 0;
  const flt_header_t *ext = flt_head_find(&f->resp, "sec-websocket-extensions");
  px_ws_params_t params;
  char why[200];
  if (px_ws_params_parse(ext ? ext->value : NULL, ext ? ext->value_len : 0, &params, why,
                         sizeof(why)) != 0) {
    /* Relayed as before, raw: the frames cannot be read. */
    px_session_log(s, FLT_LOG_INFO, "WebSocket messages not shown: %s", why);
    return 0;
  }
  px_ws_t *ws = calloc(1, sizeof(*ws));
  if (ws) {
    ws->codec[FLT_DIR_REQUEST] = px_codec_ws_new(1, &params, &ws_sink, s);
    ws->codec[FLT_DIR_RESPONSE] = px_codec_ws_new(0, &params, &ws_sink, s);
  }
  if (ws == NULL || ws->codec[0] == NULL || ws->codec[1] == NULL) {
    if (ws) px_codec_free(ws->codec[0]), px_codec_free(ws->codec[1]);
    free(ws);
    return 0; /* out of memory: relayed raw, the flow ends now */
  }
  ws->flow = n;
  s->ws = ws;
  px_flows_unlink(&s->flows, n);
  return 1;
}

int px_session_ws_input(px_session_t *s, flt_dir_t dir, const char *data, size_t len) {
  if (s->ws == NULL) return 0;
  px_codec_input(s->ws->codec[dir], data, len); /* a failure: on_ws_error */
  return 1;
}

void px_session_ws_end(px_session_t *s, const char *why) {
  px_ws_t *ws = s->ws;
  if (ws == NULL || ws->flow == NULL) return;
  px_flow_t *f = ws->flow;
  ws->flow = NULL;
  /* px_flows_finish: `f` is in no queue; it is ended and freed. */
  px_flows_finish(&s->flows, f, chain_of(s),
                  (ws->closed[0] || ws->closed[1]) && !ws->failed ? NULL : why);
}

void px_session_ws_free(px_session_t *s) {
  px_ws_t *ws = s->ws;
  if (ws == NULL) return;
  if (ws->flow) px_flow_free(ws->flow); /* never ended: the session never started closing */
  px_codec_free(ws->codec[0]);
  px_codec_free(ws->codec[1]);
  free(ws);
  s->ws = NULL;
}
