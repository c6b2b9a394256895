/* wire_split.c — a leg's bytes cut into one entry per TLS record
 * (wire_split.h). */
#include <string.h>

#include "filters/tls/tlsparse.h"
#include "filters/web/wire_split.h"

static uint32_t len32(size_t n) {
  return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Keeps the record's first bytes, up to FLT_WEB_WIRE_HEX. */
static void keep_head(web_split_t *sp, const uint8_t *p, size_t n) {
  size_t room = sizeof(sp->head) - sp->head_len;
  if (n > room) n = room;
  memcpy(sp->head + sp->head_len, p, n);
  sp->head_len = (uint8_t)(sp->head_len + n);
}

/* The rest of the read as one entry of `kind`, after the bytes of a
 * partial header already kept (`kept` of them). */
static void whole(web_split_t *sp, uint8_t kind, size_t kept, const uint8_t *p, size_t len,
                  web_split_fn fn, void *ud) {
  keep_head(sp, p, len);
  fn(ud, kind, len32(kept + len), sp->head, sp->head_len);
  sp->head_len = 0;
}

/* A header's first bytes that no record could begin with. */
static int head_bad(const uint8_t *h, size_t n) {
  return !(h[0] >= FLT_TLS_CT_CHANGE_CIPHER_SPEC && h[0] <= FLT_TLS_CT_HEARTBEAT) ||
         (n >= 2 && h[1] != 3);
}

/* At a record boundary, with sp->head holding a partial header: takes
 * header bytes from p. Returns the bytes used, or -1 when they are no
 * record header (sp->head then holds only the bytes kept before). */
static long take_header(web_split_t *sp, const uint8_t *p, size_t len) {
  size_t kept = sp->head_len, n = 5 - kept < len ? 5 - kept : len;
  uint8_t type;
  uint16_t ver;
  size_t body;

  keep_head(sp, p, n);
  int r = flt_tls_record_header(sp->head, sp->head_len, &type, &ver, &body);
  if (r == 0 || head_bad(sp->head, sp->head_len)) {
    sp->head_len = (uint8_t)kept;
    return -1;
  }
  if (r < 0) return (long)n; /* still partial */
  sp->kind = type;
  sp->total = (uint32_t)(5 + body);
  sp->need = (uint32_t)body;
  sp->emitted = 0;
  return (long)n;
}

void web_split_feed(web_split_t *sp, const uint8_t *p, size_t len, int tls, web_split_fn fn,
                    void *ud) {
  while (len > 0) {
    if (sp->lost) {
      sp->head_len = 0;
      whole(sp, WEB_KIND_UNPARSED, 0, p, len, fn, ud);
      return;
    }
    if (sp->total == 0) { /* a header, maybe the end of one begun earlier */
      size_t kept = sp->head_len;
      long used = take_header(sp, p, len);
      if (used < 0) { /* plain if nothing says this stream is TLS, else lost */
        int plain = !tls && sp->records == 0;
        sp->lost = !plain;
        whole(sp, plain ? WEB_KIND_PLAIN : WEB_KIND_UNPARSED, kept, p, len, fn, ud);
        return;
      }
      p += used;
      len -= (size_t)used;
      if (sp->total == 0) return; /* the read ended inside the header */
    } else {
      size_t n = sp->need < len ? sp->need : len;
      keep_head(sp, p, n);
      sp->need -= (uint32_t)n;
      p += n;
      len -= n;
    }
    size_t want = sp->total < sizeof(sp->head) ? sp->total : sizeof(sp->head);
    if (!sp->emitted && sp->head_len >= want) {
      fn(ud, sp->kind, sp->total, sp->head, sp->head_len);
      sp->emitted = 1;
    }
    if (sp->need == 0) { /* the record is complete */
      sp->records++;
      sp->total = 0;
      sp->head_len = 0;
    }
  }
}
