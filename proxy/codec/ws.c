/* ws.c — the `ws` codec (ws.h): WebSocket frames of one direction, read
 * as they pass, for the views; the bytes themselves are forwarded as they
 * came.
 *
 * The frame reader keeps a frame's header (at most 14 bytes) until it is
 * whole, then takes the payload as it arrives: control payloads into a
 * 125-byte buffer, data payloads unmasked into the message being
 * assembled (inflated on the way when the message is compressed). A
 * message is reported once its last frame is complete. The message buffer
 * grows to what the largest message needs (PX_WS_MAX_MESSAGE at most) and
 * is given back after a message over WS_KEEP bytes.
 *
 * permessage-deflate: the inflater always uses a 32 KiB window (zlib's
 * largest): it reads what a sender with any smaller *_max_window_bits
 * wrote, so the agreed window bits need not be known to it. With the
 * sender's *_no_context_takeover it is reset after each message (zlib
 * allows no other use of those parameters by a reader).
 */
#include "proxy/codec/ws.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* A message buffer larger than this is freed after its message. */
#define WS_KEEP ((size_t)64 << 10)
/* Unmasked payload bytes handled per step (a stack buffer). */
#define WS_STEP 4096
#define WS_MAX_HEADER 14

typedef enum ws_stage { WS_HEADER = 0, WS_PAYLOAD, WS_FAILED } ws_stage_t;

typedef struct ws_codec {
  px_codec_t base;
  int from_client;
  px_ws_params_t params;
  ws_stage_t stage;
  /* the frame being read */
  uint8_t hdr[WS_MAX_HEADER];
  size_t hdr_len, hdr_need;
  int fin, rsv1, opcode, masked;
  uint8_t mask[4];
  uint64_t remaining; /* payload bytes still to come */
  uint64_t done;      /* payload bytes taken (the mask's position) */
  /* the data message being assembled; msg_opcode 0 when none is */
  int msg_opcode, msg_compressed;
  uint8_t *msg;
  size_t msg_len, msg_size;
  uint64_t msg_wire; /* payload bytes of its frames so far */
  uint8_t ctl[PX_WS_MAX_CONTROL];
  size_t ctl_len;
  z_stream z;
  int z_ready;
  char error[200];
} ws_codec_t;

/* ---- the negotiated extension ---------------------------------------------- */

