/* fuzz_replay_load.c — libFuzzer target for the requests `tlspeek replay`
 * makes from a transcript (proxy/replay/replay_load.c): URLs split into
 * host and port, headers filtered, the request serialised, the recorded
 * answer hashed; and the comparison printed for entries never sent
 * (replay_filter.c).
 *
 * Input: byte 0 picks the name the reader is given (bit 0: "t.har", else
 * "t.jsonl") and whether an expression chooses the entries (bit 1). The
 * rest is the file.
 * Checks beyond the sanitizers: an error comes with a message; every entry
 * either has a request that starts with its method and a Host line and
 * ends its head with Connection: close, or says why it is not sent.
 *
 *   make fuzz   (or: build/fuzz/fuzz_replay_load build/fuzz/corpus-replay_load
 *                    tests/fuzz/corpus/replay_load)
 * Corpus: tests/fuzz/corpus/replay_load/ (transcripts tlspeek and a browser
 * wrote, each after its control byte).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"
#include "filters/transcript/reader.h"
#include "proxy/replay/replay_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_items(const px_replay_t *r) {
  for (size_t i = 0; i < r->n_items; i++) {
    const px_replay_item_t *it = &r->items[i];
    if (it->request == NULL) {
      if (it->not_sent == NULL || it->not_sent[0] == '\0') abort();
      continue;
    }
    size_t m = strlen(it->method);
    if (it->request_len < m + 1 || memcmp(it->request, it->method, m) != 0) abort();
    if (strstr(it->request, "\r\nHost: ") == NULL) abort();
    if (strstr(it->request, "Connection: close\r\n\r\n") == NULL) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static flt_expr_t *expr;
  char err[512] = "";
  if (size < 1) return 0;
  if (expr == NULL) expr = flt_expr_compile("~m POST | ~b a", FLT_EXPR_ALL_TERMS, err, sizeof(err));
  flt_reader_t *rd = flt_reader_open_mem(data + 1, size - 1, data[0] & 1 ? "t.har" : "t.jsonl",
                                         err, sizeof(err));
  if (rd == NULL) {
    if (err[0] == '\0') abort();
    return 0;
  }
  err[0] = '\0';
  px_replay_t *r =
      px_replay_load_reader(rd, "t", data[0] & 2 ? expr : NULL, 1, err, sizeof(err));
  if (r == NULL) {
    if (err[0] == '\0') abort();
  } else {
    check_items(r);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
      px_replay_report(r, null);
      fclose(null);
    }
    px_replay_free(r);
  }
  flt_reader_free(rd);
  return 0;
}
