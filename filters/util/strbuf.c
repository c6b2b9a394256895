#include "filters/util/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void flt_strbuf_init(flt_strbuf_t *b, size_t cap) {
  memset(b, 0, sizeof(*b));
  b->cap = cap;
}

void flt_strbuf_free(flt_strbuf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
  b->truncated = 0;
}

void flt_strbuf_reset(flt_strbuf_t *b) {
  /* Keeps the allocation: a reset buffer is usually refilled soon. */
  b->len = 0;
  b->truncated = 0;
  if (b->data) b->data[0] = '\0';
}

static size_t strbuf_cap(const flt_strbuf_t *b) {
  return b->cap ? b->cap : SIZE_MAX - 1;
}

/* Makes room for `want` more bytes plus the NUL; `want` is already clamped
 * to the cap by the caller. Grows geometrically so that many small appends
 * stay linear, but never allocates past cap + 1. */
static int strbuf_reserve(flt_strbuf_t *b, size_t want) {
  size_t need = b->len + want + 1;
  size_t limit = strbuf_cap(b) + 1;
  size_t n;
  char *p;

  if (need <= b->alloc) return 0;
  n = b->alloc ? b->alloc : 64;
  while (n < need) n = n > SIZE_MAX / 2 ? SIZE_MAX : n * 2;
  if (n > limit) n = limit;
  p = realloc(b->data, n);
  if (p == NULL) return -1;
  b->data = p;
  b->alloc = n;
  return 0;
}

int flt_strbuf_reserve(flt_strbuf_t *b, size_t len) {
  size_t room = strbuf_cap(b) - b->len;
  size_t n = len < room ? len : room;
  size_t need = b->len + n + 1;
  char *p;

  if (need <= b->alloc) return 0;
  p = realloc(b->data, need);
  if (p == NULL) return -1;
  if (b->data == NULL) p[0] = '\0';
  b->data = p;
  b->alloc = need;
  return 0;
}

int flt_strbuf_append(flt_strbuf_t *b, const void *data, size_t len) {
  size_t room = strbuf_cap(b) - b->len;
  size_t n = len < room ? len : room;

  if (strbuf_reserve(b, n) < 0) {
    b->truncated = 1;
    return -1;
  }
  if (n) memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  if (n < len) {
    b->truncated = 1;
    return -1;
  }
  return 0;
}

int flt_strbuf_vappendf(flt_strbuf_t *b, const char *fmt, va_list ap) {
  size_t room = strbuf_cap(b) - b->len;
  size_t spare = b->alloc > b->len ? b->alloc - b->len : 0;
  size_t want, n;
  va_list ap2;
  int r;

  /* First try: format straight into the spare space, which is enough for
   * almost every call once the buffer has grown a little. */
  va_copy(ap2, ap);
  r = vsnprintf(spare ? b->data + b->len : NULL, spare, fmt, ap2);
  va_end(ap2);
  if (r < 0) return -1;
  want = (size_t)r;
  n = want < room ? want : room;
  if (want >= spare) {
    if (strbuf_reserve(b, n) < 0) {
      if (spare) b->data[b->len] = '\0'; /* undo the first try */
      b->truncated = 1;
      return -1;
    }
    /* vsnprintf writes n bytes and the NUL, cutting the rest at the cap. */
    va_copy(ap2, ap);
    vsnprintf(b->data + b->len, n + 1, fmt, ap2);
    va_end(ap2);
  }
  b->len += n;
  b->data[b->len] = '\0';
  if (n < want) {
    b->truncated = 1;
    return -1;
  }
  return 0;
}

int flt_strbuf_appendf(flt_strbuf_t *b, const char *fmt, ...) {
  va_list ap;
  int r;

  va_start(ap, fmt);
  r = flt_strbuf_vappendf(b, fmt, ap);
  va_end(ap);
  return r;
}

char *flt_strbuf_detach(flt_strbuf_t *b, size_t *len) {
  char *p = b->data;
  size_t n = b->len;

  /* An empty buffer still hands out a real string, so that NULL can only
   * mean out of memory. */
  if (p == NULL) {
    p = malloc(1);
    if (p) p[0] = '\0';
  }
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
  b->truncated = 0;
  if (len) *len = n;
  return p;
}
