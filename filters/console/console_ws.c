/* console_ws.c — one WebSocket message as the console shows it (console.h,
 * "WebSocket messages"): a line naming the direction and the kind, and at
 * detail 3 the payload under it, text as lines and anything else as a
 * hexdump, cut at body_limit. */
#include <stdio.h>
#include <string.h>

#include "filters/console/console_internal.h"
#include "filters/util/hexdump.h"

#define WS_MARK " \xe2\x87\x84 ws " /* " ⇄ ws " */
#define ELLIPSIS "\xe2\x80\xa6"     /* "…" */

static const char *ws_kind(int opcode) {
  switch (opcode) {
    case FLT_WS_TEXT: return "text";
    case FLT_WS_BINARY: return "binary";
    case FLT_WS_CLOSE: return "close";
    case FLT_WS_PING: return "ping";
    case FLT_WS_PONG: return "pong";
    default: return "frame";
  }
}

/* "close 1000 done", "close" (no code), or "text 12 B". */
static int ws_summary(flt_strbuf_t *out, int opcode, const uint8_t *p, size_t len, int color) {
  const char *kind = ws_kind(opcode);
  int r = flt_con_paint(out, color, FLT_CON_BOLD, kind, strlen(kind));
  if (opcode != FLT_WS_CLOSE) return r | flt_strbuf_appendf(out, " %zu B", len);
  if (len >= 2) {
    r |= flt_strbuf_appendf(out, " %u", (unsigned)(p[0] << 8 | p[1]));
    if (len > 2) {
      r |= flt_strbuf_append(out, " ", 1);
      r |= flt_con_append_safe(out, (const char *)p + 2, len - 2, 0);
    }
  }
  return r;
}

int flt_con_render_ws(flt_strbuf_t *out, const flt_con_ws_t *m) {
  int r = flt_con_append_safe(out, m->client, strlen(m->client), 0);
  r |= flt_strbuf_append(out, WS_MARK, strlen(WS_MARK));
  r |= flt_con_append_safe(out, m->url, strlen(m->url), 0);
  r |= flt_strbuf_appendf(out, " %s ", m->dir == FLT_DIR_REQUEST ? ">" : "<");
  r |= ws_summary(out, m->opcode, m->data, m->len, m->color);
  r |= flt_strbuf_append(out, "\n", 1);
  if (m->detail < 3 || m->len == 0 || (m->opcode != FLT_WS_TEXT && m->opcode != FLT_WS_BINARY))
    return r;
  size_t n = m->len < m->limit ? m->len : m->limit;
  if (m->opcode == FLT_WS_TEXT && flt_con_utf8_is_clean(m->data, n, n < m->len))
    r |= flt_con_render_text(out, m->data, n, 0);
  else
    r |= flt_hexdump_prefixed(out, FLT_CON_INDENT, m->data, n, 0);
  if (n < m->len) {
    char note[128];
    int k = snprintf(note, sizeof(note), ELLIPSIS " message cut at %zu of %zu bytes (--body-limit)",
                     n, m->len);
    r |= flt_strbuf_append(out, FLT_CON_INDENT, strlen(FLT_CON_INDENT));
    r |= flt_con_paint(out, m->color, FLT_CON_DIM, note, (size_t)k);
    r |= flt_strbuf_append(out, "\n", 1);
  }
  return r;
}
