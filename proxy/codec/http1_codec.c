/* http1_codec.c — the `http1` codec (codec.h): the framer of http1.h behind
 * the codec interface. The framer's callbacks become the sink's events on
 * stream 0; its state is allocated here, one per leg, and only while the leg
 * has something to parse: px_codec_trim and px_codec_reset between messages
 * give it back (a quiet connection), the next input makes it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/codec.h"

flt_head_t *px_http_copy_head(px_http_t *h);

/* A head store grown past this by an unusually large head is given back at
 * the end of its message; smaller ones are reused by the next message (no
 * allocation per request on a keep-alive connection). */
#define H1_KEEP_STORE (8 * 1024)

typedef struct h1 {
  px_codec_t base;  /* first: the codec's address is its state's */
  px_http_t *http;  /* the framer; NULL while asleep (a fresh one's state) */
  int request;      /* reads requests (a client leg) */
  int upgrade_told; /* on_upgrade was reported for the current switch */
  int oom;          /* the framer could not be made again */
} h1_t;

static h1_t *h1_of(px_codec_t *c) { return (h1_t *)c; }
static const h1_t *h1_of_const(const px_codec_t *c) { return (const h1_t *)c; }

static const px_http_cbs_t h1_cbs;

/* The framer, made when asleep; NULL when out of memory. */
static px_http_t *awake(h1_t *h) {
  if (h->http) return h->http;
  h->http = malloc(sizeof(*h->http));
  if (h->http == NULL) {
    h->oom = 1;
    return NULL;
  }
  px_http_init(h->http, h->request ? HTTP_REQUEST : HTTP_RESPONSE, &h1_cbs, h);
  return h->http;
}

/* Gives the framer back (the next input makes a fresh one). */
static void sleep_now(h1_t *h) {
  if (h->http == NULL) return;
  px_http_free(h->http);
  free(h->http);
  h->http = NULL;
}

static void tell_upgrade(h1_t *h) {
  if (!h->http->upgraded || h->upgrade_told) return;
  h->upgrade_told = 1;
  if (h->base.sink->on_upgrade) h->base.sink->on_upgrade(h->base.owner, &h->base, 0);
}

static int h1_on_head(void *ud, px_http_t *http, const char *raw, size_t len) {
  h1_t *h = ud;
  px_codec_head_t head = {
      .stream = PX_CODEC_STREAM0,
      .request = http->type == HTTP_REQUEST,
      .raw = raw,
      .raw_len = len,
      .method = (int)http->parser.method,
      .status = (int)http->parser.status_code,
      .upgrade = http->parser.upgrade,
      .target = http->store.data ? http->store.data + http->url_off : "",
      .target_len = http->url_len,
  };
  return h->base.sink->on_head(h->base.owner, &h->base, &head);
}

static void h1_on_forward(void *ud, const char *data, size_t len) {
  h1_t *h = ud;
  h->base.sink->on_forward(h->base.owner, &h->base, PX_CODEC_STREAM0, data, len);
}

static void h1_on_body(void *ud, const char *data, size_t len) {
  h1_t *h = ud;
  h->base.sink->on_body(h->base.owner, &h->base, PX_CODEC_STREAM0, data, len);
}

static void h1_on_end(void *ud, px_http_t *http) {
  h1_t *h = ud;
  h->base.sink->on_end(h->base.owner, &h->base, PX_CODEC_STREAM0);
  if (http->store.alloc > H1_KEEP_STORE && http->state != PX_HTTP_BODY)
    flt_strbuf_free(&http->store);
  tell_upgrade(h);
}

static const px_http_cbs_t h1_cbs = {h1_on_head, h1_on_forward, h1_on_body, h1_on_end};

/* A framer's -1 becomes the sink's on_error (once: the framer is dead). */
static const char *h1_error(const px_codec_t *c) {
  const h1_t *h = h1_of_const(c);
  if (h->oom) return "out of memory";
  return h->http ? h->http->error : "";
}

static int reported(h1_t *h, int rc) {
  if (rc != 0) h->base.sink->on_error(h->base.owner, &h->base, PX_CODEC_STREAM0, h1_error(&h->base));
  return rc;
}

static int h1_input(px_codec_t *c, const char *data, size_t len) {
  h1_t *h = h1_of(c);
  if (h->oom || (h->http && h->http->state == PX_HTTP_FAILED))
    return -1; /* reported when it failed */
  if (awake(h) == NULL) return reported(h, -1);
  return reported(h, px_http_feed(h->http, data, len));
}

static int h1_eof(px_codec_t *c) {
  h1_t *h = h1_of(c);
  return h->http ? px_http_eof(h->http) : 0; /* asleep: between messages */
}

