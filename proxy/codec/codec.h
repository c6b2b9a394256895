/* codec.h — the protocol of one leg: bytes in, messages out (proxy/codec/README.md).
 *
 * Each leg of a session has its own codec (session.h: s->client_codec,
 * s->upstream_codec), so the two legs of one session may speak different
 * protocols. A codec does no I/O: the leg's owner gives it the bytes the
 * leg read (px_codec_input) and the leg's EOF (px_codec_eof); the codec
 * reports what they mean to a sink, the owner's table of callbacks
 * (px_codec_sink_t), each event tagged with a stream id. Which bytes go out
 * on the other leg is the sink's business: the codec tells it the bytes to
 * forward unchanged (on_forward) and the heads (on_head), which the sink
 * passes on as received or rebuilt (px_codec_head_build).
 *
 * Three codecs exist:
 * - `http1` (http1_codec.c, px_codec_http1_new): HTTP/1.x of one direction
 *   on top of the framer of http1.h. One stream, id 0; messages follow one
 *   another. Its state (the framer) is allocated by the first input; between
 *   messages px_codec_trim and px_codec_reset give all of it back (a quiet
 *   connection keeps only the codec's few bytes) and the next input makes
 *   it again.
 * - `raw` (raw.c, px_codec_raw_new): no framing; every byte is forwarded
 *   on stream 0 (raw TCP, passthrough, TLS that is not HTTP).
 * - `ws` (ws.c, px_codec_ws_new, ws.h): WebSocket frames of one direction,
 *   reported as whole messages; every byte forwarded as it came.
 * - `h2` (h2.c, px_codec_h2_new in h2.h): HTTP/2 of one leg on nghttp2.
 *   Its input decodes frames and answers SETTINGS and PING itself; what
 *   it sends on its own leg goes out through its px_h2_io_t (send), not
 *   on_forward, which it never calls. Each HEADERS opens a stream with its
 *   id; on_head reports it with head->stream set, the head decoded from
 *   HPACK (px_codec_head_view works per stream; raw/raw_len are empty, so
 *   the sink always rebuilds the head for the other leg: px_h2_request /
 *   px_h2_response on an h2 leg, px_codec_head_build serialises it as
 *   HTTP/1.1). DATA becomes on_body per stream, END_STREAM on_end,
 *   trailers and RST_STREAM come through the px_h2_io_t; a connection error
 *   is on_error on stream 0. The session's flows are found by (leg,
 *   stream) in flow.h, so many flows are open at once. HOLD is not used;
 *   flow control is per stream (px_h2_consume); px_codec_phase reports the
 *   connection (PX_CODEC_IDLE when no stream is open).
 * After an upgrade (101 Switching Protocols, CONNECT 2xx) an http1 codec
 * relays like raw: its phase is PX_CODEC_RAW.
 *
 * How the WebSocket codec plugs in (proxy/session_ws.c): after a 101 with
 * Upgrade: websocket, both legs keep their http1 codecs, relaying
 * (PX_CODEC_RAW) — the one that read the 101 is inside its own input when
 * it switches, and the bytes after the 101 in the same read come from it —
 * and the session passes what they forward to a ws codec per direction
 * (the client's masked). Each message comes as on_head (head->opcode),
 * one on_body with the whole payload (unmasked, fragments joined,
 * inflated), on_end; control frames between fragments come before the
 * message they interrupt. The frame bytes as received go to on_forward, so
 * the relay stays byte for byte; a protocol error is on_error.
 */
#ifndef TLSPEEK_CODEC_H
#define TLSPEEK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "filters/util/strbuf.h"
#include "proxy/codec/http1.h"

typedef struct px_codec px_codec_t;

/* Stream ids. HTTP/1 and raw have one stream, 0; h2 streams have theirs. */
#define PX_CODEC_STREAM0 0u
/* on_head's answer "not yet": the head and everything after it stay
 * unparsed until px_codec_release() (HTTP/1: PX_HTTP_HOLD). */
