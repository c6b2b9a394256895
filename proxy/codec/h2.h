/* h2.h — the `h2` codec (codec.h): HTTP/2 of one leg on nghttp2's session
 * API (proxy/codec/README.md).
 *
 * A client leg's codec is nghttp2's server side (it reads requests), an
 * upstream leg's its client side (it reads responses). Bytes read by the
 * leg go in through px_codec_input; frames the codec itself must send
 * (SETTINGS, acks, WINDOW_UPDATE, the heads and data submitted below) come
 * out through io->send, on the codec's own leg. Each stream is reported to
 * the sink with its id: on_head (head->raw is empty: a head is always
 * rebuilt for the other leg), on_body with DATA payload, on_end at
 * END_STREAM, and io->on_close when the stream is gone (RST_STREAM: the
 * error code). Trailers come through io->on_trailers. A malformed frame,
 * a bad preface or a flood ends the connection: GOAWAY (PROTOCOL_ERROR or
 * nghttp2's code) is queued and sink->on_error tells why, on stream 0.
 *
 * Flow control is per stream and end to end: the codec does not give the
 * peer window back by itself; px_h2_consume() does, once the other leg
 * has sent what this one received. Outgoing data waits per stream in the
 * codec (deferred data providers) until the peer's window lets it out;
 * io->on_sent says how much left, so the other leg can consume as much.
 * Caps: PX_H2_MAX_STREAMS concurrent streams from the peer and a header
 * list of PX_H2_MAX_HEADER_LIST bytes (a larger one resets that stream).
 * Server push is refused (SETTINGS_ENABLE_PUSH 0 on the upstream leg).
 */
#ifndef TLSPEEK_H2_H
#define TLSPEEK_H2_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "proxy/codec/codec.h"

#define PX_H2_MAX_STREAMS 100
#define PX_H2_MAX_HEADER_LIST (64 * 1024)
#define PX_H2_MAX_HEADER_LIST_TEXT "64 KiB"
/* Per-stream receive window: what one stream may have buffered in tlspeek
 * at most before its peer must wait (the other leg not taking it). */
#define PX_H2_STREAM_WINDOW (256 * 1024)
#define PX_H2_CONN_WINDOW (4 * 1024 * 1024)

/* RFC 9113 §7 error codes used here. */
#define PX_H2_NO_ERROR 0u
#define PX_H2_PROTOCOL_ERROR 1u
#define PX_H2_INTERNAL_ERROR 2u
#define PX_H2_REFUSED_STREAM 7u
#define PX_H2_CANCEL 8u

/* The HTTP/2 connection preface a client sends first. */
#define PX_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PX_H2_PREFACE_LEN 24

/* What an h2 codec tells its owner beyond the sink. All required. */
typedef struct px_h2_io {
  /* Frames for the codec's own leg. */
  void (*send)(void *owner, px_codec_t *c, const char *data, size_t len);
  /* `len` bytes of DATA payload of `stream` went out on this leg. */
  void (*on_sent)(void *owner, px_codec_t *c, uint32_t stream, size_t len);
  /* Trailers received on `stream` (a view, valid during the call); on_end follows. */
  void (*on_trailers)(void *owner, px_codec_t *c, uint32_t stream, const flt_head_t *trailers);
  /* `stream` is closed; `code` is 0 after a clean end, else the
   * RST_STREAM / GOAWAY code (either side's). */
  void (*on_close)(void *owner, px_codec_t *c, uint32_t stream, uint32_t code);
  /* Optional: the peer sent GOAWAY (it takes no new streams). */
  void (*on_goaway)(void *owner, px_codec_t *c, uint32_t code);
  /* Optional: `stream` is reset by the codec before its head was complete
   * (a cap); `why` says which. on_close follows. */
  void (*on_refused)(void *owner, px_codec_t *c, uint32_t stream, const char *why);
} px_h2_io_t;

/* A codec for a client leg (`server` 1) or an upstream leg (0). NULL when
 * out of memory. The server side expects the client's preface first. */
px_codec_t *px_codec_h2_new(int server, const px_codec_sink_t *sink, const px_h2_io_t *io,
                            void *owner);
/* 1 when `c` is an h2 codec. */
int px_codec_is_h2(const px_codec_t *c);

/* Upstream leg: a request on a new stream, from `h` (an HTTP/1 or HTTP/2
 * head as the views see it) with `e`'s edits; `authority` and `scheme`
 * fill the pseudo-headers an HTTP/1 head lacks. Data follows with
 * px_h2_data, the end with px_h2_end. The stream id, or -1. */
int32_t px_h2_request(px_codec_t *c, const flt_head_t *h, const px_head_edit_t *e,
                      const char *authority, const char *scheme);
/* Client leg: the response head on `stream` (1xx ones are sent as
 * non-final heads). 0 or -1. */
int px_h2_response(px_codec_t *c, uint32_t stream, const flt_head_t *h, const px_head_edit_t *e);
/* Body bytes for `stream`, queued until the peer's window takes them. */
int px_h2_data(px_codec_t *c, uint32_t stream, const char *data, size_t len);
/* The end of `stream`'s message, with `trailers` (NULL for none). */
int px_h2_end(px_codec_t *c, uint32_t stream, const flt_head_t *trailers);
/* RST_STREAM with `code`. */
void px_h2_reset(px_codec_t *c, uint32_t stream, uint32_t code);
/* The other leg took `len` bytes received on `stream`: WINDOW_UPDATE. */
void px_h2_consume(px_codec_t *c, uint32_t stream, size_t len);
/* GOAWAY with `code` (the last stream the peer opened is named). */
void px_h2_goaway(px_codec_t *c, uint32_t code);
/* Bytes queued for `stream` on this leg (waiting for the peer's window). */
size_t px_h2_queued(px_codec_t *c, uint32_t stream);
/* Streams open on the connection. */
size_t px_h2_open_streams(const px_codec_t *c);
/* Sends what the codec has queued (its preface and SETTINGS after
 * px_codec_h2_new; the rest goes out by itself). */
void px_h2_flush_codec(px_codec_t *c);
/* 1 when the peer's END_STREAM came with `stream`'s head (no body). */
int px_h2_ended_with_head(px_codec_t *c, uint32_t stream);
/* 1 while the codec has nothing more to read or write (GOAWAY both ways,
 * or a fatal error): the connection may close. */
int px_h2_done(const px_codec_t *c);

/* h2_head.c: heads between flt_head_t and nghttp2's name/value lists.
 * The nv list for `h` with `e` applied: pseudo-headers first (from
 * h->method/url/status, `authority` and `scheme` when h has no :authority
 * or :scheme of its own), names lower-cased, connection-specific fields
 * (RFC 9113 §8.2.2) left out. Everything lives in `store` (one allocation
 * the caller frees). -1 when out of memory. */
int px_h2_nv_build(const flt_head_t *h, const px_head_edit_t *e, const char *authority,
                   const char *scheme, nghttp2_nv **nva, size_t *n, void **store);
/* The HTTP/1.1 request head for an HTTP/2 request `h` with `e` applied
 * (Host from :authority, no pseudo-headers; chunked when the body length
 * is not known and `may_have_body`), for an HTTP/1 upstream leg. 0 or -1. */
int px_h2_head_to_http1(const flt_head_t *h, const px_head_edit_t *e, int may_have_body,
                        flt_strbuf_t *out);

#endif
