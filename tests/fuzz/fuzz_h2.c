/* libFuzzer target for the h2 codec (proxy/codec/h2.c, h2_send.c, h2_head.c):
 * two codecs wired as a session wires them — a client leg (nghttp2's server
 * side) and an upstream leg (its client side) — each fed part of the input
 * in pieces the input chooses. Requests that arrive on the client leg are
 * rebuilt as upstream streams (and as HTTP/1.1 heads), their bodies, ends and
 * trailers passed on; responses on the upstream leg go back to the client's
 * stream; resets either way. Frames each codec sends are dropped (counted).
 *
 * Input: byte 0 = piece size (1..64), byte 1 bit 0 = put the client preface
 * first, bits 1.. = where the input splits between the legs; the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/h2.h"

#define MAP 64

typedef struct wire {
  px_codec_t *client, *upstream;
  uint32_t up_of[MAP];     /* client stream id % MAP -> upstream stream */
  uint32_t client_of[MAP]; /* upstream stream id % MAP -> client stream */
  size_t sent;
} wire_t;

static void on_req_head(void *o, px_codec_t *c, const px_codec_head_t *hd) {
  wire_t *w = o;
  flt_head_t view;
  flt_strbuf_t h1;
  px_codec_head_view(c, hd->stream, &view);
  flt_strbuf_init(&h1, 1 << 20);
  px_h2_head_to_http1(&view, NULL, 1, &h1);
  flt_strbuf_free(&h1);
  px_head_edit_t e;
  memset(&e, 0, sizeof(e));
  e.set_name[0] = "x-fuzz";
  e.set_value[0] = "1";
  e.n_set = 1;
  e.remove[e.n_remove++] = "cookie";
  int32_t id = px_h2_request(w->upstream, &view, &e, "example.test", "https");
  if (id > 0) {
    w->up_of[hd->stream % MAP] = (uint32_t)id;
    w->client_of[(uint32_t)id % MAP] = hd->stream;
  }
}

static int sink_req_head(void *o, px_codec_t *c, const px_codec_head_t *hd) {
  on_req_head(o, c, hd);
  return 0;
}

static int sink_resp_head(void *o, px_codec_t *c, const px_codec_head_t *hd) {
  wire_t *w = o;
  flt_head_t view;
  px_codec_head_view(c, hd->stream, &view);
  flt_head_t *copy = px_codec_head_copy(c, hd->stream);
  free(copy);
  px_h2_response(w->client, w->client_of[hd->stream % MAP], &view, NULL);
  return 0;
}

static uint32_t other(wire_t *w, px_codec_t *c, uint32_t stream, px_codec_t **to) {
  *to = c == w->client ? w->upstream : w->client;
  return c == w->client ? w->up_of[stream % MAP] : w->client_of[stream % MAP];
}

static void on_body(void *o, px_codec_t *c, uint32_t stream, const char *data, size_t len) {
  px_codec_t *to;
  uint32_t id = other(o, c, stream, &to);
  if (id == 0 || px_h2_data(to, id, data, len) != 0) px_h2_consume(c, stream, len);
}

static void on_forward(void *o, px_codec_t *c, uint32_t stream, const char *data, size_t len) {
  (void)o, (void)c, (void)stream, (void)data, (void)len;
}

static void on_end(void *o, px_codec_t *c, uint32_t stream) {
  px_codec_t *to;
  uint32_t id = other(o, c, stream, &to);
  if (id) px_h2_end(to, id, NULL);
}

static void on_error(void *o, px_codec_t *c, uint32_t stream, const char *why) {
  (void)o, (void)c, (void)stream, (void)why;
}

static void io_send(void *o, px_codec_t *c, const char *data, size_t len) {
  (void)c, (void)data;
  ((wire_t *)o)->sent += len;
}

static void io_sent(void *o, px_codec_t *c, uint32_t stream, size_t len) {
  px_codec_t *to;
  uint32_t id = other(o, c, stream, &to);
  if (id) px_h2_consume(to, id, len);
}

static void io_trailers(void *o, px_codec_t *c, uint32_t stream, const flt_head_t *t) {
  px_codec_t *to;
  uint32_t id = other(o, c, stream, &to);
  if (id) px_h2_end(to, id, t);
}

static void io_close(void *o, px_codec_t *c, uint32_t stream, uint32_t code) {
  wire_t *w = o;
  px_codec_t *to;
  uint32_t id = other(w, c, stream, &to);
  if (c == w->client)
    w->up_of[stream % MAP] = 0;
  else
    w->client_of[stream % MAP] = 0;
  if (id && code) px_h2_reset(to, id, code);
}

static const px_codec_sink_t client_sink = {sink_req_head, on_body,  on_forward,
                                            on_end,        on_error, NULL};
static const px_codec_sink_t upstream_sink = {sink_resp_head, on_body,  on_forward,
                                              on_end,         on_error, NULL};
static const px_h2_io_t io = {io_send, io_sent, io_trailers, io_close, NULL, NULL};

static void feed(px_codec_t *c, const uint8_t *p, size_t n, size_t piece) {
  while (n > 0) {
    size_t k = n < piece ? n : piece;
    if (px_codec_input(c, (const char *)p, k) != 0) return;
    p += k;
    n -= k;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t piece = (size_t)(data[0] % 64) + 1;
  int preface = data[1] & 1;
  size_t split = size > 2 ? (size_t)(data[1] >> 1) * (size - 2) / 127 : 0;
  data += 2;
  size -= 2;
  if (split > size) split = size;
  wire_t w;
  memset(&w, 0, sizeof(w));
  w.client = px_codec_h2_new(1, &client_sink, &io, &w);
  w.upstream = px_codec_h2_new(0, &upstream_sink, &io, &w);
  if (w.client && w.upstream) {
    px_h2_flush_codec(w.upstream);
    px_h2_flush_codec(w.client);
    if (preface)
      px_codec_input(w.client, PX_H2_PREFACE "\0\0\0\4\0\0\0\0\0", PX_H2_PREFACE_LEN + 9);
    feed(w.client, data, split, piece);
    feed(w.upstream, data + split, size - split, piece);
    px_codec_eof(w.client);
    px_codec_eof(w.upstream);
  }
  px_codec_free(w.client);
  px_codec_free(w.upstream);
  return 0;
}
