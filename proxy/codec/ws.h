/* ws.h — the `ws` codec (codec.h): WebSocket frames of one direction of an
 * upgraded connection (RFC 6455), with permessage-deflate (RFC 7692).
 *
 * Fed the bytes of one direction in any pieces (px_codec_input), it parses
 * frames, unmasks the client's, reassembles fragmented messages, inflates
 * compressed ones, and reports each message to the sink, whole:
 *   on_head  (head->opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong;
 *             head->request: 1 for the client's direction),
 *   on_body  once, with the whole payload (unmasked, inflated; also when
 *            it is empty),
 *   on_end.
 * Control frames that arrive between the fragments of a message are
 * reported when they arrive, before the message they interrupt. Every
 * input piece goes to on_forward as it came, after the messages it
 * completed: the relay stays byte for byte; the codec never changes what
 * passes. On a protocol error (below) nothing of that piece is forwarded,
 * on_error says why, and the codec is FAILED: the owner closes the
 * connection.
 *
 * Errors: a reserved opcode; RSV2/RSV3, or RSV1 without permessage-deflate
 * or on a continuation or control frame; a client frame without a mask or
 * a server frame with one; a control frame longer than 125 bytes or
 * fragmented; a continuation with no message begun, or a data frame
 * while one is unfinished; a 64-bit length with its top bit set; a close
 * frame with a 1-byte payload; a message (as sent, or inflated) over
 * PX_WS_MAX_MESSAGE; compressed data zlib cannot inflate.
 *
 * Why written here: the WebSocket libraries packaged for C (libwebsockets,
 * wslay) own the connection or the framing they send; tlspeek must relay
 * the bytes it was given unchanged and only look at them, which needs
 * nothing but a frame reader and zlib's inflate.
 */
#ifndef TLSPEEK_WS_H
#define TLSPEEK_WS_H

#include <stddef.h>

#include "proxy/codec/codec.h"

/* A message (all its frames' payloads, and again once inflated) larger
 * than this fails the codec. */
#define PX_WS_MAX_MESSAGE ((size_t)16 << 20)
/* A control frame's payload is at most this (RFC 6455 §5.5). */
#define PX_WS_MAX_CONTROL 125

enum {
  PX_WS_CONTINUATION = 0,
  PX_WS_TEXT = 1,
  PX_WS_BINARY = 2,
  PX_WS_CLOSE = 8,
  PX_WS_PING = 9,
  PX_WS_PONG = 10
};

/* What the 101's Sec-WebSocket-Extensions agreed (RFC 7692 §7). */
typedef struct px_ws_params {
  int deflate;                    /* permessage-deflate is on */
  int client_no_context_takeover; /* the client resets its compressor per message */
  int server_no_context_takeover;
  int client_max_window_bits;     /* 8..15 (15 when not given) */
  int server_max_window_bits;
} px_ws_params_t;

/* Reads a Sec-WebSocket-Extensions value of a 101 response into *out
 * (zeroed first; window bits 15). Only permessage-deflate is understood:
 * another extension, or a parameter it does not know, is -1 with a
 * sentence in `why` (the frames cannot be read then); 0 otherwise.
 * `value` may be NULL (no extension). */
int px_ws_params_parse(const char *value, size_t len, px_ws_params_t *out, char *why,
                       size_t whylen);

/* A codec for the frames of one direction: `from_client` 1 for the
 * client's (masked) frames, 0 for the server's. `params` may be NULL (no
 * extension). NULL when out of memory. */
px_codec_t *px_codec_ws_new(int from_client, const px_ws_params_t *params,
                            const px_codec_sink_t *sink, void *owner);

#endif
