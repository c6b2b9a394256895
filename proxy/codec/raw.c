/* raw.c — the `raw` codec (codec.h): no framing. Every byte read is
 * forwarded as it came, on stream 0; there are no messages, holds or
 * errors. Raw TCP, passthrough and TLS that carries no HTTP use it. */
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/codec.h"

static int raw_input(px_codec_t *c, const char *data, size_t len) {
  if (len > 0) c->sink->on_forward(c->owner, c, PX_CODEC_STREAM0, data, len);
  return 0;
}

static int raw_nothing(px_codec_t *c) {
  (void)c;
  return 0;
}

static void raw_void(px_codec_t *c) { (void)c; }

static px_codec_phase_t raw_phase(const px_codec_t *c) {
  (void)c;
  return PX_CODEC_RAW;
}

static const char *raw_error(const px_codec_t *c) {
  (void)c;
  return "";
}

static void raw_refuse(px_codec_t *c, uint32_t stream, const char *why) {
  (void)c, (void)stream, (void)why;
}

/* A raw codec delivers no heads: what asks for one gets an empty head. */
static void raw_head_view(px_codec_t *c, uint32_t stream, flt_head_t *out) {
  (void)c, (void)stream;
  memset(out, 0, sizeof(*out));
}

static flt_head_t *raw_head_copy(px_codec_t *c, uint32_t stream) {
  (void)c, (void)stream;
  return NULL;
}

static int raw_head_build(px_codec_t *c, uint32_t stream, const px_head_edit_t *e,
                          flt_strbuf_t *out) {
  (void)c, (void)stream, (void)e, (void)out;
  return -1;
}

static int raw_head_hop(px_codec_t *c, uint32_t stream) {
  (void)c, (void)stream;
  return 0;
}

static void raw_free(px_codec_t *c) { free(c); }

static const px_codec_ops_t raw_ops = {
    .name = "raw",
    .input = raw_input,
    .eof = raw_nothing,
    .release = raw_nothing,
    .resume = raw_nothing,
    .set_raw = raw_void,
    .phase = raw_phase,
    .trim = raw_void,
    .reset = raw_void,
    .error = raw_error,
    .refuse = raw_refuse,
    .head_view = raw_head_view,
    .head_copy = raw_head_copy,
    .head_build = raw_head_build,
    .head_has_hop_by_hop = raw_head_hop,
    .free = raw_free,
};

px_codec_t *px_codec_raw_new(const px_codec_sink_t *sink, void *owner) {
  px_codec_t *c = malloc(sizeof(*c));
  if (c == NULL) return NULL;
  c->ops = &raw_ops;
  c->sink = sink;
  c->owner = owner;
  return c;
}
