/* libFuzzer target for the console's gRPC body view (filters/console/console_grpc.c):
 * arbitrary bytes as a gRPC body, whole and as if cut at the body limit;
 * the length-prefixed framing and the schema-less protobuf wire-format
 * decoder (nested messages, varints, fixed32/64) must stay within them. */
#include <stdint.h>
#include <stdlib.h>

#include "filters/console/console_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  flt_strbuf_t out;
  flt_strbuf_init(&out, 64u << 20);
  flt_con_render_grpc(&out, data, size, 0);
  flt_strbuf_reset(&out);
  flt_con_render_grpc(&out, data, size / 2, 1);
  flt_strbuf_free(&out);
  return 0;
}
