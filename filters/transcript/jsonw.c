/* jsonw.c — the JSON writer HAR and JSON lines format entries with
 * (transcript_internal.h, tr_jw_t).
 *
 * Why not cJSON: building a tree for every flow (an allocation per node,
 * per key and per string, a copy of every header to make it valid UTF-8,
 * then a print that escapes and copies it all again, then a free per node)
 * cost more than the proxying of the flow itself. The writer appends the
 * text at once to one buffer that lives as long as the file, and escapes
 * each string in the same pass that makes it valid UTF-8.
 *
 * The text is what cJSON_PrintUnformatted printed for the same entries (the
 * unit tests parse every entry and check that cJSON prints it back byte for
 * byte): no white space; strings escaped as cJSON escapes them ('"', '\\',
 * \b \f \n \r \t by name, other bytes below 0x20 as \u00xx, everything else
 * as it is); numbers as cJSON prints a double (tr_jw_num).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "filters/transcript/transcript_internal.h"

/* A batch past this keeps its buffer for the next one no longer. */
#define JW_KEEP_MAX ((size_t)16 << 20)

void tr_jw_init(tr_jw_t *w) {
  memset(w, 0, sizeof(*w));
}

void tr_jw_reset(tr_jw_t *w) {
  if (w->alloc > JW_KEEP_MAX) {
    free(w->buf);
    w->buf = NULL;
    w->alloc = 0;
  }
  w->len = 0;
  w->n_holes = 0;
  w->hole_bytes = 0;
  w->oom = 0;
}

void tr_jw_free(tr_jw_t *w) {
  free(w->buf);
  free(w->holes);
  free(w->iov);
  memset(w, 0, sizeof(*w));
}

/* Grows the buffer for `n` more bytes; 0, or -1 (and oom set). */
static int jw_grow(tr_jw_t *w, size_t n) {
  size_t need, a;
  char *p;

  if (w->oom) return -1;
  if (n > SIZE_MAX / 2 - w->len) goto oom;
  need = w->len + n;
  a = w->alloc ? w->alloc : 4096;
  while (a < need)
    a *= 2;
  p = realloc(w->buf, a);
  if (p == NULL) goto oom;
  w->buf = p;
  w->alloc = a;
  return 0;
oom:
  w->oom = 1;
  return -1;
}

/* Room for `n` more bytes; 0, or -1 (and oom set) when out of memory. */
static inline int jw_room(tr_jw_t *w, size_t n) {
  if (w->alloc - w->len >= n && !w->oom) return 0;
  return jw_grow(w, n);
}

void tr_jw_raw(tr_jw_t *w, const char *s, size_t n) {
  if (jw_room(w, n) < 0) return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

/* A ',' unless this is the first member or element (or a new top-level
 * value: at the start, or after a '\n', which JSON text of ours only has
 * between values), then "key": */
static void jw_key(tr_jw_t *w, const char *key, size_t klen) {
  char *o;

  if (jw_room(w, klen + 4) < 0) return;
  o = w->buf + w->len;
  if (w->len && o[-1] != '{' && o[-1] != '[' && o[-1] != '\n') *o++ = ',';
  if (key) {
    *o++ = '"';
    memcpy(o, key, klen);
    o += klen;
    *o++ = '"';
    *o++ = ':';
  }
  w->len = (size_t)(o - w->buf);
}

void tr_jw_kopen(tr_jw_t *w, const char *key, size_t klen, char bracket) {
  jw_key(w, key, klen);
  tr_jw_raw(w, &bracket, 1);
}



void tr_jw_kbytes(tr_jw_t *w, const char *key, size_t klen, const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)(s ? s : ""), *end;
  char *o;

  if (s == NULL) len = 0;
  jw_key(w, key, klen);
  /* At most 6 bytes out per byte in (\u00xx), plus the quotes. */
  if (len > (SIZE_MAX - 2) / 6 || jw_room(w, len * 6 + 2) < 0) {
    w->oom = 1;
    return;
  }
  o = w->buf + w->len;
  end = p + len;
  *o++ = '"';
  while (p < end) {
    const uint8_t *run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
      p++;
    if (p > run) { /* printable ASCII: most of every string */
      memcpy(o, run, (size_t)(p - run));
      o += p - run;
      if (p == end) break;
    }
    uint8_t c = *p;
    if (c >= 0x80) {
      size_t n = flt_utf8_seq_len(p, (size_t)(end - p));
      if (n) { /* valid UTF-8: as it is */
        memcpy(o, p, n);
        o += n;
        p += n;
      } else { /* ISO-8859-1 maps byte for byte onto U+0080..U+00FF */
        *o++ = (char)(0xc0 | (c >> 6));
        *o++ = (char)(0x80 | (c & 0x3f));
        p++;
      }
      continue;
    }
    p++;
    if (c == 0) { /* U+FFFD: a JSON string from a C string has no NUL */
      memcpy(o, "\xef\xbf\xbd", 3);
      o += 3;
      continue;
    }
    o = tr_json_escape_byte(o, c);
  }
  *o++ = '"';
  w->len = (size_t)(o - w->buf);
}

