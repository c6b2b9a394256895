#include "filters/util/hexdump.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Width of the hex column of a full line: 8 groups of 4 digits and the 7
 * spaces between them. Short lines are padded to it, as xxd does. */
#define HEX_COLUMN 39

int flt_hexdump(flt_strbuf_t *out, const uint8_t *data, size_t len,
                uint64_t base_offset) {
  return flt_hexdump_prefixed(out, "", data, len, base_offset);
}

/* Formats one line of up to 16 bytes into `line` (no prefix, with "\n").
 * Returns its length. */
static size_t hexdump_line(char *line, size_t size, const uint8_t *p,
                           size_t n, uint64_t offset) {
  static const char digits[] = "0123456789abcdef";
  size_t pos = (size_t)snprintf(line, size, "%08" PRIx64 ": ", offset);
  size_t hex_start = pos;

  for (size_t i = 0; i < n; i++) {
    if (i > 0 && i % 2 == 0) line[pos++] = ' ';
    line[pos++] = digits[p[i] >> 4];
    line[pos++] = digits[p[i] & 0x0f];
  }
  while (pos < hex_start + HEX_COLUMN) line[pos++] = ' ';
  line[pos++] = ' ';
  line[pos++] = ' ';
  for (size_t i = 0; i < n; i++)
    line[pos++] = (p[i] >= 0x20 && p[i] <= 0x7e) ? (char)p[i] : '.';
  line[pos++] = '\n';
  return pos;
}

int flt_hexdump_prefixed(flt_strbuf_t *out, const char *prefix,
                         const uint8_t *data, size_t len,
                         uint64_t base_offset) {
  /* 16 offset digits at most, ": ", hex column, 2 spaces, 16 chars, "\n". */
  char line[16 + 2 + HEX_COLUMN + 2 + 16 + 1 + 1];
  size_t plen = strlen(prefix);

  for (size_t off = 0; off < len; off += 16) {
    size_t n = len - off < 16 ? len - off : 16;
    size_t ll = hexdump_line(line, sizeof(line), data + off, n,
                             base_offset + off);
    if (plen && flt_strbuf_append(out, prefix, plen) < 0) return -1;
    if (flt_strbuf_append(out, line, ll) < 0) return -1;
  }
  return 0;
}
