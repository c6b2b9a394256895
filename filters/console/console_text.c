/* console_text.c — turning wire bytes into safe, readable console text. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "filters/console/console_internal.h"

/* Pretty JSON may grow past its input (indentation); past this many bytes
 * per input byte, plus some slack, we show the text as sent instead. */
#define JSON_GROWTH_MAX 8
#define JSON_GROWTH_SLACK 65536
#define JSON_INDENT_STEP 2

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is invalid or
 * incomplete (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF). */
size_t flt_utf8_seq_len(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  uint8_t lo = 0x80, hi = 0xbf;
  size_t len;

  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return len;
}

/* p[0..n) is the start of a multi-byte sequence that the end of the data
 * cut short. */
static int utf8_is_cut_prefix(const uint8_t *p, size_t n) {
  size_t want = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;

  if (p[0] < 0xc2 || p[0] > 0xf4 || n >= want) return 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return 1;
}

static int is_c0_or_del(uint8_t c) { return c < 0x20 || c == 0x7f; }

static int append_escaped_byte(flt_strbuf_t *out, uint8_t c) {
  return flt_strbuf_appendf(out, "\\x%02x", c);
}

int flt_con_append_safe(flt_strbuf_t *out, const char *s, size_t len,
                        int latin1) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0, run = 0; /* bytes [i - run, i) pass through unchanged */

  while (i < len) {
    size_t n = 1;
    int pass;
    if (latin1 || p[i] < 0x80) {
      pass = p[i] == '\t' || !(is_c0_or_del(p[i]) || p[i] >= 0x80);
    } else {
      n = flt_utf8_seq_len(p + i, len - i);
      /* U+0080..U+009F (C1 controls) can act as escapes on terminals. */
      pass = n > 0 && !(n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0);
      if (n == 0) n = 1;
    }
    if (pass) {
      run += n;
      i += n;
      continue;
    }
    if (run && flt_strbuf_append(out, p + i - run, run) < 0) return -1;
    run = 0;
    if (latin1 && p[i] >= 0xa0) {
      /* ISO-8859-1 maps byte for byte onto U+00A0..U+00FF. */
      uint8_t u[2] = {(uint8_t)(0xc0 | (p[i] >> 6)),
                      (uint8_t)(0x80 | (p[i] & 0x3f))};
      if (flt_strbuf_append(out, u, 2) < 0) return -1;
    } else {
      for (size_t k = 0; k < n; k++)
        if (append_escaped_byte(out, p[i + k]) < 0) return -1;
    }
    i += n;
  }
  if (run && flt_strbuf_append(out, p + i - run, run) < 0) return -1;
  return 0;
}

int flt_con_paint(flt_strbuf_t *out, int color, const char *sgr,
                  const char *s, size_t len) {
  if (color && flt_strbuf_appendf(out, "\033[%sm", sgr) < 0) return -1;
  if (flt_con_append_safe(out, s, len, 0) < 0) return -1;
  if (color && flt_strbuf_append(out, "\033[0m", 4) < 0) return -1;
  return 0;
}

void flt_con_human_size(char *buf, size_t size, uint64_t bytes) {
  static const char *const units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
  double v = (double)bytes;
  size_t u = 0;

  if (bytes < 1000) {
    snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    return;
  }
  v /= 1000;
  /* Move up a unit as soon as rounding to one decimal would show 1000.0. */
  while (v >= 999.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
    v /= 1000;
    u++;
  }
  snprintf(buf, size, "%.1f %s", v, units[u]);
}

void flt_con_duration(char *buf, size_t size, uint64_t us) {
  double ms = (double)us / 1000.0;

  /* Thresholds sit where rounding would carry into the next format. */
  if (us < 995)
    snprintf(buf, size, "%.2f ms", ms);
  else if (us < 9950)
    snprintf(buf, size, "%.1f ms", ms);
  else if (us < 999500)
    snprintf(buf, size, "%.0f ms", ms);
  else if (us < 9995000)
    snprintf(buf, size, "%.2f s", ms / 1000.0);
  else if (us < 99950000)
    snprintf(buf, size, "%.1f s", ms / 1000.0);
  else
    snprintf(buf, size, "%.0f s", ms / 1000.0);
}

void flt_con_body_size(char *buf, size_t size, uint64_t decoded, int decoded_known,
                       uint64_t wire, const char *coding) {
  char d[32], w[32];

  flt_con_human_size(w, sizeof(w), wire);
  if (coding == NULL || coding[0] == '\0' || wire == 0) {
    snprintf(buf, size, "%s", w);
    return;
  }
  if (!decoded_known) {
    snprintf(buf, size, "? (%s %s)", w, coding);
    return;
  }
  flt_con_human_size(d, sizeof(d), decoded);
  snprintf(buf, size, "%s (%s %s)", d, w, coding);
}

void flt_con_media_type(const char *ctype, char *buf, size_t size) {
  size_t n = 0;

  if (size == 0) return;
  while (*ctype == ' ' || *ctype == '\t') ctype++;
  for (; *ctype && *ctype != ';' && n + 1 < size; ctype++)
    buf[n++] = (char)tolower((unsigned char)*ctype);
  while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
  buf[n] = '\0';
}

