/* console_body.c — keeping and showing one message body at detail 3. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "filters/console/console_internal.h"
#include "filters/util/hexdump.h"

void flt_con_header_value(const flt_head_t *h, const char *name, char *buf,
                          size_t size) {
  const flt_header_t *hd = h ? flt_head_find(h, name) : NULL;
  size_t n = 0;

  if (hd) {
    n = hd->value_len < size - 1 ? hd->value_len : size - 1;
    memcpy(buf, hd->value, n);
  }
  buf[n] = '\0';
}

/* Content-Encoding present and not just "identity". */
static int body_is_encoded(const flt_con_body_t *b) {
  char coding[16];
  flt_con_media_type(b->cenc, coding, sizeof(coding)); /* trims, lowers */
  return coding[0] != '\0' && strcmp(coding, "identity") != 0;
}

void flt_con_body_init(flt_con_body_t *b, const flt_head_t *h, size_t limit) {
  memset(b, 0, sizeof(*b));
  flt_con_header_value(h, "Content-Type", b->ctype, sizeof(b->ctype));
  flt_con_header_value(h, "Content-Encoding", b->cenc, sizeof(b->cenc));
  b->limit = limit;
  flt_strbuf_init(&b->decoded, limit);
  flt_strbuf_init(&b->raw, limit);
}

void flt_con_body_feed(flt_con_body_t *b, const uint8_t *p, size_t len) {
  /* Identity bodies stop by themselves at the limit; encoded ones may
   * expand to almost nothing, so their input is bounded too. */
  uint64_t max_in = b->limit > FLT_CON_MAX_ENCODED ? b->limit : FLT_CON_MAX_ENCODED;
  uint64_t room = b->wire_bytes < max_in ? max_in - b->wire_bytes : 0;

  if (len == 0) return;
  if (b->recorded) { /* decoded already: kept up to the limit */
    flt_strbuf_append(&b->decoded, p, len);
    return;
  }
  if (!body_is_encoded(b)) room = UINT64_MAX;
  b->wire_bytes += len;
  if (b->oom || b->input_capped) return;
  if (b->dec == NULL) {
    b->dec = flt_decoder_new(b->cenc, strlen(b->cenc), &b->decoded);
    if (b->dec == NULL) {
      b->oom = 1;
      return;
    }
  }
  /* Encoded bytes only matter for the hexdump when decoding fails. */
  if (body_is_encoded(b) && b->raw.len < b->limit)
    flt_strbuf_append(&b->raw, p, len);
  if (flt_decoder_stopped(b->dec)) return;
  if (len > room) {
    len = (size_t)room;
    b->input_capped = 1;
  }
  flt_decoder_feed(b->dec, p, len);
}

void flt_con_body_free(flt_con_body_t *b) {
  flt_decoder_free(b->dec);
  b->dec = NULL;
  flt_strbuf_free(&b->decoded);
  flt_strbuf_free(&b->raw);
}

