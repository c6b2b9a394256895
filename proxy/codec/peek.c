/* peek.c — the first-bytes classifier (see peek.h). */
#include "proxy/codec/peek.h"

#include <string.h>

#include "proxy/codec/h2.h"
#include "proxy/codec/http1.h"

px_peek_kind_t px_peek_classify(const uint8_t *p, size_t n) {
  if (n == 0) return PX_PEEK_NEED_MORE;
  if (p[0] == 0x16) return PX_PEEK_TLS; /* TLS record type "handshake" */
  /* RFC 9113 §3.3: prior knowledge starts with the whole preface; a prefix
   * of it waits for the rest (it would otherwise read as a request line). */
  size_t k = n < PX_H2_PREFACE_LEN ? n : PX_H2_PREFACE_LEN;
  if (memcmp(p, PX_H2_PREFACE, k) == 0) return k < PX_H2_PREFACE_LEN ? PX_PEEK_NEED_MORE : PX_PEEK_H2;
  /* HTTP or not is the request framer's own question: the sniff accepts
   * exactly what the framer will parse (empty lines first, any token
   * method), so nothing it calls raw could have been a request. */
  switch (px_http_sniff((const char *)p, n)) {
    case PX_SNIFF_MORE: return PX_PEEK_NEED_MORE;
    case PX_SNIFF_HTTP: return PX_PEEK_HTTP;
    default: return PX_PEEK_RAW;
  }
}
