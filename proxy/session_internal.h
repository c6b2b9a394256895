/* session_internal.h — what the files of the session (session.c,
 * session_codec.c, session_http.c, session_state.c, session_timer.c,
 * session_answer.c) give
 * one another to fill the session's ops table (session.h) and to drive the
 * legs' codecs. Nothing outside these files includes it: the rest of the
 * core reaches these functions through s->ops. Calls go one way: session.c
 * calls session_codec.c, which calls session_http.c; each of them may call
 * session_intercept.c, which calls none of them (a deferred end comes back
 * through the function pointer it was given). */
#ifndef TLSPEEK_SESSION_INTERNAL_H
#define TLSPEEK_SESSION_INTERNAL_H

#include "proxy/session.h"

/* session_codec.c: the legs' codecs and their sinks. init gives each leg an
 * http1 codec (-1 when out of memory), free frees both. relay changes the
 * state to PX_S_RAW and both legs to the raw codec (closing when out of
 * memory). The plaintext of each leg goes to its codec; the upstream's EOF
 * completes or cuts its response. */
int px_session_codec_init(px_session_t *s);
void px_session_codec_free(px_session_t *s);
void px_session_codec_relay(px_session_t *s, int passthrough);
void px_session_codec_client_plaintext(px_session_t *s, const char *data, size_t len);
void px_session_codec_upstream_plaintext(px_session_t *s, const char *data, size_t len);
void px_session_codec_upstream_closed(px_session_t *s);
/* The client sent the HTTP/2 preface in clear (h2c with prior knowledge):
 * both legs get their codecs (session_h2.c; closes when out of memory). */
void px_session_codec_h2c(px_session_t *s);

/* session_http.c: what heads mean (the codec sinks' on_head, returning as
 * px_codec_sink_t.on_head), the flows' ends, 400 answers, the switch to
 * another origin, tlspeek's own error answers (ops table). */
int px_session_http_request_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *head);
int px_session_http_response_head(px_session_t *s, px_codec_t *c, const px_codec_head_t *head);
void px_session_http_flow_finish(px_session_t *s, const char *error);
void px_session_http_fail_flows(px_session_t *s, const char *why);
void px_session_http_bad_request(px_session_t *s, const char *why);
void px_session_http_switch_when_idle(px_session_t *s);
void px_session_http_reply_error(px_session_t *s, int status, const char *reason, const char *extra,
                                 const char *text);
/* A request kept by session_answer.c (--serve-match url+body, no match,
 * --serve-miss forward) goes upstream now. */
void px_session_http_forward_kept(px_session_t *s);

/* session_ws.c: WebSocket messages after a 101. adopt takes the flow `n`
 * (answered by 101 with Upgrade: websocket) out of the queue and keeps it
 * open, with a frame reader per direction: 1 when it did, 0 when the flow
 * is to end as any other (not a WebSocket, an extension it cannot read,
 * out of memory). input gives it what a relaying leg codec forwards in
 * `dir` (1 when taken, 0 when there is no WebSocket); end ends the flow
 * (error `why` unless a close frame was seen), free frees what is left. */
typedef struct px_ws px_ws_t;
int px_session_ws_adopt(px_session_t *s, px_flow_t *n);
int px_session_ws_input(px_session_t *s, flt_dir_t dir, const char *data, size_t len);
void px_session_ws_end(px_session_t *s, const char *why);
void px_session_ws_free(px_session_t *s);

/* session_intercept.c: --intercept. request: after flow_start, before the
 * head goes upstream; 1 when the flow is held (its head and body are then
 * captured: capture returns 1 for bytes it took instead of the upstream;
 * the upstream leg is started at the decision, not now). `absolute`: the
 * head goes on in absolute-form. busy: a flow of the session is held (the
 * caller returns PX_CODEC_HOLD; reading stops). request_end: the request
 * of flow `f` is complete. drop: the session closes. */
typedef struct px_icpt_hold px_icpt_hold_t;
int px_session_intercept_request(px_session_t *s, px_flow_t *n, int absolute);
int px_session_intercept_busy(px_session_t *s);
int px_session_intercept_capture(px_session_t *s, int response, const char *data, size_t len);
void px_session_intercept_request_end(px_session_t *s, const px_flow_t *f);
void px_session_intercept_drop(px_session_t *s);
/* The response side (a rule whose EXPR has ~s): response, after the
 * response head's event (1: held, its head and body captured); busy_response
 * as busy for the upstream's next response; defer: the held response's end
 * (`end` is called with the same arguments once it is decided; 1 when
 * deferred); defer_close: the upstream's EOF while a response is held
 * (`closed(s)` is called again then). */
int px_session_intercept_response(px_session_t *s, px_flow_t *n);
int px_session_intercept_busy_response(px_session_t *s);
int px_session_intercept_defer(px_session_t *s, void (*end)(void *, px_codec_t *, uint32_t),
                               px_codec_t *c, uint32_t stream);
int px_session_intercept_defer_close(px_session_t *s, void (*closed)(px_session_t *));

/* session_http.c, for the HTTP/2 streams (session_h2.c): a flow begun
 * for a request head (its request-head event emitted; NULL when out of
 * memory); the --block action that matches it; the edits its request gets
 * upstream (--set-header, --remove-header, --rewrite-host, using `hostval`);
 * a 1xx kept in the flow; a final response head copied into the flow, its
 * event emitted and the edits it gets on its way to the client in `e`. */
px_flow_t *px_session_http_flow_begin(px_session_t *s, px_codec_t *c, const px_codec_head_t *hd);
const px_action_t *px_session_http_blocking(px_session_t *s, const flt_flow_t *f);
void px_session_http_request_edits(px_session_t *s, px_flow_t *f, px_head_edit_t *e,
                                   char *hostval, size_t len);
void px_session_http_interim(px_session_t *s, px_flow_t *f, px_codec_t *c, uint32_t stream);
void px_session_http_response_begin(px_session_t *s, px_flow_t *f, px_codec_t *c,
                                    uint32_t stream, px_head_edit_t *e);
/* --redact applied to a head copy (the views'). */
void px_session_http_redact(px_session_t *s, flt_head_t *h);

/* session_state.c: px_session_fail's implementation (ops table). */
void px_session_state_fail(px_session_t *s, int level, const char *about, const char *text,
                           int then);

/* session_answer.c (session_answer.h has the rest): a write to the client
 * completed, so the next part of a file may be read; and whether the
 * client's handshake goes on without the upstream (--map-local,
 * --serve-from: the leaf is minted from the SNI or the CONNECT host, the
 * upstream is connected by the first request that is forwarded). */
void px_answer_drained(px_session_t *s);
int px_answer_mints_alone(const px_session_t *s);

/* session_timer.c: its part of the ops table. */
void px_session_timer_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what);

#endif