#define PX_CODEC_HOLD PX_HTTP_HOLD

/* A message head as the codec parsed it, valid during on_head only. */
typedef struct px_codec_head {
  uint32_t stream;
  int request;        /* 1: a request; 0: a response */
  const char *raw;    /* the head as received (for forwarding unchanged) */
  size_t raw_len;
  int method;         /* a request's method (http_parser's enum http_method) */
  int status;         /* a response's status code */
  int upgrade;        /* a request with Upgrade or CONNECT; a 101 with Upgrade */
  const char *target; /* a request's target, as sent */
  size_t target_len;
  int opcode;         /* ws: the message's opcode (ws.h); 0 for HTTP */
} px_codec_head_t;

/* Where a codec's output goes: the owner's callbacks (the session's, or a
 * test's). `owner` is the pointer given to the codec's constructor. */
typedef struct px_codec_sink {
  /* A complete head. Returns 0 to go on, 1 when the message has no body
   * (a response to HEAD), PX_CODEC_HOLD for "not yet", -1 to refuse it
   * (the codec fails with "rejected by the proxy"). */
  int (*on_head)(void *owner, px_codec_t *c, const px_codec_head_t *head);
  /* Body bytes of the current message, de-chunked (for observers). */
  void (*on_body)(void *owner, px_codec_t *c, uint32_t stream, const char *data, size_t len);
  /* Bytes to pass on to the other leg unchanged: a body as framed on the
   * wire, or everything once the codec relays (PX_CODEC_RAW). */
  void (*on_forward)(void *owner, px_codec_t *c, uint32_t stream, const char *data, size_t len);
  /* The message on `stream` is complete. */
  void (*on_end)(void *owner, px_codec_t *c, uint32_t stream);
  /* The input broke the protocol; `why` says how. The codec is FAILED
   * from here (px_codec_input returns -1 after this). */
  void (*on_error)(void *owner, px_codec_t *c, uint32_t stream, const char *why);
  /* The stream now relays unframed (101, CONNECT 2xx): what follows comes
   * through on_forward. Optional. */
  void (*on_upgrade)(void *owner, px_codec_t *c, uint32_t stream);
} px_codec_sink_t;

/* Where a codec stands. */
typedef enum px_codec_phase {
  PX_CODEC_IDLE = 0,  /* between messages, nothing of the next one yet */
  PX_CODEC_HEAD,      /* a head has begun */
  PX_CODEC_BODY,      /* a head was delivered; its body follows */
  PX_CODEC_HELD,      /* on_head said PX_CODEC_HOLD: input kept until release */
  PX_CODEC_VERDICT,   /* after a request with Upgrade: input kept until the
                         answer says switched (set_raw) or not (resume) */
  PX_CODEC_RAW,       /* relaying: every byte goes to on_forward */
  PX_CODEC_FAILED
} px_codec_phase_t;

