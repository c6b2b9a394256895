#include "filters/filter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "filters/util/decode.h"
#include "filters/expr/expr.h"
#include "filters/util/strbuf.h"

int flt_chain_add(flt_chain_t *chain, const flt_ops_t *ops, void *self) {
  if (chain->n >= FLT_MAX_FILTERS || ops == NULL || ops->abi_version < FLT_ABI_MIN_VERSION ||
      ops->abi_version > FLT_ABI_VERSION)
    return -1;
  chain->filters[chain->n].ops = ops;
  chain->filters[chain->n].self = self;
  return chain->n++;
}

/* Bodies kept for body terms: one per direction, capped. */
typedef struct chain_flow {
  flt_strbuf_t body[2];
} chain_flow_t;

void flt_chain_set_expr(flt_chain_t *chain, int slot, struct flt_expr *e, size_t body_cap) {
  if (slot < 0 || slot >= FLT_MAX_FILTERS) return;
  flt_expr_free(chain->exprs[slot]);
  chain->exprs[slot] = e;
  if (e && flt_expr_needs_body(e)) {
    chain->need_body = 1;
    if (body_cap > chain->body_cap) chain->body_cap = body_cap;
  }
}

void flt_chain_free(flt_chain_t *chain) {
  for (int i = 0; i < FLT_MAX_FILTERS; i++) {
    flt_expr_free(chain->exprs[i]);
    chain->exprs[i] = NULL;
  }
}

void flt_flow_tag(flt_flow_t *f, const char *tag) {
  size_t have = strlen(f->tags), add = strlen(tag);
  if (have + add + 2 > sizeof(f->tags)) return; /* full: the tag is dropped */
  if (have) f->tags[have++] = ' ';
  memcpy(f->tags + have, tag, add + 1);
}

void flt_flow_action(flt_flow_t *f, const char *tag, const char *fmt, ...) {
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  int len = vsnprintf(NULL, 0, fmt, ap); /* the whole detail: a long URL is kept */
  va_end(ap);
  flt_flow_tag(f, tag);
  size_t have = f->actions ? strlen(f->actions) : 0, head = strlen(tag) + 2;
  char *n = len < 0 ? NULL : realloc(f->actions, have + 1 + head + (size_t)len + 1);
  if (n != NULL) { /* else the tag alone says which action ran */
    if (have) n[have++] = '\n';
    memcpy(n + have, tag, head - 2);
    memcpy(n + have + head - 2, ": ", 2);
    vsnprintf(n + have + head, (size_t)len + 1, fmt, again);
    f->actions = n;
  }
  va_end(again);
}

static void keep_body(const flt_chain_t *ch, flt_flow_t *f, int dir, const uint8_t *data,
                      size_t len) {
  chain_flow_t *cf = f->chain_ctx;
  if (!ch->need_body) return;
  if (cf == NULL) {
    cf = calloc(1, sizeof(*cf));
    if (cf == NULL) return;
    flt_strbuf_init(&cf->body[0], ch->body_cap);
    flt_strbuf_init(&cf->body[1], ch->body_cap);
    f->chain_ctx = cf;
  }
  flt_strbuf_append(&cf->body[dir], data, len); /* past the cap: cut */
}

/* The body as the user reads it: Content-Encoding removed, within the cap. */
static void decode_body(const flt_chain_t *ch, const flt_head_t *h, const flt_strbuf_t *raw,
                        flt_strbuf_t *out) {
  const flt_header_t *ce = flt_head_find(h, "content-encoding");
  flt_strbuf_init(out, ch->body_cap);
  if (raw->len == 0) return;
  if (ce == NULL || ce->value_len == 0) {
    flt_strbuf_append(out, raw->data, raw->len);
    return;
  }
  flt_decoder_t *d = flt_decoder_new(ce->value, ce->value_len, out);
  if (d == NULL) return;
  if (flt_decoder_feed(d, (const uint8_t *)raw->data, raw->len) == 0 && !raw->truncated)
    flt_decoder_finish(d);
  flt_decoder_free(d);
}

/* Decides f->hidden from each filter's expression. */
static void decide_flow(const flt_chain_t *ch, flt_flow_t *f) {
  chain_flow_t *cf = f->chain_ctx;
  flt_strbuf_t dec[2];
  flt_expr_bodies_t bodies = {0};
  int decoded = 0;
  for (int i = 0; i < ch->n; i++) {
    if (ch->exprs[i] == NULL) continue;
    if (cf && !decoded && flt_expr_needs_body(ch->exprs[i])) {
      decode_body(ch, &f->req, &cf->body[0], &dec[0]);
      decode_body(ch, &f->resp, &cf->body[1], &dec[1]);
      bodies.req = (const uint8_t *)dec[0].data;
      bodies.req_len = dec[0].len;
      bodies.resp = f->has_response ? (const uint8_t *)dec[1].data : NULL;
      bodies.resp_len = f->has_response ? dec[1].len : 0;
      decoded = 1;
    }
    if (!flt_expr_match_flow(ch->exprs[i], f, decoded ? &bodies : NULL))
      f->hidden |= 1u << i;
  }
  if (decoded) {
    flt_strbuf_free(&dec[0]);
    flt_strbuf_free(&dec[1]);
  }
}

/* Connection-level decision, made once, when the target is known. */
static void decide_conn(const flt_chain_t *ch, flt_conn_t *c) {
  if (c->hidden_decided || !c->match_ready) return; /* until then: visible */
  c->hidden_decided = 1;
  for (int i = 0; i < ch->n; i++)
    if (ch->exprs[i] && !flt_expr_match_conn(ch->exprs[i], c)) c->hidden |= 1u << i;
}

