/* strbuf.h — a growable byte buffer with a named hard cap. */
#ifndef TLSPEEK_STRBUF_H
#define TLSPEEK_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct flt_strbuf {
  char *data;     /* always NUL-terminated when non-NULL */
  size_t len;
  size_t alloc;
  size_t cap;     /* hard limit on len; 0 means SIZE_MAX */
  int truncated;  /* an append was cut at the cap */
} flt_strbuf_t;

void flt_strbuf_init(flt_strbuf_t *b, size_t cap);
void flt_strbuf_free(flt_strbuf_t *b);
void flt_strbuf_reset(flt_strbuf_t *b);
/* Append; returns 0, or -1 when the cap cut the data (what fit is kept) or
 * memory ran out. */
int flt_strbuf_append(flt_strbuf_t *b, const void *data, size_t len);
/* Makes room for `len` more bytes (no more than the cap allows) in one
 * allocation, so that the appends that follow do not reallocate; 0, or -1
 * when memory ran out (the buffer is unchanged). */
int flt_strbuf_reserve(flt_strbuf_t *b, size_t len);
int flt_strbuf_appendf(flt_strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int flt_strbuf_vappendf(flt_strbuf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Length of the valid UTF-8 sequence at p[0..n) (1..4), or 0 if it is
 * invalid or incomplete (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF). Shared by the console and the transcripts. */
size_t flt_utf8_seq_len(const uint8_t *p, size_t n);

/* Hands the data to the caller (who free()s it) and resets the buffer. */
char *flt_strbuf_detach(flt_strbuf_t *b, size_t *len);

#endif
