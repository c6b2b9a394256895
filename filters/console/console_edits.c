/* console_edits.c — what tlspeek changed in a head it forwarded, as the
 * console states it (console.h, "~" lines). */
#include <string.h>
#include <strings.h>

#include "filters/console/console_internal.h"

static int same_name(const flt_header_t *a, const flt_header_t *b) {
  return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

/* The first field of `h` named like hd, from index `from`; -1 when none. */
static long find_from(const flt_head_t *h, const flt_header_t *hd, size_t from) {
  for (size_t i = from; i < h->n_headers; i++)
    if (same_name(&h->headers[i], hd)) return (long)i;
  return -1;
}

/* Field i of h is the first one with its name. */
static int first_of_name(const flt_head_t *h, size_t i) {
  return find_from(h, &h->headers[i], 0) == (long)i;
}

/* Do `a` and `b` carry the same values, in order, for hd's name? */
static int same_values(const flt_head_t *a, const flt_head_t *b, const flt_header_t *hd) {
  long i = find_from(a, hd, 0), j = find_from(b, hd, 0);
  while (i >= 0 && j >= 0) {
    const flt_header_t *x = &a->headers[i], *y = &b->headers[j];
    if (x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len) != 0) return 0;
    i = find_from(a, hd, (size_t)i + 1);
    j = find_from(b, hd, (size_t)j + 1);
  }
  return i < 0 && j < 0;
}

static int change_line(flt_strbuf_t *out, int color, const char *what, const flt_header_t *hd,
                       int with_value) {
  flt_strbuf_t line;
  int r = 0;

  /* Painted as one piece: the colour must not depend on the bytes. */
  flt_strbuf_init(&line, 2 * (hd->name_len + hd->value_len) + 64);
  r |= flt_strbuf_append(&line, what, strlen(what));
  r |= flt_strbuf_append(&line, hd->name, hd->name_len);
  if (with_value) {
    r |= flt_strbuf_append(&line, ": ", 2);
    r |= flt_strbuf_append(&line, hd->value, hd->value_len);
  }
  r |= flt_strbuf_append(out, FLT_CON_CHANGE_MARK, strlen(FLT_CON_CHANGE_MARK));
  if (line.data) r |= flt_con_paint(out, color, FLT_CON_YELLOW, line.data, line.len);
  r |= flt_strbuf_append(out, "\n", 1);
  flt_strbuf_free(&line);
  return r ? -1 : 0;
}

int flt_con_render_changes(flt_strbuf_t *out, const flt_head_t *received, const flt_head_t *sent,
                           int color) {
  int r = 0;

  for (size_t i = 0; i < received->n_headers; i++) {
    const flt_header_t *hd = &received->headers[i];
    if (first_of_name(received, i) && find_from(sent, hd, 0) < 0)
      r |= change_line(out, color, "removed: ", hd, 0);
  }
  for (size_t i = 0; i < sent->n_headers; i++) {
    const flt_header_t *hd = &sent->headers[i];
    if (first_of_name(sent, i) && !same_values(received, sent, hd))
      r |= change_line(out, color, "set: ", hd, 1);
  }
  return r ? -1 : 0;
}