/* Like EMIT, for connection-level byte events: skips hidden filters. */
#define EMIT_CONN(ch, c, cb, ...)                                                    \
  do {                                                                               \
    decide_conn((ch), (c));                                                          \
    for (int i_ = 0; i_ < (ch)->n; i_++) {                                           \
      const flt_filter_t *f_ = &(ch)->filters[i_];                                   \
      if (f_->ops->cb && !((c)->hidden & (1u << i_))) f_->ops->cb(f_->self, __VA_ARGS__); \
    }                                                                                \
  } while (0)

/* Calls `cb` of every filter that implements it, in order. */
#define EMIT(ch, cb, ...)                                   \
  do {                                                      \
    for (int i_ = 0; i_ < (ch)->n; i_++) {                  \
      const flt_filter_t *f_ = &(ch)->filters[i_];          \
      if (f_->ops->cb) f_->ops->cb(f_->self, __VA_ARGS__);  \
    }                                                       \
  } while (0)

void flt_emit_conn_open(const flt_chain_t *ch, flt_conn_t *c) {
  EMIT(ch, on_conn_open, c);
}
void flt_emit_tls_established(const flt_chain_t *ch, flt_conn_t *c) {
  EMIT(ch, on_tls_established, c);
}
void flt_emit_request_head(const flt_chain_t *ch, flt_flow_t *f) {
  EMIT(ch, on_request_head, f);
}
void flt_emit_request_body(const flt_chain_t *ch, flt_flow_t *f,
                           const uint8_t *data, size_t len) {
  keep_body(ch, f, 0, data, len);
  EMIT(ch, on_request_body, f, data, len);
}
void flt_emit_request_end(const flt_chain_t *ch, flt_flow_t *f) {
  EMIT(ch, on_request_end, f);
}
void flt_emit_response_head(const flt_chain_t *ch, flt_flow_t *f) {
  EMIT(ch, on_response_head, f);
}
void flt_emit_response_body(const flt_chain_t *ch, flt_flow_t *f,
                            const uint8_t *data, size_t len) {
  keep_body(ch, f, 1, data, len);
  EMIT(ch, on_response_body, f, data, len);
}
void flt_emit_flow_end(const flt_chain_t *ch, flt_flow_t *f) {
  decide_flow(ch, f);
  EMIT(ch, on_flow_end, f);
  chain_flow_t *cf = f->chain_ctx;
  if (cf) {
    flt_strbuf_free(&cf->body[0]);
    flt_strbuf_free(&cf->body[1]);
    free(cf);
    f->chain_ctx = NULL;
  }
}
/* ABI 2 events: a v1 filter's ops end before these members. */
#define EMIT_V2(ch, cb, ...)                                                        \
  do {                                                                              \
    for (int i_ = 0; i_ < (ch)->n; i_++) {                                          \
      const flt_filter_t *f_ = &(ch)->filters[i_];                                  \
      if (f_->ops->abi_version >= 2 && f_->ops->cb) f_->ops->cb(f_->self, __VA_ARGS__); \
    }                                                                               \
  } while (0)

void flt_emit_body_complete(const flt_chain_t *ch, flt_flow_t *f, flt_dir_t dir,
                            const uint8_t *data, size_t len) {
  EMIT_V2(ch, on_body_complete, f, dir, data, len);
}
void flt_emit_client_hello(const flt_chain_t *ch, flt_conn_t *c) {
  EMIT_V2(ch, on_client_hello, c);
}
void flt_emit_raw(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                  const uint8_t *data, size_t len) {
  EMIT_CONN(ch, c, on_raw, c, dir, data, len);
}
/* Errors and the close reach every filter; c->hidden is decided first (when
 * the target is known) so that views can hide those of other hosts. */
void flt_emit_error(const flt_chain_t *ch, flt_conn_t *c, const char *msg) {
  if (c) decide_conn(ch, c);
  EMIT(ch, on_error, c, msg);
}
void flt_emit_conn_close(const flt_chain_t *ch, flt_conn_t *c) {
  decide_conn(ch, c);
  EMIT(ch, on_conn_close, c);
}
void flt_emit_data(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                   const uint8_t *data, size_t len) {
  EMIT_CONN(ch, c, on_data, c, dir, data, len);
}
void flt_emit_keylog(const flt_chain_t *ch, flt_conn_t *c, const char *line) {
  EMIT_CONN(ch, c, on_keylog, c, line);
}
void flt_emit_tls_message(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg,
                          int sent, int content_type, int version,
                          const uint8_t *data, size_t len) {
  EMIT_CONN(ch, c, on_tls_message, c, leg, sent, content_type, version, data, len);
}
void flt_emit_wire(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg, int sent,
                   const uint8_t *data, size_t len) {
  EMIT_CONN(ch, c, on_wire, c, leg, sent, data, len);
}
/* Text and binary messages are kept for body terms like a body of their
 * direction: an expression sees what was said, not the control frames. */
void flt_emit_ws_message(const flt_chain_t *ch, flt_flow_t *f, flt_dir_t dir, int opcode,
                         const uint8_t *data, size_t len) {
  if ((opcode == FLT_WS_TEXT || opcode == FLT_WS_BINARY) && (dir == 0 || dir == 1))
    keep_body(ch, f, dir, data, len);
  EMIT_V2(ch, on_ws_message, f, dir, opcode, data, len);
}
void flt_emit_shutdown(const flt_chain_t *ch) {
  for (int i = 0; i < ch->n; i++) {
    const flt_filter_t *f = &ch->filters[i];
    if (f->ops->on_shutdown) f->ops->on_shutdown(f->self);
  }
}

const flt_header_t *flt_head_find(const flt_head_t *h, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    if (hd->name_len == len && strncasecmp(hd->name, name, len) == 0)
      return hd;
  }
  return NULL;
}

uint64_t flt_now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}