static int h1_release(px_codec_t *c) {
  h1_t *h = h1_of(c);
  if (h->http == NULL) return 0; /* nothing held */
  return reported(h, px_http_release(h->http));
}

static int h1_resume(px_codec_t *c) {
  h1_t *h = h1_of(c);
  h->upgrade_told = 0;
  if (h->http == NULL) return 0; /* nothing kept */
  return reported(h, px_http_resume_http(h->http));
}

static void h1_set_raw(px_codec_t *c) {
  h1_t *h = h1_of(c);
  if (awake(h) == NULL) return; /* the next input reports it */
  px_http_set_raw(h->http);
  tell_upgrade(h);
}

static px_codec_phase_t h1_phase(const px_codec_t *c) {
  const h1_t *h = h1_of_const(c);
  if (h->oom) return PX_CODEC_FAILED;
  const px_http_t *http = h->http;
  if (http == NULL) return PX_CODEC_IDLE;
  if (http->await_verdict) return PX_CODEC_VERDICT;
  switch (http->state) {
    case PX_HTTP_HEAD: return http->raw.len > 0 ? PX_CODEC_HEAD : PX_CODEC_IDLE;
    case PX_HTTP_BODY: return PX_CODEC_BODY;
    case PX_HTTP_RAW: return PX_CODEC_RAW;
    case PX_HTTP_HELD: return PX_CODEC_HELD;
    default: return PX_CODEC_FAILED;
  }
}

/* Between messages (nothing of the next one read, no switch pending) the
 * whole framer goes: a fresh one is what the next message starts from. */
static void h1_trim(px_codec_t *c) {
  h1_t *h = h1_of(c);
  px_http_t *http = h->http;
  if (http == NULL) return;
  px_http_trim(http);
  if (http->state == PX_HTTP_HEAD && http->raw.len == 0 && http->line == PX_LINE_START &&
      !http->await_verdict && !http->upgraded && !http->raw_next && http->held.len == 0 &&
      http->leading_eol == 0)
    sleep_now(h);
}

static void h1_reset(px_codec_t *c) {
  h1_t *h = h1_of(c);
  sleep_now(h); /* gives back the header tables it grew, too */
  h->upgrade_told = 0;
  h->oom = 0;
}

static void h1_head_view(px_codec_t *c, uint32_t stream, flt_head_t *out) {
  (void)stream;
  h1_t *h = h1_of(c);
  if (awake(h) == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  px_http_head_view(h->http, out);
}

static flt_head_t *h1_head_copy(px_codec_t *c, uint32_t stream) {
  (void)stream;
  h1_t *h = h1_of(c);
  return awake(h) ? px_http_copy_head(h->http) : NULL;
}

static int h1_head_build(px_codec_t *c, uint32_t stream, const px_head_edit_t *e,
                         flt_strbuf_t *out) {
  (void)stream;
  h1_t *h = h1_of(c);
  return awake(h) ? px_http_head_build(h->http, e, out) : -1;
}

static int h1_head_hop(px_codec_t *c, uint32_t stream) {
  (void)stream;
  h1_t *h = h1_of(c);
  return h->http ? px_http_has_hop_by_hop(h->http) : 0;
}

static void h1_refuse(px_codec_t *c, uint32_t stream, const char *why) {
  (void)stream;
  px_http_t *http = awake(h1_of(c));
  if (http) snprintf(http->error, sizeof(http->error), "%s", why);
}

static void h1_free(px_codec_t *c) {
  h1_t *h = h1_of(c);
  sleep_now(h);
  free(h);
}

static const px_codec_ops_t h1_ops = {
    .name = "http1",
    .input = h1_input,
    .eof = h1_eof,
    .release = h1_release,
    .resume = h1_resume,
    .set_raw = h1_set_raw,
    .phase = h1_phase,
    .trim = h1_trim,
    .reset = h1_reset,
    .error = h1_error,
    .refuse = h1_refuse,
    .head_view = h1_head_view,
    .head_copy = h1_head_copy,
    .head_build = h1_head_build,
    .head_has_hop_by_hop = h1_head_hop,
    .free = h1_free,
};

px_codec_t *px_codec_http1_new(int request, const px_codec_sink_t *sink, void *owner) {
  h1_t *h = malloc(sizeof(*h));
  if (h == NULL) return NULL;
  h->base.ops = &h1_ops;
  h->base.sink = sink;
  h->base.owner = owner;
  h->request = request;
  h->upgrade_told = 0;
  h->oom = 0;
  h->http = NULL; /* made by the first input */
  return &h->base;
}
