/* tlsparse.c — the bounded cursor, hello parsing, JA3/JA3S/JA4 and the
 * parsers of the other handshake messages (tlsparse.h).
 *
 * Every read of wire bytes goes through flt_tls_cur_t. A parse validates
 * the whole structure first, so that code walking it later (the renderers,
 * the fingerprints) can trust the framing it iterates. */
#include "filters/tls/tlsparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* ---- cursor --------------------------------------------------------------- */

void flt_tls_cur_init(flt_tls_cur_t *c, const uint8_t *p, size_t len) {
  c->p = p;
  c->len = p ? len : 0;
  c->off = 0;
}

size_t flt_tls_cur_left(const flt_tls_cur_t *c) {
  return c->len - c->off;
}

int flt_tls_cur_bytes(flt_tls_cur_t *c, size_t n, const uint8_t **p) {
  if (n > flt_tls_cur_left(c)) return -1;
  if (p) *p = c->p + c->off;
  c->off += n;
  return 0;
}

/* Big-endian unsigned of 1..4 bytes. */
static int cur_uint(flt_tls_cur_t *c, size_t n, uint32_t *v) {
  const uint8_t *p;
  uint32_t x = 0;

  if (flt_tls_cur_bytes(c, n, &p) < 0) return -1;
  for (size_t i = 0; i < n; i++)
    x = (x << 8) | p[i];
  *v = x;
  return 0;
}

int flt_tls_cur_u8(flt_tls_cur_t *c, uint8_t *v) {
  uint32_t x;
  if (cur_uint(c, 1, &x) < 0) return -1;
  *v = (uint8_t)x;
  return 0;
}

int flt_tls_cur_u16(flt_tls_cur_t *c, uint16_t *v) {
  uint32_t x;
  if (cur_uint(c, 2, &x) < 0) return -1;
  *v = (uint16_t)x;
  return 0;
}

int flt_tls_cur_u24(flt_tls_cur_t *c, uint32_t *v) {
  return cur_uint(c, 3, v);
}
int flt_tls_cur_u32(flt_tls_cur_t *c, uint32_t *v) {
  return cur_uint(c, 4, v);
}

int flt_tls_cur_sub(flt_tls_cur_t *c, size_t n, flt_tls_cur_t *sub) {
  const uint8_t *p;
  if (flt_tls_cur_bytes(c, n, &p) < 0) return -1;
  flt_tls_cur_init(sub, p, n);
  return 0;
}

int flt_tls_cur_vec(flt_tls_cur_t *c, int len_bytes, flt_tls_cur_t *sub) {
  size_t start = c->off;
  uint32_t n;

  if (len_bytes < 1 || len_bytes > 3 || cur_uint(c, (size_t)len_bytes, &n) < 0) return -1;
  if (flt_tls_cur_sub(c, n, sub) < 0) {
    c->off = start; /* a failed read never moves the cursor */
    return -1;
  }
  return 0;
}

void flt_tls_cur_rest(flt_tls_cur_t *c, flt_tls_cur_t *rest) {
  flt_tls_cur_init(rest, c->p + c->off, flt_tls_cur_left(c));
  c->off = c->len;
}

