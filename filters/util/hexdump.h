/* hexdump.h — xxd-style hexdumps.
 *
 * Each line is exactly what `xxd` prints by default, e.g.
 *   00000000: 8950 4e47 0d0a 1a0a 0000 000d 4948 4452  .PNG........IHDR
 * offset (8 hex digits, from `base_offset`), ": ", 16 bytes as 8 groups of
 * 2 bytes (lower-case hex, groups separated by one space, a short last line
 * padded with spaces so the ASCII column lines up), two spaces, then the
 * bytes as ASCII with '.' for anything outside 0x20..0x7e, then "\n".
 */
#ifndef TLSPEEK_HEXDUMP_H
#define TLSPEEK_HEXDUMP_H

#include <stddef.h>
#include <stdint.h>

#include "filters/util/strbuf.h"

/* Appends the hexdump of data[0..len) to `out`. Returns 0 or -1 when `out`
 * hit its cap (what fit is kept). */
int flt_hexdump(flt_strbuf_t *out, const uint8_t *data, size_t len,
                uint64_t base_offset);
/* The same, with `prefix` (e.g. an indent) written before every line. */
int flt_hexdump_prefixed(flt_strbuf_t *out, const char *prefix,
                         const uint8_t *data, size_t len,
                         uint64_t base_offset);

#endif
