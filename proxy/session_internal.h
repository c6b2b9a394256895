/* session_internal.h — what session.c takes from session_http.c,
 * session_state.c and session_timer.c to fill the session's ops table (session.h) and to drive
 * the HTTP framers. Nothing outside these three files includes it: the
 * rest of the core reaches these functions through s->ops. */
#ifndef TLSPEEK_SESSION_INTERNAL_H
#define TLSPEEK_SESSION_INTERNAL_H

#include "proxy/session.h"

/* session_http.c: the framers' callbacks, and its part of the ops table. */
extern const px_http_cbs_t px_req_cbs;
extern const px_http_cbs_t px_resp_cbs;
void px_session_http_reply_error(px_session_t *s, int status, const char *reason, const char *extra,
                                 const char *text);
void px_session_http_upstream_plaintext(px_session_t *s, const char *data, size_t len);
void px_session_http_upstream_closed(px_session_t *s);

/* session_state.c: px_session_fail's implementation (ops table). */
void px_session_state_fail(px_session_t *s, int level, const char *about, const char *text,
                           int then);

/* session_timer.c: its part of the ops table. */
void px_session_timer_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what);

#endif
