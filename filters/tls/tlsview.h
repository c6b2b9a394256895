/* tlsview.h — show what encryption hides: TLS handshake dissection of both
 * legs (client <-> tlspeek, tlspeek <-> upstream), JA3/JA4/JA3S, the wire
 * view (records as a sniffer sees them beside the plaintext they carried)
 * and --explain's teaching notes numbered as the seed numbers the steps:
 *   1 ClientHello, 2 ServerHello, 3 Certificate, 4 ServerKeyExchange,
 *   5 ServerHelloDone, 6 ClientKeyExchange, 7 ChangeCipherSpec,
 *   8 Finished, 9 Application Data.
 * Console output on stdout, through the console's writer so that blocks of
 * different connections never interleave. */
#ifndef TLSPEEK_TLSVIEW_H
#define TLSPEEK_TLSVIEW_H

#include <stddef.h>

#include "filters/filter.h"
#include "filters/util/output.h"

typedef struct flt_tlsview_opts {
  int handshake;      /* --handshake (or detail 4) */
  int wire;           /* --wire (or detail 4) */
  size_t wire_limit;  /* ciphertext bytes hexdumped per record (default 64) */
  int explain;        /* --explain */
  int color;          /* resolved: 0 or 1 */
  flt_output_t *out;  /* where blocks go (the console's writer) */
} flt_tlsview_opts_t;

extern const flt_ops_t flt_tlsview_ops;
void *flt_tlsview_new(const flt_tlsview_opts_t *opts);
void flt_tlsview_set_slot(void *self, int slot);
void flt_tlsview_free(void *self);

#endif
