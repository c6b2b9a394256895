/* session_h2.h — between the session's files and its HTTP/2 parts
 * (session_h2.c, session_h2_h1.c; proxy/README.md). Nothing outside the
 * session's files includes it. Calls go one way: session_codec.c calls
 * session_h2.c, which calls session_h2_h1.c, which calls session_http.c. */
#ifndef TLSPEEK_SESSION_H2_H
#define TLSPEEK_SESSION_H2_H

#include "proxy/session.h"

/* A stream with no counterpart on the other leg (yet). */
#define PX_H2_NO_STREAM UINT32_MAX

/* session_h2.c. wanted: the client leg negotiated h2 and has no h2 codec
 * yet. start: both legs get their codecs (the upstream's h2 when `up_h2`,
 * else HTTP/1.1); -1 when out of memory. client_input: the client leg's plaintext.
 * upstream_closed: the upstream's EOF. */
int px_session_h2_wanted(const px_session_t *s);
int px_session_h2_start(px_session_t *s, int up_h2);
void px_session_h2_client_input(px_session_t *s, const char *data, size_t len);
void px_session_h2_upstream_closed(px_session_t *s);

/* session_h2_h1.c: the flows of an h2 client leg, and its requests on an
 * HTTP/1.1 upstream leg, one after another. */
px_flow_t *px_session_h2_flow(px_session_t *s, uint32_t client_stream);
void px_session_h2_end_flow(px_session_t *s, px_flow_t *f, const char *error);
/* Every open stream is reset and the client gets GOAWAY; the session ends
 * once that is out. */
void px_session_h2_upstream_gone(px_session_t *s, const char *why);
/* The upstream leg's HTTP/1 codec, whose sink answers the client's streams. */
px_codec_t *px_session_h2_h1_codec(px_session_t *s);
void px_session_h2_h1_request(px_session_t *s, px_codec_t *c, px_flow_t *f,
                              const px_head_edit_t *edit, const px_codec_head_t *hd);
void px_session_h2_h1_body(px_session_t *s, px_flow_t *f, const char *data, size_t len);
void px_session_h2_h1_end(px_session_t *s, px_flow_t *f, const flt_head_t *trailers);
/* The client's stream closed before its response ended: the flow ends
 * with `why`, its request leaves the line. */
void px_session_h2_h1_cancel(px_session_t *s, px_flow_t *f, const char *why);
/* Response bytes of the HTTP/1 upstream that wait for the client's window
 * on its stream (0 when none): counted as queued to the client, so the
 * upstream is read no faster than that stream is. */
size_t px_session_h2_h1_queued(const px_session_t *s);
/* Frees what the HTTP/1 line holds (with the session). */
void px_session_h2_h1_free(px_session_t *s);

#endif