int flt_tls_is_grease(uint16_t v) {
  return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* ---- hellos ----------------------------------------------------------------- */

/* SHA-256("HelloRetryRequest"): the random that marks a ServerHello as a
 * HelloRetryRequest (RFC 8446 4.1.3). */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

/* The handshake header: type and a u24 length that must match. */
static int hs_body(const uint8_t *msg, size_t len, uint8_t *type, flt_tls_cur_t *body) {
  flt_tls_cur_t c;
  uint32_t n;

  flt_tls_cur_init(&c, msg, len);
  if (flt_tls_cur_u8(&c, type) < 0 || flt_tls_cur_u24(&c, &n) < 0) return -1;
  if (n != flt_tls_cur_left(&c)) return -1;
  flt_tls_cur_rest(&c, body);
  return 0;
}

int flt_tls_ext_next(flt_tls_cur_t *it, flt_tls_ext_t *e) {
  flt_tls_cur_t data;
  size_t start = it->off;

  if (flt_tls_cur_left(it) == 0) return 0;
  if (flt_tls_cur_u16(it, &e->type) < 0 || flt_tls_cur_vec(it, 2, &data) < 0) {
    it->off = start;
    return -1;
  }
  e->data = data.p;
  e->len = data.len;
  return 1;
}

static int hello_exts(flt_tls_cur_t *c, flt_tls_hello_t *h) {
  flt_tls_cur_t exts, it;
  flt_tls_ext_t e;
  int r;

  if (flt_tls_cur_left(c) == 0) return 0; /* no extensions at all: legal */
  if (flt_tls_cur_vec(c, 2, &exts) < 0 || flt_tls_cur_left(c) != 0) return -1;
  h->has_exts = 1;
  h->exts = exts.p;
  h->exts_len = exts.len;
  flt_tls_cur_init(&it, exts.p, exts.len);
  while ((r = flt_tls_ext_next(&it, &e)) == 1)
    h->n_exts++;
  return r;
}

int flt_tls_hello_parse(const uint8_t *msg, size_t len, flt_tls_hello_t *h) {
  flt_tls_cur_t c, v;
  uint8_t type;

  memset(h, 0, sizeof(*h));
  if (hs_body(msg, len, &type, &c) < 0) return -1;
  if (type != FLT_TLS_HS_CLIENT_HELLO && type != FLT_TLS_HS_SERVER_HELLO) return -1;
  h->client = type == FLT_TLS_HS_CLIENT_HELLO;
  if (flt_tls_cur_u16(&c, &h->version) < 0 || flt_tls_cur_bytes(&c, 32, &h->random) < 0 ||
      flt_tls_cur_vec(&c, 1, &v) < 0 || v.len > 32)
    return -1;
  h->session_id = v.p;
  h->session_id_len = v.len;
  if (h->client) {
    if (flt_tls_cur_vec(&c, 2, &v) < 0 || v.len % 2 != 0) return -1;
    h->suites = v.p;
    h->suites_len = v.len;
    if (flt_tls_cur_vec(&c, 1, &v) < 0) return -1;
    h->compression = v.p;
    h->compression_len = v.len;
  } else {
    if (flt_tls_cur_bytes(&c, 2, &h->suites) < 0 || flt_tls_cur_bytes(&c, 1, &h->compression) < 0)
      return -1;
    h->suites_len = 2;
    h->compression_len = 1;
    h->hello_retry = memcmp(h->random, hrr_random, 32) == 0;
  }
  return hello_exts(&c, h) < 0 ? -1 : 0;
}

int flt_tls_hello_find_ext(const flt_tls_hello_t *h, uint16_t type, flt_tls_ext_t *e) {
  flt_tls_cur_t it;

  flt_tls_cur_init(&it, h->exts, h->exts_len);
  while (flt_tls_ext_next(&it, e) == 1)
    if (e->type == type) return 1;
  return 0;
}

uint16_t flt_tls_hello_version(const flt_tls_hello_t *h) {
  flt_tls_ext_t e;
  flt_tls_cur_t c, list;
  uint16_t v, best = 0;

  if (!flt_tls_hello_find_ext(h, FLT_TLS_EXT_SUPPORTED_VERSIONS, &e)) return h->version;
  flt_tls_cur_init(&c, e.data, e.len);
  if (!h->client) return flt_tls_cur_u16(&c, &v) == 0 ? v : h->version;
  if (flt_tls_cur_vec(&c, 1, &list) < 0) return h->version;
  while (flt_tls_cur_u16(&list, &v) == 0)
    if (!flt_tls_is_grease(v) && v > best) best = v;
  return best ? best : h->version;
}

uint16_t flt_tls_hello_suite(const flt_tls_hello_t *h) {
  if (h->client || h->suites_len != 2) return 0;
  return (uint16_t)(h->suites[0] << 8 | h->suites[1]);
}

/* ---- digests ---------------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";

static int digest_hex(const EVP_MD *md, const void *data, size_t len, char *hex, size_t hex_chars) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;

  if (EVP_Digest(data, len, d, &n, md, NULL) != 1) return -1;
  for (size_t i = 0; i < n && 2 * i + 1 < hex_chars; i++) {
    hex[2 * i] = hex_digits[d[i] >> 4];
    hex[2 * i + 1] = hex_digits[d[i] & 0x0f];
  }
  hex[hex_chars < 2u * n ? hex_chars : 2u * n] = '\0';
  return 0;
}

/* Fingerprints are computed for every ClientHello: these append a separator
 * (when `sep` is not 0) and a number without going through printf. */
static int append_dec(flt_strbuf_t *s, char sep, unsigned v) {
  char buf[8];
  size_t i = sizeof(buf);
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v && i > 1);
  if (sep) buf[--i] = sep;
  return flt_strbuf_append(s, buf + i, sizeof(buf) - i);
}