void flt_con_charset(const char *ctype, char *buf, size_t size) {
  const char *p = ctype;
  size_t n = 0;

  if (size == 0) return;
  buf[0] = '\0';
  /* Parameters follow ';'; the charset one is "charset=value" or
   * "charset=\"value\"" (RFC 9110 §8.3.1). */
  while ((p = strchr(p, ';')) != NULL) {
    p++;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "charset=", 8) != 0) continue;
    p += 8;
    if (*p == '"') p++;
    for (; *p && *p != '"' && *p != ';' && *p != ' ' && n + 1 < size; p++)
      buf[n++] = (char)tolower((unsigned char)*p);
    buf[n] = '\0';
    return;
  }
}

int flt_con_media_is_text(const char *media) {
  static const char *const texty[] = {"json",       "javascript",
                                      "ecmascript", "xml",
                                      "x-www-form-urlencoded"};
  if (strncmp(media, "text/", 5) == 0) return 1;
  for (size_t i = 0; i < sizeof(texty) / sizeof(texty[0]); i++)
    if (strstr(media, texty[i])) return 1;
  return 0;
}

int flt_con_utf8_is_clean(const uint8_t *p, size_t len, int cut) {
  size_t i = 0;

  while (i < len) {
    if (p[i] < 0x80) {
      if (is_c0_or_del(p[i]) && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
        return 0;
      i++;
      continue;
    }
    size_t n = flt_utf8_seq_len(p + i, len - i);
    if (n == 0) {
      /* A sequence cut by the body limit is not evidence of binary. */
      return cut && utf8_is_cut_prefix(p + i, len - i);
    }
    i += n;
  }
  return 1;
}

int flt_con_render_text(flt_strbuf_t *out, const uint8_t *p, size_t len,
                        int latin1) {
  size_t i = 0;

  while (i < len) {
    size_t start = i;
    while (i < len && p[i] != '\n' && p[i] != '\r') i++;
    if (flt_strbuf_append(out, FLT_CON_INDENT, strlen(FLT_CON_INDENT)) < 0 ||
        flt_con_append_safe(out, (const char *)p + start, i - start,
                            latin1) < 0 ||
        flt_strbuf_append(out, "\n", 1) < 0)
      return -1;
    if (i < len) {
      size_t eol = i++;
      if (p[eol] == '\r' && i < len && p[i] == '\n') i++;
    }
  }
  return 0;
}

/* Appends "\n", the indent, and two spaces per nesting level. */
static int json_newline(flt_strbuf_t *out, int depth) {
  if (flt_strbuf_append(out, "\n" FLT_CON_INDENT, 1 + strlen(FLT_CON_INDENT)) < 0)
    return -1;
  for (int i = 0; i < depth * JSON_INDENT_STEP; i++)
    if (flt_strbuf_append(out, " ", 1) < 0) return -1;
  return 0;
}

static size_t json_skip_space(const uint8_t *p, size_t len, size_t i) {
  while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
    i++;
  return i;
}

/* Re-indents JSON that cJSON has already accepted, so only the token
 * boundaries matter here: strings are copied (through the escaper) up to
 * their closing quote, numbers and literals byte for byte. */
static int json_reindent(flt_strbuf_t *out, const uint8_t *p, size_t len) {
  int depth = 0;
  size_t i = json_skip_space(p, len, 0);

  if (flt_strbuf_append(out, FLT_CON_INDENT, strlen(FLT_CON_INDENT)) < 0)
    return -1;
  while (i < len) {
    uint8_t c = p[i];
    int r = 0;
    if (c == '"') {
      size_t start = i++;
      while (i < len && p[i] != '"') i += p[i] == '\\' ? 2 : 1;
      i = i < len ? i + 1 : len;
      r = flt_con_append_safe(out, (const char *)p + start, i - start, 0);
    } else if (c == '{' || c == '[') {
      size_t next = json_skip_space(p, len, i + 1);
      if (next < len && p[next] == (c == '{' ? '}' : ']')) {
        r = flt_strbuf_append(out, c == '{' ? "{}" : "[]", 2);
        i = next + 1;
      } else {
        r = flt_strbuf_append(out, &c, 1);
        if (r == 0) r = json_newline(out, ++depth);
        i = next;
      }
    } else if (c == '}' || c == ']') {
      r = json_newline(out, --depth);
      if (r == 0) r = flt_strbuf_append(out, &c, 1);
      i++;
    } else if (c == ',') {
      r = flt_strbuf_append(out, ",", 1);
      if (r == 0) r = json_newline(out, depth);
      i = json_skip_space(p, len, i + 1);
    } else if (c == ':') {
      r = flt_strbuf_append(out, ": ", 2);
      i = json_skip_space(p, len, i + 1);
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      i++;
    } else {
      r = flt_strbuf_append(out, &c, 1);
      i++;
    }
    if (r < 0) return -1;
  }
  return flt_strbuf_append(out, "\n", 1);
}

int flt_con_render_json(flt_strbuf_t *out, const uint8_t *p, size_t len) {
  const char *end = NULL;
  cJSON *doc;
  flt_strbuf_t pretty;
  size_t rest;
  int r = -1;

  doc = cJSON_ParseWithLengthOpts((const char *)p, len, &end, 0);
  if (doc == NULL) return -1;
  cJSON_Delete(doc);
  /* cJSON stops after the first value; anything but whitespace after it
   * means this is not one JSON document. */
  rest = (size_t)((const uint8_t *)end - p);
  if (json_skip_space(p, len, rest) != len) return -1;

  flt_strbuf_init(&pretty, len * JSON_GROWTH_MAX + JSON_GROWTH_SLACK);
  if (json_reindent(&pretty, p, len) == 0)
    r = flt_strbuf_append(out, pretty.data, pretty.len);
  flt_strbuf_free(&pretty);
  return r;
}