/* A dimmed "(...)" or "… ..." note on its own indented line. */
static int body_note(flt_strbuf_t *out, int color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int body_note(flt_strbuf_t *out, int color, const char *fmt, ...) {
  char line[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  if ((size_t)n >= sizeof(line)) n = (int)sizeof(line) - 1;
  if (flt_strbuf_append(out, FLT_CON_INDENT, strlen(FLT_CON_INDENT)) < 0 ||
      flt_con_paint(out, color, FLT_CON_DIM, line, (size_t)n) < 0)
    return -1;
  return flt_strbuf_append(out, "\n", 1);
}

static int body_render_failed(flt_con_body_t *b, flt_strbuf_t *out,
                              int color) {
  const char *coding = flt_decoder_error_coding(b->dec);
  const char *why = flt_decoder_error(b->dec);

  if (body_note(out, color, "(%s: could not decode: %s)", coding, why) < 0 ||
      flt_hexdump_prefixed(out, FLT_CON_INDENT, (const uint8_t *)b->raw.data,
                           b->raw.len, 0) < 0)
    return -1;
  if (b->wire_bytes > b->raw.len)
    return body_note(out, color, "… body cut at %zu of %llu bytes (--body-limit)",
                     b->raw.len, (unsigned long long)b->wire_bytes);
  return 0;
}

/* Text, JSON or hexdump, chosen from the Content-Type and the bytes. */
static int body_render_decoded(const flt_con_body_t *b, flt_strbuf_t *out,
                               int cut) {
  const uint8_t *p = (const uint8_t *)b->decoded.data;
  size_t len = b->decoded.len;
  char media[128], charset[32];
  int texty, latin1;
  size_t first;

  flt_con_media_type(b->ctype, media, sizeof(media));
  flt_con_charset(b->ctype, charset, sizeof(charset));
  if (strncmp(media, "application/grpc", 16) == 0 && (media[16] == '\0' || media[16] == '+'))
    return flt_con_render_grpc(out, p, len, cut);
  texty = flt_con_media_is_text(media) && memchr(p, '\0', len) == NULL;
  latin1 = texty && (strcmp(charset, "iso-8859-1") == 0 ||
                     strcmp(charset, "latin1") == 0);
  if (!texty && !flt_con_utf8_is_clean(p, len, cut))
    return flt_hexdump_prefixed(out, FLT_CON_INDENT, p, len, 0);

  /* JSON by type, or text that looks like an object or array. */
  first = strspn((const char *)p, " \t\r\n");
  if (!cut && !latin1 &&
      (strstr(media, "json") || (first < len && (p[first] == '{' || p[first] == '['))) &&
      flt_con_render_json(out, p, len) == 0)
    return 0;
  return flt_con_render_text(out, p, len, latin1);
}

void flt_con_body_recorded(flt_con_body_t *b, uint64_t wire, int cut) {
  b->recorded = 1;
  b->recorded_wire = wire;
  b->recorded_cut = cut;
}

/* A body read back from a transcript: as a decoded one, with the cut
 * counted against its size as received. */
static int body_render_recorded(const flt_con_body_t *b, flt_strbuf_t *out, int color) {
  int limit_cut = b->decoded.truncated;
  int cut = limit_cut || b->recorded_cut;
  const char *why = limit_cut ? "--body-limit" : "--body-cap, when recorded";
  char coding[64];

  if (b->decoded.len == 0 && !cut) return 0;
  if (b->decoded.len > 0 && body_render_decoded(b, out, cut) < 0) return -1;
  if (!cut) return 0;
  if (!body_is_encoded(b))
    return body_note(out, color, "… body cut at %zu of %llu bytes (%s)", b->decoded.len,
                     (unsigned long long)b->recorded_wire, why);
  flt_con_media_type(b->cenc, coding, sizeof(coding));
  return body_note(out, color, "… body cut at %zu decoded bytes of %llu bytes %s (%s)",
                   b->decoded.len, (unsigned long long)b->recorded_wire, coding, why);
}

int flt_con_body_render(flt_con_body_t *b, flt_strbuf_t *out, int color) {
  int cut;

  if (b->recorded) return body_render_recorded(b, out, color);
  if (b->wire_bytes == 0) return 0;
  if (b->oom) return body_note(out, color, "(body not kept: out of memory)");
  if (!b->input_capped) flt_decoder_finish(b->dec);
  if (flt_decoder_error(b->dec)) return body_render_failed(b, out, color);

  cut = b->decoded.truncated || b->input_capped;
  if (b->decoded.len > 0 && body_render_decoded(b, out, cut) < 0) return -1;
  if (!cut) return 0;
  if (!body_is_encoded(b))
    return body_note(out, color, "… body cut at %zu of %llu bytes (--body-limit)",
                     b->decoded.len, (unsigned long long)b->wire_bytes);
  char coding[64];
  flt_con_media_type(b->cenc, coding, sizeof(coding));
  return body_note(out, color,
                   "… body cut at %zu decoded bytes of %llu bytes %s (%s)",
                   b->decoded.len, (unsigned long long)b->wire_bytes, coding,
                   b->decoded.truncated ? "--body-limit" : "decoder input limit");
}