typedef struct px_codec_ops {
  const char *name; /* "http1", "h2", "raw" */
  /* Bytes read by the leg (plaintext). 0, or -1 after on_error. */
  int (*input)(px_codec_t *c, const char *data, size_t len);
  /* The leg's peer closed: completes a close-delimited message. 0, or -1
   * when a message was cut short (px_codec_error says how; no on_error). */
  int (*eof)(px_codec_t *c);
  /* After PX_CODEC_HOLD: parses what was kept (on_head sees the held head
   * again). As input; 0 when nothing is held. */
  int (*release)(px_codec_t *c);
  /* The verdict after an upgrade request: not switched (parse what was
   * kept as messages; as input) or switched (relay what was kept and all
   * that follows). A switch asked during a message takes effect at its end. */
  int (*resume)(px_codec_t *c);
  void (*set_raw)(px_codec_t *c);
  px_codec_phase_t (*phase)(const px_codec_t *c);
  /* Between messages: gives back buffers grown for the last one (http1:
   * the whole framer state, made again by the next input). Called when the
   * connection goes quiet, not per message. */
  void (*trim)(px_codec_t *c);
  /* Forgets the connection's state: a fresh codec for a new connection. */
  void (*reset)(px_codec_t *c);
  /* Why the codec failed ("" when it did not). */
  const char *(*error)(const px_codec_t *c);
  /* Called by on_head before it returns -1: why the head is refused (the
   * text of the on_error that follows). */
  void (*refuse)(px_codec_t *c, uint32_t stream, const char *why);
  /* The head of the message being delivered on `stream` (during on_head
   * and until the next message begins): a view (valid as long), a deep
   * copy (one allocation; free() it; NULL when out of memory), serialised
   * with `edit` applied (0 or -1), whether hop-by-hop fields are present. */
  void (*head_view)(px_codec_t *c, uint32_t stream, flt_head_t *out);
  flt_head_t *(*head_copy)(px_codec_t *c, uint32_t stream);
  int (*head_build)(px_codec_t *c, uint32_t stream, const px_head_edit_t *edit, flt_strbuf_t *out);
  int (*head_has_hop_by_hop)(px_codec_t *c, uint32_t stream);
  void (*free)(px_codec_t *c);
} px_codec_ops_t;

/* The part every codec's state begins with. */
struct px_codec {
  const px_codec_ops_t *ops;
  const px_codec_sink_t *sink;
  void *owner;
};

/* http1_codec.c: an HTTP/1 codec reading requests (`request` 1: a client
 * leg) or responses (0: an upstream leg). NULL when out of memory. */
px_codec_t *px_codec_http1_new(int request, const px_codec_sink_t *sink, void *owner);
/* raw.c: a relay codec. NULL when out of memory. */
px_codec_t *px_codec_raw_new(const px_codec_sink_t *sink, void *owner);

static inline int px_codec_input(px_codec_t *c, const char *data, size_t len) {
  return c->ops->input(c, data, len);
}
static inline int px_codec_eof(px_codec_t *c) { return c->ops->eof(c); }
static inline int px_codec_release(px_codec_t *c) { return c->ops->release(c); }
static inline int px_codec_resume(px_codec_t *c) { return c->ops->resume(c); }
static inline void px_codec_set_raw(px_codec_t *c) { c->ops->set_raw(c); }
static inline px_codec_phase_t px_codec_phase(const px_codec_t *c) { return c->ops->phase(c); }
static inline void px_codec_trim(px_codec_t *c) { c->ops->trim(c); }
static inline void px_codec_reset(px_codec_t *c) { c->ops->reset(c); }
static inline const char *px_codec_error(const px_codec_t *c) { return c->ops->error(c); }
static inline void px_codec_refuse(px_codec_t *c, uint32_t stream, const char *why) {
  c->ops->refuse(c, stream, why);
}
static inline void px_codec_head_view(px_codec_t *c, uint32_t stream, flt_head_t *out) {
  c->ops->head_view(c, stream, out);
}
static inline flt_head_t *px_codec_head_copy(px_codec_t *c, uint32_t stream) {
  return c->ops->head_copy(c, stream);
}
static inline int px_codec_head_build(px_codec_t *c, uint32_t stream, const px_head_edit_t *e,
                                      flt_strbuf_t *out) {
  return c->ops->head_build(c, stream, e, out);
}
static inline int px_codec_head_has_hop_by_hop(px_codec_t *c, uint32_t stream) {
  return c->ops->head_has_hop_by_hop(c, stream);
}
/* Frees the codec (NULL is fine). */
static inline void px_codec_free(px_codec_t *c) {
  if (c) c->ops->free(c);
}
/* 1 when the codec relays unframed bytes (raw, or upgraded). */
static inline int px_codec_relaying(const px_codec_t *c) {
  return px_codec_phase(c) == PX_CODEC_RAW;
}

#endif
