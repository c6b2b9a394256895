/* peek.c — the first-bytes classifier (see peek.h). */
#include "proxy/peek.h"

px_peek_kind_t px_peek_classify(const uint8_t *p, size_t n) {
  size_t i = 0;
  if (n == 0) return PX_PEEK_NEED_MORE;
  if (p[0] == 0x16) return PX_PEEK_TLS; /* TLS record type "handshake" */
  /* Count the method's letters, one past the longest allowed so that a
   * too-long token is seen as such. */
  while (i < n && i <= PX_PEEK_MAX_METHOD && p[i] >= 'A' && p[i] <= 'Z') i++;
  if (i == n && n <= PX_PEEK_MAX_METHOD) return PX_PEEK_NEED_MORE;
  if (i >= 3 && i <= PX_PEEK_MAX_METHOD && i < n && p[i] == ' ') return PX_PEEK_HTTP;
  return PX_PEEK_RAW;
}
