/* fuzz_transcript_reader.c — libFuzzer target for the transcript reader
 * (filters/transcript/reader*.c) and `tlspeek show`'s replay of what it
 * reads through the console view (proxy/cli/show.c, filters/console/).
 *
 * Input: byte 0 picks the name the reader is given (bits 0-1: none,
 * "t.jsonl", "t.har", "t.ndjson"; it decides the format of a first line
 * that does not parse), the detail level (bit 2: 3, else 2) and whether an
 * expression with body terms chooses the flows (bit 3). The rest is the
 * file. Every flow read is replayed into a console writing to /dev/null;
 * the console's writer is flushed after each input, so that what it queued
 * is freed before libFuzzer's leak check.
 * Checks beyond the sanitizers: an error always comes with a message, and
 * a reader that failed gives nothing more.
 *
 *   make fuzz   (or: build/fuzz/fuzz_transcript_reader build/fuzz/corpus-transcript_reader
 *                    tests/fuzz/corpus/transcript_reader)
 * Corpus: tests/fuzz/corpus/transcript_reader/ (JSONL and HAR that tlspeek
 * wrote for a few flows, a browser's HAR, and broken ones).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/console/console.h"
#include "filters/expr/expr.h"
#include "filters/transcript/reader.h"
#include "filters/util/output.h"
#include "proxy/cli/show.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct view {
  void *console;
  flt_chain_t chain;
} view_t;

static view_t views[2][2]; /* [detail 3][filtered] */
static flt_expr_t *expr;

static void make_view(view_t *v, int detail, int filtered, int fd) {
  flt_console_opts_t o = {
      .detail = detail, .body_limit = 256, .color = 1, .fd = fd, .filtered = filtered};
  v->console = flt_console_new(&o);
  if (v->console == NULL) abort();
  flt_console_set_slot(v->console, flt_chain_add(&v->chain, &flt_console_ops, v->console));
}

static void init(void) {
  char err[512];
  int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fd < 0) abort();
  for (int d = 0; d < 2; d++)
    for (int f = 0; f < 2; f++)
      make_view(&views[d][f], d ? 3 : 2, f, fd);
  expr = flt_expr_compile("~bs 'a.c' | ~m GET & !~e | ~tls 1.3 | ~h gzip", FLT_EXPR_ALL_TERMS, err,
                          sizeof(err));
  if (expr == NULL) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[4] = {NULL, "t.jsonl", "t.har", "t.ndjson"};
  static int ready;
  char err[1024];

  if (!ready) {
    init();
    ready = 1;
  }
  if (size < 1) return 0;
  view_t *v = &views[(data[0] >> 2) & 1][(data[0] >> 3) & 1];
  err[0] = '\0';
  flt_reader_t *r = flt_reader_open_mem(data + 1, size - 1, names[data[0] & 3], err, sizeof(err));
  if (r == NULL) {
    if (err[0] == '\0') abort(); /* a refusal always says why */
    return 0;
  }
  err[0] = '\0';
  int rc = px_show_replay(r, &v->chain, v->console, (data[0] & 8) ? expr : NULL, err, sizeof(err));
  if (rc < 0) {
    flt_rec_flow_t *rf;
    if (err[0] == '\0' || flt_reader_next(r, &rf, err, sizeof(err)) != -1 || rf != NULL) abort();
  }
  flt_reader_free(r);
  flt_output_flush(flt_console_output(v->console));
  return 0;
}
