#include "filters/filter.h"

#include <string.h>
#include <strings.h>
#include <sys/time.h>

int flt_chain_add(flt_chain_t *chain, const flt_ops_t *ops, void *self) {
  if (chain->n >= FLT_MAX_FILTERS || ops == NULL ||
      ops->abi_version != FLT_ABI_VERSION)
    return -1;
  chain->filters[chain->n].ops = ops;
  chain->filters[chain->n].self = self;
  return chain->n++;
}

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
  EMIT(ch, on_response_body, f, data, len);
}
void flt_emit_flow_end(const flt_chain_t *ch, flt_flow_t *f) {
  EMIT(ch, on_flow_end, f);
}
void flt_emit_raw(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                  const uint8_t *data, size_t len) {
  EMIT(ch, on_raw, c, dir, data, len);
}
void flt_emit_error(const flt_chain_t *ch, flt_conn_t *c, const char *msg) {
  EMIT(ch, on_error, c, msg);
}
void flt_emit_conn_close(const flt_chain_t *ch, flt_conn_t *c) {
  EMIT(ch, on_conn_close, c);
}
void flt_emit_data(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                   const uint8_t *data, size_t len) {
  EMIT(ch, on_data, c, dir, data, len);
}
void flt_emit_keylog(const flt_chain_t *ch, flt_conn_t *c, const char *line) {
  EMIT(ch, on_keylog, c, line);
}
void flt_emit_tls_message(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg,
                          int sent, int content_type, int version,
                          const uint8_t *data, size_t len) {
  EMIT(ch, on_tls_message, c, leg, sent, content_type, version, data, len);
}
void flt_emit_wire(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg, int sent,
                   const uint8_t *data, size_t len) {
  EMIT(ch, on_wire, c, leg, sent, data, len);
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