static int append_hex4(flt_strbuf_t *s, char sep, unsigned v) {
  char buf[5] = {sep, hex_digits[(v >> 12) & 0xf], hex_digits[(v >> 8) & 0xf],
                 hex_digits[(v >> 4) & 0xf], hex_digits[v & 0xf]};
  return sep ? flt_strbuf_append(s, buf, 5) : flt_strbuf_append(s, buf + 1, 4);
}

/* ---- JA3 / JA3S --------------------------------------------------------------- */

/* Appends a u16 list (its items read with `width` bytes each) as decimal
 * numbers joined by '-', GREASE removed. */
static int ja3_list(flt_strbuf_t *s, flt_tls_cur_t list, int width) {
  int first = 1, r = 0;
  uint16_t v16;
  uint8_t v8;

  for (;;) {
    if (width == 2) {
      if (flt_tls_cur_u16(&list, &v16) < 0) break;
    } else {
      if (flt_tls_cur_u8(&list, &v8) < 0) break;
      v16 = v8;
    }
    if (width == 2 && flt_tls_is_grease(v16)) continue;
    r |= append_dec(s, first ? 0 : '-', v16);
    first = 0;
  }
  return r;
}

/* The payload of a list-valued extension (groups: u16 list with a 2-byte
 * length; point formats: u8 list with a 1-byte length), or an empty
 * cursor when absent or malformed. */
static flt_tls_cur_t ext_list(const flt_tls_hello_t *h, uint16_t type, int len_bytes) {
  flt_tls_ext_t e;
  flt_tls_cur_t c, list;

  flt_tls_cur_init(&list, NULL, 0);
  if (flt_tls_hello_find_ext(h, type, &e)) {
    flt_tls_cur_init(&c, e.data, e.len);
    if (flt_tls_cur_vec(&c, len_bytes, &list) < 0) flt_tls_cur_init(&list, NULL, 0);
  }
  return list;
}

static int ja3_exts(flt_strbuf_t *s, const flt_tls_hello_t *h) {
  flt_tls_cur_t it;
  flt_tls_ext_t e;
  int first = 1, r = 0;

  flt_tls_cur_init(&it, h->exts, h->exts_len);
  while (flt_tls_ext_next(&it, &e) == 1) {
    if (flt_tls_is_grease(e.type)) continue;
    r |= append_dec(s, first ? 0 : '-', e.type);
    first = 0;
  }
  return r;
}

static int ja3_finish(flt_strbuf_t *str, int r, char md5[33]) {
  md5[0] = '\0';
  if (r != 0 || str->truncated || str->data == NULL) return -1;
  return digest_hex(EVP_md5(), str->data, str->len, md5, 32);
}

int flt_tls_ja3(const flt_tls_hello_t *h, flt_strbuf_t *str, char md5[33]) {
  flt_tls_cur_t suites;
  int r;

  if (!h->client) {
    md5[0] = '\0';
    return -1;
  }
  flt_tls_cur_init(&suites, h->suites, h->suites_len);
  r = flt_strbuf_appendf(str, "%u,", (unsigned)h->version);
  r |= ja3_list(str, suites, 2);
  r |= flt_strbuf_append(str, ",", 1);
  r |= ja3_exts(str, h);
  r |= flt_strbuf_append(str, ",", 1);
  r |= ja3_list(str, ext_list(h, FLT_TLS_EXT_SUPPORTED_GROUPS, 2), 2);
  r |= flt_strbuf_append(str, ",", 1);
  r |= ja3_list(str, ext_list(h, FLT_TLS_EXT_EC_POINT_FORMATS, 1), 1);
  return ja3_finish(str, r, md5);
}

