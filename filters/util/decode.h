/* decode.h — streaming Content-Encoding decoders for display and
 * transcripts (gzip, x-gzip, deflate (zlib or raw), br, zstd, identity,
 * and comma-separated stacks of them, applied in reverse order).
 *
 * A decoder never produces more than `out_cap` bytes; past that it stops
 * and reports truncation. Errors (corrupt data, unknown coding) are values
 * with a message, never a crash.
 */
#ifndef TLSPEEK_DECODE_H
#define TLSPEEK_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/util/strbuf.h"

typedef struct flt_decoder flt_decoder_t;

/* `encoding` is the Content-Encoding header value (NULL or "" = identity).
 * Decoded bytes are appended to `out` (whose own cap bounds the output);
 * with `out` NULL they are only counted (flt_decoder_produced).
 * Returns NULL only on out-of-memory; an unsupported coding yields a
 * decoder whose flt_decoder_error() says so. */
flt_decoder_t *flt_decoder_new(const char *encoding, size_t enc_len,
                               flt_strbuf_t *out);
/* Feeds encoded bytes. Returns 0, or -1 on a decoding error (see
 * flt_decoder_error) — later feeds are ignored. Output past the cap of
 * `out` is dropped and `out->truncated` set. */
int flt_decoder_feed(flt_decoder_t *d, const uint8_t *data, size_t len);
/* End of input: reports a truncated stream as an error. */
int flt_decoder_finish(flt_decoder_t *d);
/* The reason, e.g. "incorrect header check" or "unsupported coding";
 * NULL if none. */
const char *flt_decoder_error(const flt_decoder_t *d);
/* The coding the error is about ("gzip", "br", or the unsupported token as
 * sent); NULL if no error. */
const char *flt_decoder_error_coding(const flt_decoder_t *d);
/* Non-zero once `out` hit its cap: the rest of the input was not decoded. */
int flt_decoder_stopped(const flt_decoder_t *d);
/* Decoded bytes produced so far (those past the cap of `out` included,
 * until it stopped). */
uint64_t flt_decoder_produced(const flt_decoder_t *d);
void flt_decoder_free(flt_decoder_t *d);

#endif
