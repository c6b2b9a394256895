/* tlsreasm.c — TLS record reassembly for the wire view (tlsparse.h).
 *
 * Socket reads cut records anywhere: a chunk may hold half a header, three
 * records and the start of a fourth. The reassembler walks the bytes with
 * the bounded cursor, keeps the header and the first keep_cap body bytes
 * of the record in progress (what the view hexdumps), counts the rest
 * without storing it, and reports each record when its last byte arrives.
 * Memory per direction is therefore keep_cap bytes, whatever the traffic. */
#include "filters/tls/tlsparse.h"

#include <stdlib.h>
#include <string.h>

int flt_tls_reasm_init(flt_tls_reasm_t *r, size_t keep_cap) {
  memset(r, 0, sizeof(*r));
  r->keep_cap = keep_cap;
  if (keep_cap) {
    r->keep = malloc(keep_cap);
    if (r->keep == NULL) return -1;
  }
  return 0;
}

void flt_tls_reasm_free(flt_tls_reasm_t *r) {
  free(r->keep);
  r->keep = NULL;
}

size_t flt_tls_reasm_pending(const flt_tls_reasm_t *r) {
  return r->hdr_have + r->body_have;
}

static void reasm_emit(flt_tls_reasm_t *r, flt_tls_record_cb cb, void *ud) {
  flt_tls_record_t rec;
  uint8_t type;
  uint16_t version;
  size_t len;

  flt_tls_record_header(r->hdr, sizeof(r->hdr), &type, &version, &len);
  rec.type = type;
  rec.version = version;
  rec.len = len;
  rec.head = r->keep;
  rec.head_len = r->keep_have;
  rec.index = r->records++;
  r->hdr_have = r->body_have = r->keep_have = r->body_len = 0;
  cb(ud, &rec);
}

static void reasm_plain(flt_tls_reasm_t *r, flt_tls_cur_t *c, flt_tls_record_cb cb, void *ud) {
  flt_tls_record_t rec;
  flt_tls_cur_t rest;

  /* Whatever header bytes were held are part of the plaintext too. */
  if (r->hdr_have) {
    memset(&rec, 0, sizeof(rec));
    rec.head = r->hdr;
    rec.head_len = rec.len = r->hdr_have;
    r->hdr_have = 0;
    cb(ud, &rec);
  }
  flt_tls_cur_rest(c, &rest);
  if (rest.len == 0) return;
  memset(&rec, 0, sizeof(rec));
  rec.head = rest.p;
  rec.head_len = rec.len = rest.len;
  r->tls = 0;
  cb(ud, &rec);
}

/* Takes header bytes; returns 1 when the header is complete and valid, 0
 * when more bytes are needed, -1 when the bytes are not a record header. */
static int reasm_header(flt_tls_reasm_t *r, flt_tls_cur_t *c) {
  uint8_t type;
  uint16_t version;
  size_t len;
  const uint8_t *p;

  /* Before any record, a first byte that is no content type is plaintext
   * at once, so that a short "GET" is not held back waiting for five. */
  if (r->hdr_have == 0 && flt_tls_cur_left(c) &&
      (c->p[c->off] < FLT_TLS_CT_CHANGE_CIPHER_SPEC || c->p[c->off] > FLT_TLS_CT_HEARTBEAT))
    return -1;
  while (r->hdr_have < FLT_TLS_RECORD_HEADER && flt_tls_cur_left(c)) {
    flt_tls_cur_bytes(c, 1, &p);
    r->hdr[r->hdr_have++] = *p;
  }
  if (r->hdr_have < FLT_TLS_RECORD_HEADER) return 0;
  if (flt_tls_record_header(r->hdr, sizeof(r->hdr), &type, &version, &len) != 1)
    return -1; /* the caller rewinds */
  r->body_len = len;
  r->tls = 1;
  return 1;
}

void flt_tls_reasm_feed(flt_tls_reasm_t *r, const uint8_t *p, size_t len, flt_tls_record_cb cb,
                        void *ud) {
  flt_tls_cur_t c;

  flt_tls_cur_init(&c, p, len);
  r->bytes += len;
  while (flt_tls_cur_left(&c)) {
    if (r->hdr_have < FLT_TLS_RECORD_HEADER) {
      size_t before = c.off, held = r->hdr_have;
      int h = reasm_header(r, &c);
      if (h == 0) return;
      if (h < 0) {
        /* Give back what this chunk contributed to the bad header, so the
         * plaintext run starts at the right byte. */
        c.off = before;
        r->hdr_have = held;
        reasm_plain(r, &c, cb, ud);
        return;
      }
    }
    size_t want = r->body_len - r->body_have;
    size_t n = flt_tls_cur_left(&c) < want ? flt_tls_cur_left(&c) : want;
    const uint8_t *body;
    flt_tls_cur_bytes(&c, n, &body);
    if (r->keep_have < r->keep_cap) {
      size_t k = r->keep_cap - r->keep_have < n ? r->keep_cap - r->keep_have : n;
      memcpy(r->keep + r->keep_have, body, k);
      r->keep_have += k;
    }
    r->body_have += n;
    if (r->body_have == r->body_len) reasm_emit(r, cb, ud);
  }
}
