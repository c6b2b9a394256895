/* fuzz_replace.c — libFuzzer target for the --replace argument parser
 * (proxy/action_replace.c): each input is parsed as the option's value;
 * a rule that compiles is applied to a fixed body (not valid UTF-8 in
 * part) with a small cap. A refusal must leave one sentence in err.
 *
 *   make build/fuzz/fuzz_replace
 *   ./build/fuzz/fuzz_replace -max_len=512 tests/fuzz/corpus/replace
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/action_replace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char body[] = "{\"admin\":false,\"name\":\"ann\",\"bytes\":\"\xff\xfe\xc3\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *arg = malloc(size + 1), err[2048];
  if (arg == NULL) return 0;
  memcpy(arg, data, size);
  arg[size] = '\0';
  err[0] = '\0';
  px_replace_t *r = px_replace_parse(arg, err, sizeof(err));
  if (r == NULL) {
    if (err[0] == '\0') abort(); /* every refusal says why */
  } else {
    flt_strbuf_t out;
    flt_strbuf_init(&out, 4096);
    int n = px_replace_apply(r, body, sizeof(body) - 1, &out, err, sizeof(err));
    if (n > 0 && out.data == NULL && out.len != 0) abort();
    flt_strbuf_free(&out);
    px_replace_free(r);
  }
  free(arg);
  return 0;
}
