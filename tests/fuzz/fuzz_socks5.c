/* fuzz_socks5.c — libFuzzer target for the SOCKS5 parsers (proxy/modes/socks5.h),
 * the very functions proxy/modes/socks.c answers clients with.
 *
 * The input is a client's byte stream. It is walked the way socks.c walks
 * it: greeting, then (when the first input byte says so) username/password,
 * then the request; each message is parsed from a heap copy of exactly the
 * bytes that arrived so far (ASan catches any read past them), growing one
 * piece at a time, the piece sizes taken from the input itself. Checks:
 *   - a parser consumes no more than it was given;
 *   - "need more" on a prefix is never contradicted by a shorter verdict:
 *     once a message is complete or refused, more bytes do not change that;
 *   - a parsed request has a NUL-terminated host and a port other than 0,
 *     and every error has a sentence and a reply code.
 * Corpus: tests/fuzz/corpus/socks5/ (curl-style hostname, IPv4, IPv6 and
 * authenticated exchanges, and refused ones). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/modes/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { STEP_GREETING, STEP_AUTH, STEP_REQUEST, STEP_DONE };

static int parse(int step, const uint8_t *p, size_t n) {
  px_socks5_greeting_t g;
  px_socks5_auth_t a;
  px_socks5_request_t r;
  int rc;
  switch (step) {
    case STEP_GREETING:
      rc = px_socks5_parse_greeting(p, n, &g);
      if (rc > 0 && g.n_methods > 0 && g.methods + g.n_methods > p + n) abort();
      if (rc > 0) (void)px_socks5_greeting_offers(&g, PX_SOCKS5_METHOD_USERPASS);
      return rc;
    case STEP_AUTH:
      rc = px_socks5_parse_auth(p, n, &a);
      if (rc > 0) {
        if (a.user + a.user_len > p + n || a.pass + a.pass_len > p + n) abort();
        (void)px_socks5_auth_matches(&a, "alice:s3cret");
        (void)px_socks5_auth_matches(&a, "nocolon");
      }
      return rc;
    default:
      rc = px_socks5_parse_request(p, n, &r);
      if (rc > 0 && (memchr(r.host, 0, sizeof(r.host)) == NULL || r.port == 0)) abort();
      return rc;
  }
}

/* Parses one message from p[0..len), growing the view piece by piece.
 * Returns the bytes it took (> 0), 0 when the input ran out, or the error. */
static int grow(int step, const uint8_t *p, size_t len, const uint8_t *sizes, size_t n_sizes) {
  size_t have = 0, k = 0;
  int verdict = PX_SOCKS5_NEED_MORE;
  while (have < len) {
    size_t piece = n_sizes ? 1 + sizes[k++ % n_sizes] % 16 : len;
    have = piece > len - have ? len : have + piece;
    uint8_t *copy = malloc(have);
    if (copy == NULL) return 0;
    memcpy(copy, p, have);
    int rc = parse(step, copy, have);
    free(copy);
    if (rc > 0 && (size_t)rc > have) abort(); /* consumed bytes it did not have */
    if (verdict != PX_SOCKS5_NEED_MORE && rc != verdict) abort(); /* verdict changed */
    if (rc != PX_SOCKS5_NEED_MORE) {
      verdict = rc;
      if (rc < 0) {
        if (px_socks5_strerror(rc)[0] == '\0') abort();
        (void)px_socks5_reply_code(rc);
      }
      /* Keep growing a little to check the verdict holds. */
      if (have + 8 < len) len = have + 8;
    }
  }
  return verdict;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int with_auth = data[0] & 1;
  const uint8_t *sizes = data + 1;
  size_t n_sizes = data[0] >> 4; /* 0: each message at once */
  if (n_sizes > size - 1) n_sizes = size - 1;
  data += 1 + n_sizes;
  size -= 1 + n_sizes;

  size_t off = 0;
  for (int step = STEP_GREETING; step != STEP_DONE && off < size;) {
    int rc = grow(step, data + off, size - off, sizes, n_sizes);
    if (rc <= 0) break;
    off += (size_t)rc;
    step = step == STEP_GREETING ? (with_auth ? STEP_AUTH : STEP_REQUEST)
           : step == STEP_AUTH   ? STEP_REQUEST
                                 : STEP_DONE;
  }
  return 0;
}
