/* fuzz_proxyauth.c — libFuzzer target for the --proxyauth checks
 * (proxy/modes/proxyauth.c): each input is a Proxy-Authorization value given to
 * px_proxyauth_basic_ok, split into a SOCKS5 user/password pair for
 * px_proxyauth_pair_ok, and masked as wire bytes by px_proxyauth_mask. Only
 * the real credentials may be accepted; nothing may read out of bounds.
 *
 *   make build/fuzz/fuzz_proxyauth
 *   build/fuzz/fuzz_proxyauth -max_len=2048 tests/fuzz/corpus/proxyauth
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/modes/proxyauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char expect[] = "alice:s3cret";
static const char right[] = "Basic YWxpY2U6czNjcmV0";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so ASan sees a read one byte past the end. */
  char *v = malloc(size ? size : 1);
  if (v == NULL) return 0;
  memcpy(v, data, size);
  int ok = px_proxyauth_basic_ok(expect, v, size);
  /* Accepted values are the right one, give or take blanks and case. */
  if (ok && (size < sizeof(right) - 1 || memmem(v, size, "YWxpY2U6czNjcmV0", 16) == NULL))
    abort();
  size_t cut = size ? data[0] % (size + 1) : 0;
  if (px_proxyauth_pair_ok(expect, data, cut, data + cut, size - cut) &&
      !(cut == 5 && size == 11 && memcmp(data, "alices3cret", 11) == 0))
    abort();
  px_proxyauth_mask(v, size);
  free(v);
  return 0;
}
