/* fuzz_wire_split.c — libFuzzer target for the Wire tab's record splitter
 * (filters/web/wire_split.h), which reads what peers send before any TLS
 * library has checked it.
 *
 * Input: byte 0 says whether the leg is known to be TLS (bit 0); then
 * chunks, each a length byte (the read's size, 0 meaning 1) and that many
 * stream bytes, so records span reads and reads hold several records.
 * Checked: every entry's first bytes fit and do not exceed its length, a
 * record's length stays within the TLS maximum, and the bytes of whole
 * records add up to what was fed.
 * Corpus: tests/fuzz/corpus/wire_split/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "filters/tls/tlsparse.h"
#include "filters/web/wire_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally {
  uint64_t record_bytes;
} tally_t;

static void entry(void *ud, uint8_t kind, uint32_t len, const uint8_t *head, size_t head_len) {
  tally_t *t = ud;
  if (head_len > FLT_WEB_WIRE_HEX || head_len > len || head == NULL) abort();
  if (kind != WEB_KIND_PLAIN && kind != WEB_KIND_UNPARSED) {
    if (kind < FLT_TLS_CT_CHANGE_CIPHER_SPEC || kind > FLT_TLS_CT_HEARTBEAT) abort();
    if (len < 5 || len > 5 + FLT_TLS_MAX_RECORD) abort();
    if (head_len < (len < FLT_WEB_WIRE_HEX ? len : FLT_WEB_WIRE_HEX)) abort();
    t->record_bytes += len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  web_split_t sp = {0};
  tally_t t = {0};
  uint64_t fed = 0;
  int tls;

  if (size < 1) return 0;
  tls = data[0] & 1;
  size_t i = 1;
  while (i < size) {
    size_t n = data[i++];
    if (n == 0) n = 1;
    if (n > size - i) n = size - i;
    web_split_feed(&sp, data + i, n, tls, entry, &t);
    fed += n;
    i += n;
  }
  /* Records counted at their entry may still be in progress; never more
   * than what was fed plus the rest of the one in progress. */
  if (!sp.lost && sp.total == 0 && sp.head_len == 0 && sp.records > 0 && t.record_bytes > fed)
    abort();
  return 0;
}