int flt_tls_ja3s(const flt_tls_hello_t *h, flt_strbuf_t *str, char md5[33]) {
  int r;

  if (h->client) {
    md5[0] = '\0';
    return -1;
  }
  r = flt_strbuf_appendf(str, "%u,%u,", (unsigned)h->version, (unsigned)flt_tls_hello_suite(h));
  r |= ja3_exts(str, h);
  return ja3_finish(str, r, md5);
}

/* ---- JA4 ---------------------------------------------------------------------- */

static int cmp_u16(const void *a, const void *b) {
  uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
  return x < y ? -1 : x > y;
}

/* "1301,1302,..." of v[0..n); returns 0 or -1 (cap). */
static int hex_join(flt_strbuf_t *s, const uint16_t *v, size_t n) {
  int r = 0;
  for (size_t i = 0; i < n; i++)
    r |= append_hex4(s, i ? ',' : 0, v[i]);
  return r;
}

/* The JA4 version code of the version a ClientHello offers. */
static const char *ja4_version(uint16_t v) {
  switch (v) {
    case 0x0304:
      return "13";
    case 0x0303:
      return "12";
    case 0x0302:
      return "11";
    case 0x0301:
      return "10";
    case 0x0300:
      return "s3";
    case 0x0002:
      return "s2";
    case 0xfeff:
      return "d1";
    case 0xfefd:
      return "d2";
    case 0xfefc:
      return "d3";
    default:
      return "00";
  }
}

