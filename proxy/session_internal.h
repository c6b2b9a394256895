/* session_internal.h — what the files of the session (session.c,
 * session_codec.c, session_http.c, session_state.c, session_timer.c) give
 * one another to fill the session's ops table (session.h) and to drive the
 * legs' codecs. Nothing outside these files includes it: the rest of the
 * core reaches these functions through s->ops. Calls go one way: session.c
 * calls session_codec.c, which calls session_http.c. */
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

/* session_timer.c: its part of the ops table. */
void px_session_timer_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what);

#endif
