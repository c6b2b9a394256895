/* console_grpc.c — a gRPC body (application/grpc) at detail 3: each
 * length-prefixed message (1 byte compressed flag, 4 bytes length), its
 * bytes decoded as protobuf wire format without a schema — field number,
 * wire type, value; a length-delimited field shown as a nested message when
 * its bytes parse as one, as a string when they are clean text, else as
 * hex — and a hexdump of what does not parse. Every read goes through one
 * bounded cursor. */
#include <stdio.h>
#include <string.h>

#include "filters/console/console_internal.h"
#include "filters/util/hexdump.h"

#define GRPC_MAX_DEPTH 8
#define GRPC_MAX_FIELDS 4096 /* per body: a bound on the lines */

typedef struct cur {
  const uint8_t *p;
  size_t len, at;
} cur_t;

static int cur_varint(cur_t *c, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (c->at >= c->len) return -1;
    uint8_t b = c->p[c->at++];
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

static int cur_take(cur_t *c, size_t n, const uint8_t **out) {
  if (n > c->len - c->at) return -1;
  *out = c->p + c->at;
  c->at += n;
  return 0;
}

/* 1 when `p` parses to its end as protobuf fields (a nested message). */
static int is_message(const uint8_t *p, size_t len, int depth) {
  cur_t c = {p, len, 0};
  if (len == 0 || depth >= GRPC_MAX_DEPTH) return 0;
  while (c.at < c.len) {
    uint64_t key, v;
    const uint8_t *b;
    if (cur_varint(&c, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 536870911u) return 0;
    switch (key & 7) {
      case 0:
        if (cur_varint(&c, &v) != 0) return 0;
        break;
      case 1:
        if (cur_take(&c, 8, &b) != 0) return 0;
        break;
      case 5:
        if (cur_take(&c, 4, &b) != 0) return 0;
        break;
      case 2:
        if (cur_varint(&c, &v) != 0 || v > c.len - c.at) return 0;
        c.at += (size_t)v;
        break;
      default:
        return 0;
    }
  }
  return 1;
}

static int printable(const uint8_t *p, size_t len) {
  return len > 0 && flt_con_utf8_is_clean(p, len, 0);
}

static int indent(flt_strbuf_t *out, int depth) {
  int r = flt_strbuf_append(out, FLT_CON_INDENT, strlen(FLT_CON_INDENT));
  for (int i = 0; i < depth + 1; i++)
    r |= flt_strbuf_append(out, "  ", 2);
  return r;
}

static int fields(flt_strbuf_t *out, const uint8_t *p, size_t len, int depth, int *budget);

static int bytes_field(flt_strbuf_t *out, unsigned field, const uint8_t *b, size_t n, int depth,
                       int *budget) {
  int r = 0;
  if (is_message(b, n, depth + 1)) {
    r |= flt_strbuf_appendf(out, "%u {\n", field);
    r |= fields(out, b, n, depth + 1, budget);
    r |= indent(out, depth);
    return r | flt_strbuf_append(out, "}\n", 2);
  }
  if (printable(b, n)) {
    r |= flt_strbuf_appendf(out, "%u: \"", field);
    r |= flt_con_append_safe(out, (const char *)b, n, 0);
    return r | flt_strbuf_append(out, "\"\n", 2);
  }
  r |= flt_strbuf_appendf(out, "%u: bytes[%zu] ", field, n);
  for (size_t i = 0; i < n && i < 32; i++)
    r |= flt_strbuf_appendf(out, "%02x", b[i]);
  return r | flt_strbuf_append(out, n > 32 ? "…\n" : "\n", n > 32 ? 4 : 1);
}

/* One line per field (nested messages indented); stops at what does not
 * parse, with a note. */
static int fields(flt_strbuf_t *out, const uint8_t *p, size_t len, int depth, int *budget) {
  cur_t c = {p, len, 0};
  int r = 0;
  while (c.at < c.len && (*budget)-- > 0) {
    uint64_t key, v;
    const uint8_t *b;
    size_t start = c.at;
    r |= indent(out, depth);
    if (cur_varint(&c, &key) != 0 || (key >> 3) == 0) goto Bad;
    unsigned field = (unsigned)(key >> 3);
    switch (key & 7) {
      case 0:
        if (cur_varint(&c, &v) != 0) goto Bad;
        r |= flt_strbuf_appendf(out, "%u: %llu (varint)\n", field, (unsigned long long)v);
        break;
      case 1:
        if (cur_take(&c, 8, &b) != 0) goto Bad;
        memcpy(&v, b, 8);
        r |= flt_strbuf_appendf(out, "%u: 0x%016llx (fixed64)\n", field, (unsigned long long)v);
        break;
      case 5: {
        uint32_t w;
        if (cur_take(&c, 4, &b) != 0) goto Bad;
        memcpy(&w, b, 4);
        r |= flt_strbuf_appendf(out, "%u: 0x%08x (fixed32)\n", field, (unsigned)w);
        break;
      }
      case 2:
        if (cur_varint(&c, &v) != 0 || cur_take(&c, (size_t)v, &b) != 0 || v > len) goto Bad;
        r |= bytes_field(out, field, b, (size_t)v, depth, budget);
        break;
      default:
        goto Bad;
    }
    continue;
  Bad:
    r |= flt_strbuf_appendf(out, "(not protobuf from byte %zu)\n", start);
    return r | flt_hexdump_prefixed(out, FLT_CON_INDENT, p + start, len - start, start);
  }
  return r;
}

int flt_con_render_grpc(flt_strbuf_t *out, const uint8_t *p, size_t len, int cut) {
  cur_t c = {p, len, 0};
  int r = 0, budget = GRPC_MAX_FIELDS;
  for (unsigned n = 1; c.at < c.len; n++) {
    const uint8_t *h, *msg;
    if (cur_take(&c, 5, &h) != 0) {
      r |= flt_strbuf_appendf(out, "%sgRPC: %zu bytes left, not a message prefix%s\n",
                              FLT_CON_INDENT, c.len - c.at, cut ? " (cut)" : "");
      break;
    }
    size_t mlen = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
    size_t have = mlen < c.len - c.at ? mlen : c.len - c.at;
    cur_take(&c, have, &msg);
    r |= flt_strbuf_appendf(out, "%sgRPC message %u: %zu bytes%s%s\n", FLT_CON_INDENT, n, mlen,
                            h[0] ? ", compressed" : "", have < mlen ? " (cut)" : "");
    if (h[0] || have < mlen)
      r |= flt_hexdump_prefixed(out, FLT_CON_INDENT, msg, have, 0);
    else
      r |= fields(out, msg, have, 0, &budget);
  }
  return r;
}
