/* fuzz_peek.c — libFuzzer target for the first-bytes classifier
 * (proxy/codec/peek.h) that proxy/session.c uses to tell a TLS ClientHello from
 * plain HTTP from a raw protocol.
 *
 * The first input byte seeds the read sizes; the rest is the connection's
 * first bytes, delivered in pieces as separate reads would deliver them.
 * After each piece the classifier sees a heap copy of exactly what arrived
 * so far (ASan catches a read past it). Checks:
 *   - the verdict, once given, never changes as more bytes arrive;
 *   - it equals the verdict on the whole input at once (split-independent);
 *   - NEED_MORE only while at most PX_PEEK_MAX_UNDECIDED bytes arrived;
 *   - TLS exactly when the first byte is 0x16; HTTP only for optional empty
 *     lines, then a token method of 1..PX_HTTP_MAX_METHOD bytes, then a space.
 * Corpus: tests/fuzz/corpus/peek/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/peek.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_peek_kind_t classify_copy(const uint8_t *p, size_t n) {
  uint8_t *copy = malloc(n ? n : 1);
  if (copy == NULL) abort();
  memcpy(copy, p, n);
  px_peek_kind_t k = px_peek_classify(copy, n);
  free(copy);
  return k;
}

static void check_meaning(const uint8_t *p, size_t n, px_peek_kind_t k) {
  if (k == PX_PEEK_NEED_MORE) {
    if (n > PX_PEEK_MAX_UNDECIDED) abort();
    return;
  }
  if ((k == PX_PEEK_TLS) != (p[0] == 0x16)) abort();
  if (k == PX_PEEK_HTTP) {
    size_t i = 0, start;
    while (i < n && (p[i] == '\r' || p[i] == '\n')) i++;
    start = i;
    while (i < n && px_http_is_tchar(p[i])) i++;
    if (i == start || i - start > PX_HTTP_MAX_METHOD || i >= n || p[i] != ' ') abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint32_t seed = data[0];
  data++;
  size--;

  px_peek_kind_t whole = classify_copy(data, size);
  check_meaning(data, size, whole);

  px_peek_kind_t verdict = PX_PEEK_NEED_MORE;
  size_t have = 0;
  while (have < size) {
    seed = seed * 1103515245u + 12345u;
    size_t piece = 1 + (seed >> 16) % 8;
    have = piece > size - have ? size : have + piece;
    px_peek_kind_t k = classify_copy(data, have);
    check_meaning(data, have, k);
    if (verdict != PX_PEEK_NEED_MORE && k != verdict) abort(); /* changed its mind */
    if (k != PX_PEEK_NEED_MORE && verdict == PX_PEEK_NEED_MORE) {
      verdict = k;
      /* Keep growing for a while to see it hold, then skip to the end:
       * the whole-input verdict below closes the range. */
      if (size - have > 64) size = have + 64;
    }
  }
  if (verdict != whole) abort(); /* depends on the split */
  return 0;
}