static int token_is(const char *s, size_t n, const char *word) {
  return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static void trim(const char **s, size_t *n) {
  while (*n > 0 && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
  while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* One "name[=value]" parameter of permessage-deflate. */
static int deflate_param(const char *s, size_t n, px_ws_params_t *out, char *why, size_t whylen) {
  const char *eq = memchr(s, '=', n);
  size_t name_len = eq ? (size_t)(eq - s) : n;
  const char *val = eq ? eq + 1 : NULL;
  size_t val_len = eq ? n - name_len - 1 : 0;
  trim(&s, &name_len);
  if (val) {
    trim(&val, &val_len);
    if (val_len >= 2 && val[0] == '"' && val[val_len - 1] == '"') val++, val_len -= 2;
  }
  int bits = 15;
  if (val) {
    char num[8];
    snprintf(num, sizeof(num), "%.*s", (int)(val_len < 7 ? val_len : 7), val);
    bits = atoi(num);
  }
  if (token_is(s, name_len, "client_no_context_takeover")) {
    out->client_no_context_takeover = 1;
  } else if (token_is(s, name_len, "server_no_context_takeover")) {
    out->server_no_context_takeover = 1;
  } else if (token_is(s, name_len, "client_max_window_bits") && bits >= 8 && bits <= 15) {
    out->client_max_window_bits = bits;
  } else if (token_is(s, name_len, "server_max_window_bits") && bits >= 8 && bits <= 15) {
    out->server_max_window_bits = bits;
  } else {
    snprintf(why, whylen, "permessage-deflate parameter \"%.*s\" is not understood",
             (int)(n > 60 ? 60 : n), s);
    return -1;
  }
  return 0;
}

int px_ws_params_parse(const char *value, size_t len, px_ws_params_t *out, char *why,
                       size_t whylen) {
  memset(out, 0, sizeof(*out));
  out->client_max_window_bits = out->server_max_window_bits = 15;
  if (value == NULL) return 0;
  /* A 101 names the one extension it accepted: "name; param; param". */
  const char *end = value + len, *p = value;
  int first = 1;
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *stop = semi ? semi : end;
    const char *s = p;
    size_t n = (size_t)(stop - p);
    trim(&s, &n);
    if (first) {
      if (n == 0) return 0;
      if (!token_is(s, n, "permessage-deflate") || memchr(value, ',', len)) {
        snprintf(why, whylen, "WebSocket extension \"%.*s\" is not understood (only "
                 "permessage-deflate is)", (int)(len > 80 ? 80 : len), value);
        return -1;
      }
      out->deflate = 1;
      first = 0;
    } else if (n > 0 && deflate_param(s, n, out, why, whylen) != 0) {
      return -1;
    }
    p = semi ? semi + 1 : end;
  }
  return 0;
}

/* ---- failing ---------------------------------------------------------------- */

static int ws_fail(ws_codec_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ws_fail(ws_codec_t *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->error, sizeof(w->error), fmt, ap);
  va_end(ap);
  w->stage = WS_FAILED;
  return -1;
}

/* ---- the message ------------------------------------------------------------ */

/* Room for `n` more bytes in the message (within the cap). */
static int msg_room(ws_codec_t *w, size_t n) {
  if (n > PX_WS_MAX_MESSAGE - w->msg_len)
    return ws_fail(w, "a message over the %zu MiB cap", PX_WS_MAX_MESSAGE >> 20);
  if (w->msg_len + n <= w->msg_size) return 0;
  size_t size = w->msg_size ? w->msg_size : 4096;
  while (size < w->msg_len + n) size *= 2;
  if (size > PX_WS_MAX_MESSAGE) size = PX_WS_MAX_MESSAGE;
  uint8_t *m = realloc(w->msg, size);
  if (m == NULL) return ws_fail(w, "out of memory for a message of %zu bytes", w->msg_len + n);
  w->msg = m;
  w->msg_size = size;
  return 0;
}

static int inflate_some(ws_codec_t *w, const uint8_t *p, size_t n) {
  if (!w->z_ready) {
    memset(&w->z, 0, sizeof(w->z));
    if (inflateInit2(&w->z, -15) != Z_OK) return ws_fail(w, "out of memory for zlib");
    w->z_ready = 1;
  }
  w->z.next_in = (Bytef *)p;
  w->z.avail_in = (uInt)n;
  /* Until the input is taken and inflate stopped for want of it, not for
   * want of room: with the room full, output may still be pending. */
  for (;;) {
    if (w->msg_size - w->msg_len < 1024) {
      if (w->msg_len >= PX_WS_MAX_MESSAGE)
        return ws_fail(w, "a message inflates past the %zu MiB cap", PX_WS_MAX_MESSAGE >> 20);
      size_t left = PX_WS_MAX_MESSAGE - w->msg_len;
      if (msg_room(w, left < 4096 ? left : 4096) != 0) return -1;
    }
    w->z.next_out = w->msg + w->msg_len;
    w->z.avail_out = (uInt)(w->msg_size - w->msg_len);
    int rc = inflate(&w->z, Z_SYNC_FLUSH);
    w->msg_len = w->msg_size - w->z.avail_out;
    if (rc == Z_STREAM_END) {
      inflateReset(&w->z); /* BFINAL: what follows starts a new stream */
      if (w->z.avail_in == 0) break;
    } else if (rc == Z_BUF_ERROR) {
      break; /* room was there: it needs more input */
    } else if (rc != Z_OK) {
      return ws_fail(w, "compressed message does not inflate: %s",
                     w->z.msg ? w->z.msg : "zlib error");
    } else if (w->z.avail_in == 0 && w->z.avail_out > 0) {
      break;
    }
  }
  return 0;
}

static void deliver(ws_codec_t *w, int opcode, const uint8_t *p, size_t n) {
  px_codec_t *c = &w->base;
  px_codec_head_t head;
  memset(&head, 0, sizeof(head));
  head.stream = PX_CODEC_STREAM0;
  head.request = w->from_client;
  head.opcode = opcode;
  c->sink->on_head(c->owner, c, &head);
  c->sink->on_body(c->owner, c, PX_CODEC_STREAM0, (const char *)(p ? p : (const uint8_t *)""), n);
  c->sink->on_end(c->owner, c, PX_CODEC_STREAM0);
}

static int message_done(ws_codec_t *w) {
  static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff}; /* RFC 7692 §7.2.2 */
  if (w->msg_compressed && inflate_some(w, tail, sizeof(tail)) != 0) return -1;
  deliver(w, w->msg_opcode, w->msg, w->msg_len);
  int reset = w->from_client ? w->params.client_no_context_takeover
                             : w->params.server_no_context_takeover;
  if (w->msg_compressed && reset && w->z_ready) inflateReset(&w->z);
  w->msg_opcode = w->msg_compressed = 0;
  w->msg_len = 0;
  w->msg_wire = 0;
  if (w->msg_size > WS_KEEP) {
    free(w->msg);
    w->msg = NULL;
    w->msg_size = 0;
  }
  return 0;
}

/* ---- frames ------------------------------------------------------------------ */

/* The first two bytes: what kind of frame, and how long its header is. */
static int header_start(ws_codec_t *w) {
  uint8_t b0 = w->hdr[0], b1 = w->hdr[1];
  int op = b0 & 0x0f, control = (op & 0x08) != 0, len7 = b1 & 0x7f;
  w->fin = b0 >> 7;
  w->rsv1 = (b0 & 0x40) != 0;
  w->opcode = op;
  w->masked = b1 >> 7;
  if (b0 & 0x30) return ws_fail(w, "reserved bits RSV2/RSV3 set (no extension defines them)");
  if ((op >= 3 && op <= 7) || op >= 11) return ws_fail(w, "reserved opcode %d", op);
  if (control && !w->fin) return ws_fail(w, "fragmented control frame (opcode %d)", op);
  if (control && len7 > PX_WS_MAX_CONTROL)
    return ws_fail(w, "control frame (opcode %d) longer than 125 bytes", op);
  if (w->rsv1 && !w->params.deflate)
    return ws_fail(w, "RSV1 set, but permessage-deflate was not agreed");
  if (w->rsv1 && (control || op == PX_WS_CONTINUATION))
    return ws_fail(w, "RSV1 set on a %s frame", control ? "control" : "continuation");
  if (op == PX_WS_CONTINUATION && w->msg_opcode == 0)
    return ws_fail(w, "continuation frame with no message begun");
  if ((op == PX_WS_TEXT || op == PX_WS_BINARY) && w->msg_opcode != 0)
    return ws_fail(w, "a new message began before the last fragment of the previous one");
  if (w->from_client && !w->masked)
    return ws_fail(w, "unmasked frame from the client (RFC 6455 section 5.1)");
  if (!w->from_client && w->masked)
    return ws_fail(w, "masked frame from the server (RFC 6455 section 5.1)");
  w->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (w->masked ? 4 : 0);
  return 0;
}

static int frame_done(ws_codec_t *w) {
  if (w->opcode & 0x08) {
    if (w->opcode == PX_WS_CLOSE && w->ctl_len == 1)
      return ws_fail(w, "close frame with a 1-byte payload (a code takes 2)");
    deliver(w, w->opcode, w->ctl, w->ctl_len);
    return 0;
  }
  return w->fin ? message_done(w) : 0;
}

/* The whole header is in: its length, its mask, and the frame begins. */
static int header_done(ws_codec_t *w) {
  size_t i = 2;
  uint64_t len = w->hdr[1] & 0x7f;
  if (len == 126) {
    len = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
    i = 4;
  } else if (len == 127) {
    len = 0;
    for (i = 2; i < 10; i++) len = len << 8 | w->hdr[i];
    if (len >> 63) return ws_fail(w, "64-bit payload length with its top bit set");
  }
  if (w->masked) memcpy(w->mask, w->hdr + i, 4);
  if (!(w->opcode & 0x08)) {
    if (len > PX_WS_MAX_MESSAGE - w->msg_wire)
      return ws_fail(w, "a frame of %llu bytes takes its message over the %zu MiB cap",
                     (unsigned long long)len, PX_WS_MAX_MESSAGE >> 20);
    if (w->opcode != PX_WS_CONTINUATION) {
      w->msg_opcode = w->opcode;
      w->msg_compressed = w->rsv1;
    }
    w->msg_wire += len;
  } else {
    w->ctl_len = 0;
  }
  w->remaining = len;
  w->done = 0;
  w->stage = WS_PAYLOAD;
  if (len == 0) {
    w->stage = WS_HEADER;
    w->hdr_len = 0;
    return frame_done(w);
  }
  return 0;
}

/* Payload bytes of the current frame, as received. */
static int payload(ws_codec_t *w, const uint8_t *p, size_t n) {
  uint8_t buf[WS_STEP];
  while (n > 0) {
    size_t k = n < sizeof(buf) ? n : sizeof(buf);
    for (size_t i = 0; i < k; i++)
      buf[i] = w->masked ? p[i] ^ w->mask[(w->done + i) & 3] : p[i];
    w->done += k;
    if (w->opcode & 0x08) {
      memcpy(w->ctl + w->ctl_len, buf, k); /* at most 125 in all: header_start */
      w->ctl_len += k;
    } else if (w->msg_compressed) {
      if (inflate_some(w, buf, k) != 0) return -1;
    } else {
      if (msg_room(w, k) != 0) return -1;
      memcpy(w->msg + w->msg_len, buf, k);
      w->msg_len += k;
    }
    p += k;
    n -= k;
  }
  return 0;
}

/* A bounded reader over one input piece. */
typedef struct ws_cursor {
  const uint8_t *p;
  size_t len, pos;
} ws_cursor_t;

static size_t cur_take(ws_cursor_t *cur, size_t want, const uint8_t **at) {
  size_t n = cur->len - cur->pos < want ? cur->len - cur->pos : want;
  *at = cur->p + cur->pos;
  cur->pos += n;
  return n;
}

static int parse(ws_codec_t *w, ws_cursor_t *cur) {
  while (cur->pos < cur->len) {
    const uint8_t *at;
    if (w->stage == WS_HEADER) {
      size_t need = (w->hdr_len < 2 ? 2 : w->hdr_need) - w->hdr_len;
      size_t n = cur_take(cur, need, &at);
      memcpy(w->hdr + w->hdr_len, at, n);
      w->hdr_len += n;
      if (w->hdr_len == 2 && header_start(w) != 0) return -1;
      if (w->hdr_len >= 2 && w->hdr_len == w->hdr_need && header_done(w) != 0) return -1;
      continue;
    }
    size_t want = w->remaining < (uint64_t)(cur->len - cur->pos) ? (size_t)w->remaining
                                                                  : cur->len - cur->pos;
    size_t n = cur_take(cur, want, &at);
    if (payload(w, at, n) != 0) return -1;
    w->remaining -= n;
    if (w->remaining == 0) {
      w->stage = WS_HEADER;
      w->hdr_len = 0;
      if (frame_done(w) != 0) return -1;
    }
  }
  return 0;
}

/* ---- the codec ---------------------------------------------------------------- */

static int ws_input(px_codec_t *c, const char *data, size_t len) {
  ws_codec_t *w = (ws_codec_t *)c;
  if (w->stage == WS_FAILED) return -1;
  ws_cursor_t cur = {(const uint8_t *)data, len, 0};
  if (parse(w, &cur) != 0) {
    c->sink->on_error(c->owner, c, PX_CODEC_STREAM0, w->error);
    return -1;
  }
  if (len > 0) c->sink->on_forward(c->owner, c, PX_CODEC_STREAM0, data, len);
  return 0;
}

static int ws_eof(px_codec_t *c) {
  ws_codec_t *w = (ws_codec_t *)c;
  if (w->stage == WS_FAILED) return -1;
  if (w->stage == WS_PAYLOAD || w->hdr_len > 0 || w->msg_opcode != 0) {
    ws_fail(w, "the connection closed in the middle of a message");
    return -1;
  }
  return 0;
}

static int ws_nothing(px_codec_t *c) {
  (void)c;
  return 0;
}

static void ws_void(px_codec_t *c) { (void)c; }

static px_codec_phase_t ws_phase(const px_codec_t *c) {
  return ((const ws_codec_t *)c)->stage == WS_FAILED ? PX_CODEC_FAILED : PX_CODEC_RAW;
}

static void ws_trim(px_codec_t *c) {
  ws_codec_t *w = (ws_codec_t *)c;
  if (w->msg_opcode != 0) return;
  free(w->msg);
  w->msg = NULL;
  w->msg_size = w->msg_len = 0;
}

static void ws_reset(px_codec_t *c) {
  ws_codec_t *w = (ws_codec_t *)c;
  free(w->msg);
  if (w->z_ready) inflateEnd(&w->z);
  const px_codec_sink_t *sink = c->sink;
  void *owner = c->owner;
  int from_client = w->from_client;
  px_ws_params_t params = w->params;
  const px_codec_ops_t *ops = c->ops;
  memset(w, 0, sizeof(*w));
  c->ops = ops;
  c->sink = sink;
  c->owner = owner;
  w->from_client = from_client;
  w->params = params;
}

static const char *ws_error(const px_codec_t *c) { return ((const ws_codec_t *)c)->error; }

static void ws_refuse(px_codec_t *c, uint32_t stream, const char *why) {
  (void)c, (void)stream, (void)why;
}

static void ws_head_view(px_codec_t *c, uint32_t stream, flt_head_t *out) {
  (void)c, (void)stream;
  memset(out, 0, sizeof(*out));
}

static flt_head_t *ws_head_copy(px_codec_t *c, uint32_t stream) {
  (void)c, (void)stream;
  return NULL;
}

static int ws_head_build(px_codec_t *c, uint32_t stream, const px_head_edit_t *e,
                         flt_strbuf_t *out) {
  (void)c, (void)stream, (void)e, (void)out;
  return -1;
}

static int ws_head_hop(px_codec_t *c, uint32_t stream) {
  (void)c, (void)stream;
  return 0;
}

static void ws_free(px_codec_t *c) {
  ws_codec_t *w = (ws_codec_t *)c;
  free(w->msg);
  if (w->z_ready) inflateEnd(&w->z);
  free(w);
}

static const px_codec_ops_t ws_ops = {
    .name = "ws",
    .input = ws_input,
    .eof = ws_eof,
    .release = ws_nothing,
    .resume = ws_nothing,
    .set_raw = ws_void,
    .phase = ws_phase,
    .trim = ws_trim,
    .reset = ws_reset,
    .error = ws_error,
    .refuse = ws_refuse,
    .head_view = ws_head_view,
    .head_copy = ws_head_copy,
    .head_build = ws_head_build,
    .head_has_hop_by_hop = ws_head_hop,
    .free = ws_free,
};

px_codec_t *px_codec_ws_new(int from_client, const px_ws_params_t *params,
                            const px_codec_sink_t *sink, void *owner) {
  ws_codec_t *w = calloc(1, sizeof(*w));
  if (w == NULL) return NULL;
  w->base.ops = &ws_ops;
  w->base.sink = sink;
  w->base.owner = owner;
  w->from_client = from_client;
  if (params) w->params = *params;
  return &w->base;
}