static int is_alnum(uint8_t b) {
  return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

/* First and last character of the first ALPN value; "00" when there is
 * none; the first and last hex digit when either end is not alphanumeric. */
static void ja4_alpn(const flt_tls_hello_t *h, char out[3]) {
  static const char hex[] = "0123456789abcdef";
  flt_tls_ext_t e;
  flt_tls_cur_t c, list, name;

  strcpy(out, "00");
  if (!flt_tls_hello_find_ext(h, FLT_TLS_EXT_ALPN, &e)) return;
  flt_tls_cur_init(&c, e.data, e.len);
  if (flt_tls_cur_vec(&c, 2, &list) < 0 || flt_tls_cur_vec(&list, 1, &name) < 0 || name.len == 0)
    return;
  uint8_t first = name.p[0], last = name.p[name.len - 1];
  if (is_alnum(first) && is_alnum(last)) {
    out[0] = (char)first;
    out[1] = (char)last;
  } else {
    out[0] = hex[first >> 4];
    out[1] = hex[last & 0x0f];
  }
}

/* The sorted, GREASE-free ciphers and extensions (without SNI and ALPN for
 * the hash, but counted), and the signature algorithms in wire order. */
typedef struct ja4_lists {
  uint16_t *ciphers, *exts, *sigalgs;
  size_t n_ciphers, n_exts, n_exts_hashed, n_sigalgs;
  int sni;
} ja4_lists_t;

static int ja4_collect(const flt_tls_hello_t *h, ja4_lists_t *l) {
  flt_tls_cur_t c, it;
  flt_tls_ext_t e;
  uint16_t v;

  memset(l, 0, sizeof(*l));
  l->ciphers = malloc(h->suites_len / 2 * sizeof(uint16_t) + 1);
  l->exts = malloc(h->n_exts * sizeof(uint16_t) + 1);
  l->sigalgs = malloc(h->exts_len / 2 * sizeof(uint16_t) + 1);
  if (!l->ciphers || !l->exts || !l->sigalgs) return -1;
  flt_tls_cur_init(&c, h->suites, h->suites_len);
  while (flt_tls_cur_u16(&c, &v) == 0)
    if (!flt_tls_is_grease(v)) l->ciphers[l->n_ciphers++] = v;
  flt_tls_cur_init(&it, h->exts, h->exts_len);
  while (flt_tls_ext_next(&it, &e) == 1) {
    if (flt_tls_is_grease(e.type)) continue;
    l->n_exts++;
    if (e.type == FLT_TLS_EXT_SERVER_NAME) l->sni = 1;
    if (e.type != FLT_TLS_EXT_SERVER_NAME && e.type != FLT_TLS_EXT_ALPN)
      l->exts[l->n_exts_hashed++] = e.type;
  }
  if (flt_tls_hello_find_ext(h, FLT_TLS_EXT_SIGNATURE_ALGORITHMS, &e)) {
    flt_tls_cur_t list;
    flt_tls_cur_init(&c, e.data, e.len);
    if (flt_tls_cur_vec(&c, 2, &list) == 0)
      while (flt_tls_cur_u16(&list, &v) == 0)
        if (!flt_tls_is_grease(v)) l->sigalgs[l->n_sigalgs++] = v;
  }
  qsort(l->ciphers, l->n_ciphers, sizeof(uint16_t), cmp_u16);
  qsort(l->exts, l->n_exts_hashed, sizeof(uint16_t), cmp_u16);
  return 0;
}

static void ja4_lists_free(ja4_lists_t *l) {
  free(l->ciphers);
  free(l->exts);
  free(l->sigalgs);
}

/* The "_c" part: sorted extensions, then '_' and the signature algorithms
 * when there are any. */
static int ja4_ext_string(flt_strbuf_t *s, const ja4_lists_t *l) {
  int r = hex_join(s, l->exts, l->n_exts_hashed);
  if (l->n_sigalgs) {
    r |= flt_strbuf_append(s, "_", 1);
    r |= hex_join(s, l->sigalgs, l->n_sigalgs);
  }
  return r;
}

/* sha256 of the string, first 12 hex digits; "000000000000" for an empty
 * list (FoxIO: makes "no values" visible instead of hashing nothing). */
static int ja4_hash12(const flt_strbuf_t *s, size_t n_items, char out[13]) {
  if (n_items == 0) {
    strcpy(out, "000000000000");
    return 0;
  }
  return digest_hex(EVP_sha256(), s->data ? s->data : "", s->len, out, 12);
}

int flt_tls_ja4(const flt_tls_hello_t *h, char ja4[FLT_TLS_JA4_LEN], flt_strbuf_t *raw) {
  ja4_lists_t l;
  flt_strbuf_t cs, es;
  char a[16], alpn[3], hb[13], hc[13];
  int r = -1;

  ja4[0] = '\0';
  if (!h->client) return -1;
  flt_strbuf_init(&cs, FLT_TLS_MAX_JA3);
  flt_strbuf_init(&es, FLT_TLS_MAX_JA3);
  if (ja4_collect(h, &l) < 0) goto Exit;
  ja4_alpn(h, alpn);
  snprintf(a, sizeof(a), "t%s%c%02u%02u%s", ja4_version(flt_tls_hello_version(h)),
           l.sni ? 'd' : 'i', (unsigned)(l.n_ciphers > 99 ? 99 : l.n_ciphers),
           (unsigned)(l.n_exts > 99 ? 99 : l.n_exts), alpn);
  if (hex_join(&cs, l.ciphers, l.n_ciphers) < 0 || ja4_ext_string(&es, &l) < 0) goto Exit;
  if (ja4_hash12(&cs, l.n_ciphers, hb) < 0 || ja4_hash12(&es, l.n_exts_hashed, hc) < 0) goto Exit;
  snprintf(ja4, FLT_TLS_JA4_LEN, "%s_%s_%s", a, hb, hc);
  r = 0;
  if (raw)
    r = flt_strbuf_appendf(raw, "%s_%s_%s", a, cs.data ? cs.data : "", es.data ? es.data : "");
Exit:
  ja4_lists_free(&l);
  flt_strbuf_free(&cs);
  flt_strbuf_free(&es);
  return r;
}

int flt_tls_fingerprint(const uint8_t *client_hello_msg, size_t len, char ja3_md5[33],
                        char *ja3_string, size_t ja3_cap, char ja4[48]) {
  flt_tls_hello_t h;
  flt_strbuf_t s;
  int r = -1;

  ja3_md5[0] = '\0';
  ja4[0] = '\0';
  if (ja3_string && ja3_cap) ja3_string[0] = '\0';
  flt_strbuf_init(&s, FLT_TLS_MAX_JA3);
  if (flt_tls_hello_parse(client_hello_msg, len, &h) < 0 || !h.client) goto Exit;
  if (flt_tls_ja3(&h, &s, ja3_md5) < 0 || flt_tls_ja4(&h, ja4, NULL) < 0) {
    ja3_md5[0] = '\0';
    ja4[0] = '\0';
    goto Exit;
  }
  if (ja3_string && ja3_cap) snprintf(ja3_string, ja3_cap, "%s", s.data ? s.data : "");
  r = 0;
Exit:
  flt_strbuf_free(&s);
  return r;
}

/* ---- Certificate, ServerKeyExchange ------------------------------------------- */

int flt_tls_cert_list(const uint8_t *msg, size_t len, int tls13, flt_tls_cur_t *list) {
  flt_tls_cur_t c, ctx;
  uint8_t type;

  if (hs_body(msg, len, &type, &c) < 0 || type != FLT_TLS_HS_CERTIFICATE) return -1;
  if (tls13 && flt_tls_cur_vec(&c, 1, &ctx) < 0) return -1;
  if (flt_tls_cur_vec(&c, 3, list) < 0 || flt_tls_cur_left(&c) != 0) return -1;
  return 0;
}

int flt_tls_cert_next(flt_tls_cur_t *list, int tls13, const uint8_t **der, size_t *der_len) {
  flt_tls_cur_t cert, exts;
  size_t start = list->off;

  if (flt_tls_cur_left(list) == 0) return 0;
  if (flt_tls_cur_vec(list, 3, &cert) < 0 || (tls13 && flt_tls_cur_vec(list, 2, &exts) < 0)) {
    list->off = start;
    return -1;
  }
  *der = cert.p;
  *der_len = cert.len;
  return 1;
}

/* The TLS 1.2 signature after the parameters. */
static int ske_signature(flt_tls_cur_t *c, flt_tls_ske_t *ske) {
  flt_tls_cur_t sig;

  if (flt_tls_cur_left(c) == 0) return 0; /* anonymous key exchange */
  if (flt_tls_cur_u16(c, &ske->sigalg) < 0 || flt_tls_cur_vec(c, 2, &sig) < 0 ||
      flt_tls_cur_left(c) != 0)
    return -1;
  ske->has_sig = 1;
  ske->sig_len = sig.len;
  return 0;
}

int flt_tls_ske_parse(const uint8_t *msg, size_t len, flt_tls_ske_t *ske) {
  flt_tls_cur_t body, c, v;
  uint8_t type, curve_type;

  memset(ske, 0, sizeof(*ske));
  if (hs_body(msg, len, &type, &body) < 0 || type != FLT_TLS_HS_SERVER_KEY_EXCHANGE) return -1;
  /* ECDHE with a named curve (curve_type 3) is what everyone sends; try
   * it first and fall back to DHE's (p, g, Ys) when it does not fit. */
  c = body;
  if (flt_tls_cur_u8(&c, &curve_type) == 0 && curve_type == 3 &&
      flt_tls_cur_u16(&c, &ske->group) == 0 && flt_tls_cur_vec(&c, 1, &v) == 0 &&
      ske_signature(&c, ske) == 0) {
    ske->ecdhe = 1;
    ske->pub_len = v.len;
    return 0;
  }
  memset(ske, 0, sizeof(*ske));
  c = body;
  if (flt_tls_cur_vec(&c, 2, &v) < 0) return -1;
  ske->dh_p_len = v.len;
  if (flt_tls_cur_vec(&c, 2, &v) < 0 || flt_tls_cur_vec(&c, 2, &v) < 0) return -1;
  ske->pub_len = v.len;
  return ske_signature(&c, ske);
}

/* ---- records ------------------------------------------------------------------ */

int flt_tls_record_header(const uint8_t *p, size_t len, uint8_t *type, uint16_t *version,
                          size_t *body_len) {
  flt_tls_cur_t c;
  uint16_t n;

  flt_tls_cur_init(&c, p, len);
  if (flt_tls_cur_u8(&c, type) < 0 || flt_tls_cur_u16(&c, version) < 0 ||
      flt_tls_cur_u16(&c, &n) < 0)
    return -1;
  *body_len = n;
  if (*type < FLT_TLS_CT_CHANGE_CIPHER_SPEC || *type > FLT_TLS_CT_HEARTBEAT) return 0;
  if ((*version >> 8) != 3 || (*version & 0xff) > 4) return 0;
  return n <= FLT_TLS_MAX_RECORD ? 1 : 0;
}
