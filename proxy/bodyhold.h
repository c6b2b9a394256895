/* bodyhold.h — a message held back until its body is complete, so that
 * --replace (action_replace.h) and ABI 2 plugins (flt_flow_want_body) can
 * change the body and send it with a head that fits it.
 *
 * Works on the session's flows and the codec sink's events (heads, bodies
 * as framed and de-chunked, ends), not on HTTP/1 framing, so it applies to
 * any codec's streams. Per side of a flow:
 *   px_hold_head     the head is about to go on: held instead when a rule
 *                    or a plugin wants this body (returns 1)
 *   px_hold_forward  the body as framed: kept while held (returns 1)
 *   px_hold_body     the body de-chunked: kept while held
 *   px_hold_end      the message is complete: decoded, rewritten, sent
 * A body that passes --body-cap is sent as received and the rest relayed
 * (a warning and an action line say so); one that does not decode, or that
 * nothing changed, goes on untouched. A rewritten body goes identity with
 * Content-Length; Content-Encoding, Transfer-Encoding, ETag, Content-MD5,
 * Trailer (and a request's Expect) are dropped. */
#ifndef TLSPEEK_BODYHOLD_H
#define TLSPEEK_BODYHOLD_H

#include <stddef.h>

#include "proxy/codec/codec.h"
#include "proxy/flow.h"
#include "proxy/session.h"

/* `head`/`len` is the head as it would be sent now (edits applied), `e`
 * the edits it was built with, `c`/`hd` the codec that parsed it (to build
 * the head for a rewritten body). */
int px_hold_head(px_session_t *s, px_flow_t *n, int response_side, px_codec_t *c,
                 const px_codec_head_t *hd, const px_head_edit_t *e, const char *head,
                 size_t len);
int px_hold_forward(px_session_t *s, px_flow_t *n, int response_side, const char *data,
                    size_t len);
void px_hold_body(px_session_t *s, px_flow_t *n, int response_side, const char *data, size_t len);
void px_hold_end(px_session_t *s, px_flow_t *n, int response_side);
/* 1 while that side's head is held (nothing of it has been sent). */
int px_hold_active(const px_flow_t *n, int response_side);

#endif