void tr_jw_klit(tr_jw_t *w, const char *key, size_t klen, const char *literal, size_t len) {
  jw_key(w, key, klen);
  tr_jw_raw(w, literal, len);
}

/* Decimal digits of v, into the end of buf[24]; returns the first. */
static char *jw_digits(char *end, unsigned long long v) {
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return end;
}

/* cJSON's compare_double: equal within a relative DBL_EPSILON. */
static int jw_same(double a, double b) {
  double max = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
  return fabs(a - b) <= max * 2.2204460492503131e-16;
}

/* cJSON prints a number that equals its int conversion with "%d", others
 * with "%1.15g", or "%1.17g" when that does not read back as the same
 * value (within cJSON's tolerance). The common cases are done without
 * printf: integers, and milliseconds with microsecond precision, or sums of
 * them: a d within that tolerance of k / 1000.0, the double nearest to the
 * decimal k/1000 — for those "%1.15g" prints exactly k/1000 (at most 15
 * significant digits, and d is much closer to it than half a unit in the
 * 15th), which reads back as k / 1000.0, close enough for cJSON. */
void tr_jw_knum(tr_jw_t *w, const char *key, size_t klen, double d) {
  char buf[40], *e = buf + sizeof(buf), *b;
  long long k;

  jw_key(w, key, klen);
  if (isnan(d) || isinf(d)) {
    tr_jw_raw(w, "null", 4);
    return;
  }
  if (d >= -2147483648.0 && d <= 2147483647.0 && d == (double)(int)d) {
    int v = (int)d;
    b = jw_digits(e, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
    if (v < 0) *--b = '-';
    tr_jw_raw(w, b, (size_t)(e - b));
    return;
  }
  if (fabs(d) < 1e12 && (k = (long long)(d * 1000.0 + (d < 0 ? -0.5 : 0.5)),
                         jw_same(d, (double)k / 1000.0))) {
    unsigned long long a = k < 0 ? 0ull - (unsigned long long)k : (unsigned long long)k;
    unsigned frac = (unsigned)(a % 1000);
    int nf = 3;
    if (frac) { /* else an integer beyond int: digits only, as %1.15g */
      while (frac % 10 == 0) {
        frac /= 10;
        nf--;
      }
      for (int i = 0; i < nf; i++, frac /= 10)
        *--e = (char)('0' + frac % 10);
      *--e = '.';
    }
    b = jw_digits(e, a / 1000);
    if (k < 0) *--b = '-';
    tr_jw_raw(w, b, (size_t)(buf + sizeof(buf) - b));
    return;
  }
  int n = snprintf(buf, sizeof(buf), "%1.15g", d);
  if (!jw_same(strtod(buf, NULL), d)) n = snprintf(buf, sizeof(buf), "%1.17g", d);
  tr_jw_raw(w, buf, (size_t)n);
}

void tr_jw_kbody(tr_jw_t *w, const char *key, size_t klen, const tr_body_t *b) {
  jw_key(w, key, klen);
  if (b->json_len <= TR_JW_INLINE_MAX) {
    if (jw_room(w, b->json_len + 2) < 0) return;
    w->buf[w->len++] = '"';
    memcpy(w->buf + w->len, b->json, b->json_len);
    w->len += b->json_len;
    w->buf[w->len++] = '"';
    return;
  }
  /* Large: written from where it is (tr_jw_iov). */
  if (w->n_holes == w->holes_alloc) {
    size_t n = w->holes_alloc ? w->holes_alloc * 2 : 16;
    tr_jw_hole_t *h = realloc(w->holes, n * sizeof(*h));
    if (h == NULL) {
      w->oom = 1;
      return;
    }
    w->holes = h;
    w->holes_alloc = n;
  }
  tr_jw_raw(w, "\"", 1);
  if (w->oom) return;
  w->holes[w->n_holes++] = (tr_jw_hole_t){.off = w->len, .data = b->json, .len = b->json_len};
  w->hole_bytes += b->json_len;
  tr_jw_raw(w, "\"", 1);
}

void tr_jw_mark(const tr_jw_t *w, tr_jw_mark_t *m) {
  m->len = w->len;
  m->n_holes = w->n_holes;
  m->hole_bytes = w->hole_bytes;
}

void tr_jw_rewind(tr_jw_t *w, const tr_jw_mark_t *m) {
  w->len = m->len;
  w->n_holes = m->n_holes;
  w->hole_bytes = m->hole_bytes;
  w->oom = 0;
}

int tr_jw_iov(tr_jw_t *w, int extra, struct iovec **iov) {
  size_t need = 2 * w->n_holes + 1 + (size_t)extra, off = 0;
  int n = 0;

  if (need > w->iov_alloc) {
    struct iovec *v = realloc(w->iov, need * sizeof(*v));
    if (v == NULL) return -1;
    w->iov = v;
    w->iov_alloc = need;
  }
  for (size_t i = 0; i < w->n_holes; i++) {
    const tr_jw_hole_t *h = &w->holes[i];
    w->iov[n++] = (struct iovec){.iov_base = w->buf + off, .iov_len = h->off - off};
    w->iov[n++] = (struct iovec){.iov_base = (void *)h->data, .iov_len = h->len};
    off = h->off;
  }
  w->iov[n++] = (struct iovec){.iov_base = w->buf + off, .iov_len = w->len - off};
  *iov = w->iov;
  return n;
}

void tr_jw_headers(tr_jw_t *w, const char *key, const flt_head_t *h) {
  tr_jw_open(w, key, '[');
  for (size_t i = 0; h && i < h->n_headers; i++) {
    tr_jw_open(w, NULL, '{');
    tr_jw_bytes(w, "name", h->headers[i].name, h->headers[i].name_len);
    tr_jw_bytes(w, "value", h->headers[i].value, h->headers[i].value_len);
    tr_jw_close(w, '}');
  }
  tr_jw_close(w, ']');
}

void tr_jw_interim(tr_jw_t *w, const char *key, const tr_flow_t *r) {
  char ver[16];

  tr_jw_open(w, key, '[');
  for (size_t i = 0; i < r->n_interim; i++) {
    const flt_head_t *h = &r->interim[i];
    tr_http_version(h, ver, sizeof(ver));
    tr_jw_open(w, NULL, '{');
    tr_jw_num(w, "status", h->status);
    tr_jw_str(w, "reason", h->reason ? h->reason : "");
    tr_jw_str(w, "httpVersion", ver);
    tr_jw_headers(w, "headers", h);
    tr_jw_close(w, '}');
  }
  tr_jw_close(w, ']');
}

void tr_jw_actions(tr_jw_t *w, const char *key, const char *actions) {
  tr_jw_open(w, key, '[');
  const char *p = actions, *line;
  size_t n;
  while ((line = flt_flow_action_next(&p, &n)) != NULL) tr_jw_bytes(w, NULL, line, n);
  tr_jw_close(w, ']');
}

void tr_jw_kcached(tr_jw_t *w, const char *key, size_t klen, tr_conn_snap_t *s, int which,
                   tr_jw_fmt_fn fmt, const void *arg) {
  tr_frag_t *fr = s ? atomic_load_explicit(&s->frag[which], memory_order_acquire) : NULL;
  size_t start, n_holes = w->n_holes;

  jw_key(w, key, klen);
  if (fr) {
    tr_jw_raw(w, fr->text, fr->len);
    return;
  }
  start = w->len;
  fmt(w, arg);
  if (s == NULL || w->oom || w->n_holes != n_holes || w->len < start) return;
  if ((fr = malloc(sizeof(*fr) + (w->len - start))) == NULL) return; /* next time, then */
  fr->len = w->len - start;
  memcpy(fr->text, w->buf + start, fr->len);
  tr_frag_t *none = NULL;
  if (!atomic_compare_exchange_strong_explicit(&s->frag[which], &none, fr, memory_order_acq_rel,
                                               memory_order_acquire))
    free(fr); /* the other format's writer was first */
}

int tr_jw_full(const tr_jw_t *w) {
  return w->len + w->hole_bytes >= TR_BATCH_MAX || w->n_holes >= TR_BATCH_HOLES;
}
