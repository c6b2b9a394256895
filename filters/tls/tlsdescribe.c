/* tlsdescribe.c — handshake messages as text, field by field, the way a
 * protocol analyser shows them (tlsparse.h, "rendering").
 *
 * A field that does not parse is shown as "malformed" with its bytes in
 * hex rather than skipped: the point of the view is to show what was
 * actually sent. */
#include "filters/tls/tlsparse.h"

#include <string.h>

/* Bytes of an unknown or malformed field shown in hex. */
#define DESCRIBE_HEX_MAX 32

static int put(flt_strbuf_t *out, const char *s) {
  return flt_strbuf_append(out, s, strlen(s));
}

int flt_tls_put_escaped(flt_strbuf_t *out, const uint8_t *p, size_t len) {
  int r = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
      r |= flt_strbuf_append(out, &p[i], 1);
    else
      r |= flt_strbuf_appendf(out, "\\x%02x", p[i]);
  }
  return r;
}

int flt_tls_put_hex(flt_strbuf_t *out, const uint8_t *p, size_t len, size_t max) {
  static const char digits[] = "0123456789abcdef";
  char pair[2];
  int r = 0;

  for (size_t i = 0; i < len && i < max; i++) {
    pair[0] = digits[p[i] >> 4];
    pair[1] = digits[p[i] & 0x0f];
    r |= flt_strbuf_append(out, pair, 2);
  }
  if (len > max) r |= flt_strbuf_appendf(out, "\xe2\x80\xa6 (%zu bytes)", len);
  return r;
}

/* "name (0x1234)", "GREASE (0x1a1a)" or "unknown (0x1234)". */
static int put_named(flt_strbuf_t *out, const char *(*lookup)(uint16_t), uint16_t v) {
  const char *name = flt_tls_is_grease(v) ? "GREASE" : lookup(v);
  return flt_strbuf_appendf(out, "%s (0x%04x)", name ? name : "unknown", (unsigned)v);
}

static int malformed(flt_strbuf_t *out, const uint8_t *p, size_t len) {
  int r = flt_strbuf_appendf(out, "malformed (%zu bytes): ", len);
  return r | flt_tls_put_hex(out, p, len, DESCRIBE_HEX_MAX);
}

/* A u16 list with a 2-byte (or, for supported_versions, 1-byte) length
 * prefix, as "a (0x..), b (0x..)". */
static int u16_list(flt_strbuf_t *out, const flt_tls_ext_t *e, int len_bytes,
                    const char *(*lookup)(uint16_t)) {
  flt_tls_cur_t c, list;
  uint16_t v;
  int r = 0, first = 1;

  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_vec(&c, len_bytes, &list) < 0 || flt_tls_cur_left(&c) != 0 || list.len % 2 != 0)
    return malformed(out, e->data, e->len);
  while (flt_tls_cur_u16(&list, &v) == 0) {
    if (!first) r |= put(out, ", ");
    r |= put_named(out, lookup, v);
    first = 0;
  }
  return first ? r | put(out, "(empty list)") : r;
}

static const char *version_lookup(uint16_t v) {
  const char *s = flt_tls_version_name(v);
  return strcmp(s, "unknown") == 0 ? NULL : s;
}

static int ext_sni(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  flt_tls_cur_t c, list, name;
  uint8_t type;
  int r = 0, first = 1;

  if (e->len == 0) return put(out, "(empty: the server used the name sent)");
  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_vec(&c, 2, &list) < 0 || flt_tls_cur_left(&c) != 0)
    return malformed(out, e->data, e->len);
  while (flt_tls_cur_left(&list)) {
    if (flt_tls_cur_u8(&list, &type) < 0 || flt_tls_cur_vec(&list, 2, &name) < 0)
      return malformed(out, e->data, e->len);
    if (!first) r |= put(out, ", ");
    if (type != 0) r |= flt_strbuf_appendf(out, "(name type %u) ", type);
    r |= flt_tls_put_escaped(out, name.p, name.len);
    first = 0;
  }
  return r;
}

static int ext_alpn(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  flt_tls_cur_t c, list, name;
  int r = 0, first = 1;

  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_vec(&c, 2, &list) < 0 || flt_tls_cur_left(&c) != 0)
    return malformed(out, e->data, e->len);
  while (flt_tls_cur_left(&list)) {
    if (flt_tls_cur_vec(&list, 1, &name) < 0) return malformed(out, e->data, e->len);
    if (!first) r |= put(out, ", ");
    r |= flt_tls_put_escaped(out, name.p, name.len);
    first = 0;
  }
  return r;
}

static int ext_key_share(flt_strbuf_t *out, unsigned hs_type, int hrr, const flt_tls_ext_t *e) {
  flt_tls_cur_t c, list, key;
  uint16_t group;
  int r = 0, first = 1;

  flt_tls_cur_init(&c, e->data, e->len);
  if (hrr) { /* HelloRetryRequest: only the group the server wants */
    if (flt_tls_cur_u16(&c, &group) < 0 || flt_tls_cur_left(&c) != 0)
      return malformed(out, e->data, e->len);
    r |= put(out, "retry with ");
    return r | put_named(out, flt_tls_group_name, group);
  }
  if (hs_type == FLT_TLS_HS_CLIENT_HELLO) {
    if (flt_tls_cur_vec(&c, 2, &list) < 0 || flt_tls_cur_left(&c) != 0)
      return malformed(out, e->data, e->len);
  } else {
    list = c;
  }
  while (flt_tls_cur_left(&list)) {
    if (flt_tls_cur_u16(&list, &group) < 0 || flt_tls_cur_vec(&list, 2, &key) < 0)
      return malformed(out, e->data, e->len);
    if (!first) r |= put(out, ", ");
    r |= put_named(out, flt_tls_group_name, group);
    r |= flt_strbuf_appendf(out, " %zu-byte key", key.len);
    first = 0;
  }
  return first ? r | put(out, "(no key shares)") : r;
}

/* Lists of u8 code points with a 1-byte length: point formats, PSK modes,
 * certificate compression (u16 items). */
static int u8_named_list(flt_strbuf_t *out, const flt_tls_ext_t *e, const char *const *names,
                         size_t n_names) {
  flt_tls_cur_t c, list;
  uint8_t v;
  int r = 0, first = 1;

  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_vec(&c, 1, &list) < 0 || flt_tls_cur_left(&c) != 0)
    return malformed(out, e->data, e->len);
  while (flt_tls_cur_u8(&list, &v) == 0) {
    if (!first) r |= put(out, ", ");
    r |= flt_strbuf_appendf(out, "%s (%u)", v < n_names ? names[v] : "unknown", v);
    first = 0;
  }
  return r;
}

static const char *cert_compression_name(uint16_t v) {
  switch (v) {
    case 1:
      return "zlib";
    case 2:
      return "brotli";
    case 3:
      return "zstd";
    default:
      return NULL;
  }
}

/* A single u16, shown as before<number>after. */
static int ext_u16(flt_strbuf_t *out, const flt_tls_ext_t *e, const char *before,
                   const char *after) {
  flt_tls_cur_t c;
  uint16_t v;

  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_u16(&c, &v) < 0 || flt_tls_cur_left(&c) != 0)
    return malformed(out, e->data, e->len);
  return flt_strbuf_appendf(out, "%s%u%s", before, (unsigned)v, after);
}

static int ext_padding(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  size_t nonzero = 0;
  for (size_t i = 0; i < e->len; i++)
    nonzero += e->data[i] != 0;
  if (nonzero) return flt_strbuf_appendf(out, "%zu bytes (%zu not zero!)", e->len, nonzero);
  return flt_strbuf_appendf(out,
                            "%zu zero bytes (fills the hello to a size "
                            "that old middleboxes do not choke on)",
                            e->len);
}

static int ext_psk(flt_strbuf_t *out, unsigned hs_type, const flt_tls_ext_t *e) {
  flt_tls_cur_t c, ids, binders, id;
  uint32_t age;
  size_t n = 0;

  if (hs_type != FLT_TLS_HS_CLIENT_HELLO)
    return ext_u16(out, e, "server accepted PSK identity #", " (resumption)");
  flt_tls_cur_init(&c, e->data, e->len);
  if (flt_tls_cur_vec(&c, 2, &ids) < 0 || flt_tls_cur_vec(&c, 2, &binders) < 0)
    return malformed(out, e->data, e->len);
  while (flt_tls_cur_vec(&ids, 2, &id) == 0 && flt_tls_cur_u32(&ids, &age) == 0)
    n++;
  return flt_strbuf_appendf(out, "%zu identit%s (resumption tickets), binders %zu bytes", n,
                            n == 1 ? "y" : "ies", binders.len);
}

static int ext_status_request(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  if (e->len == 0) return put(out, "(empty: a stapled OCSP response follows)");
  if (e->data[0] == 1) return put(out, "OCSP (asks the server to staple its OCSP response)");
  return flt_strbuf_appendf(out, "status type %u, %zu bytes", e->data[0], e->len);
}

static int ext_session_ticket(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  if (e->len == 0) return put(out, "empty (supports tickets; none to resume)");
  return flt_strbuf_appendf(out, "%zu-byte ticket (resuming a session)", e->len);
}

static int ext_reneg(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  if (e->len == 1 && e->data[0] == 0)
    return put(out, "empty (initial handshake; secure renegotiation supported)");
  return flt_strbuf_appendf(out, "%zu bytes (renegotiation)", e->len);
}

static int ext_max_fragment(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  if (e->len != 1 || e->data[0] < 1 || e->data[0] > 4) return malformed(out, e->data, e->len);
  return flt_strbuf_appendf(out, "%u bytes", 1u << (8 + e->data[0]));
}

static int ext_generic(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  if (e->len == 0) return put(out, "(empty)");
  int r = flt_strbuf_appendf(out, "%zu bytes: ", e->len);
  return r | flt_tls_put_hex(out, e->data, e->len, DESCRIBE_HEX_MAX);
}

/* The list-valued extensions; 1 when e is not one of them. */
static int ext_describe_lists(flt_strbuf_t *out, const flt_tls_ext_t *e) {
  static const char *const point_formats[] = {"uncompressed", "ansiX962_compressed_prime",
                                              "ansiX962_compressed_char2"};
  static const char *const psk_modes[] = {"psk_ke", "psk_dhe_ke"};

  switch (e->type) {
    case FLT_TLS_EXT_SUPPORTED_GROUPS:
      return u16_list(out, e, 2, flt_tls_group_name);
    case FLT_TLS_EXT_SIGNATURE_ALGORITHMS:
    case FLT_TLS_EXT_SIGNATURE_ALGORITHMS_CERT:
      return u16_list(out, e, 2, flt_tls_sigalg_name);
    case FLT_TLS_EXT_SUPPORTED_VERSIONS: /* the ClientHello's list */
      return u16_list(out, e, 1, version_lookup);
    case FLT_TLS_EXT_EC_POINT_FORMATS:
      return u8_named_list(out, e, point_formats, 3);
    case FLT_TLS_EXT_PSK_KEY_EXCHANGE_MODES:
      return u8_named_list(out, e, psk_modes, 2);
    case FLT_TLS_EXT_COMPRESS_CERTIFICATE: /* 1-byte length, u16 ids */
      return u16_list(out, e, 1, cert_compression_name);
    default:
      return 1; /* not a list */
  }
}

int flt_tls_ext_describe(flt_strbuf_t *out, unsigned hs_type, const flt_tls_ext_t *e) {
  int hrr = (hs_type & FLT_TLS_HS_HRR_FLAG) != 0;
  hs_type &= 0xff;
  if (flt_tls_is_grease(e->type))
    return flt_strbuf_appendf(out,
                              "%zu bytes (GREASE: a meaningless value that keeps "
                              "servers tolerant of unknown extensions)",
                              e->len);
  if (e->type == FLT_TLS_EXT_SUPPORTED_VERSIONS && hs_type != FLT_TLS_HS_CLIENT_HELLO) {
    flt_tls_cur_t c;
    uint16_t v;
    flt_tls_cur_init(&c, e->data, e->len);
    if (flt_tls_cur_u16(&c, &v) < 0 || flt_tls_cur_left(&c) != 0)
      return malformed(out, e->data, e->len);
    return put_named(out, version_lookup, v);
  }
  int r = ext_describe_lists(out, e);
  if (r != 1) return r;
  switch (e->type) {
    case FLT_TLS_EXT_SERVER_NAME:
      return ext_sni(out, e);
    case FLT_TLS_EXT_ALPN:
      return ext_alpn(out, e);
    case FLT_TLS_EXT_KEY_SHARE:
      return ext_key_share(out, hs_type, hrr, e);
    case FLT_TLS_EXT_PADDING:
      return ext_padding(out, e);
    case FLT_TLS_EXT_PRE_SHARED_KEY:
      return ext_psk(out, hs_type, e);
    case FLT_TLS_EXT_STATUS_REQUEST:
      return ext_status_request(out, e);
    case FLT_TLS_EXT_SESSION_TICKET:
      return ext_session_ticket(out, e);
    case FLT_TLS_EXT_RENEGOTIATION_INFO:
      return ext_reneg(out, e);
    case FLT_TLS_EXT_RECORD_SIZE_LIMIT:
      return ext_u16(out, e, "", " bytes per record at most");
    case 1:
      return ext_max_fragment(out, e);
    case FLT_TLS_EXT_ENCRYPT_THEN_MAC:
    case FLT_TLS_EXT_EXTENDED_MASTER_SECRET:
    case FLT_TLS_EXT_EARLY_DATA:
    case 49: /* post_handshake_auth */
      if (e->len == 0) return put(out, "(empty: supported)");
      return ext_generic(out, e);
    case FLT_TLS_EXT_ECH:
      return flt_strbuf_appendf(out,
                                "present, %zu bytes (not decoded: the real "
                                "ClientHello inside is encrypted to the server's "
                                "ECH key)",
                                e->len);
    default:
      return ext_generic(out, e);
  }
}

/* ---- hellos ------------------------------------------------------------------ */

static int hello_suites(flt_strbuf_t *out, const char *indent, const flt_tls_hello_t *h) {
  flt_tls_cur_t c;
  uint16_t v;
  int r;

  if (!h->client) {
    v = flt_tls_hello_suite(h);
    r = flt_strbuf_appendf(out, "%scipher suite: 0x%04x %s\n", indent, (unsigned)v,
                           flt_tls_suite_name(v) ? flt_tls_suite_name(v) : "unknown");
    return r | flt_strbuf_appendf(out, "%scompression method: %u%s\n", indent, h->compression[0],
                                  h->compression[0] ? "" : " (null)");
  }
  r = flt_strbuf_appendf(out, "%scipher suites (%zu):\n", indent, h->suites_len / 2);
  flt_tls_cur_init(&c, h->suites, h->suites_len);
  while (flt_tls_cur_u16(&c, &v) == 0) {
    const char *name = flt_tls_is_grease(v) ? "GREASE" : flt_tls_suite_name(v);
    r |= flt_strbuf_appendf(out, "%s  0x%04x %s\n", indent, (unsigned)v, name ? name : "unknown");
  }
  r |= flt_strbuf_appendf(out, "%scompression methods:", indent);
  for (size_t i = 0; i < h->compression_len; i++)
    r |= flt_strbuf_appendf(out, " %u%s", h->compression[i], h->compression[i] ? "" : " (null)");
  return r | put(out, "\n");
}

static int hello_exts(flt_strbuf_t *out, const char *indent, const flt_tls_hello_t *h) {
  unsigned hs = (h->client ? FLT_TLS_HS_CLIENT_HELLO : FLT_TLS_HS_SERVER_HELLO) |
                (h->hello_retry ? FLT_TLS_HS_HRR_FLAG : 0u);
  flt_tls_cur_t it;
  flt_tls_ext_t e;
  int r;

  if (!h->has_exts) return flt_strbuf_appendf(out, "%sextensions: none\n", indent);
  r = flt_strbuf_appendf(out, "%sextensions (%zu):\n", indent, h->n_exts);
  flt_tls_cur_init(&it, h->exts, h->exts_len);
  while (flt_tls_ext_next(&it, &e) == 1) {
    const char *name = flt_tls_is_grease(e.type) ? "GREASE" : flt_tls_ext_name(e.type);
    r |=
        flt_strbuf_appendf(out, "%s  %s (%u): ", indent, name ? name : "unknown", (unsigned)e.type);
    r |= flt_tls_ext_describe(out, hs, &e);
    r |= put(out, "\n");
  }
  return r;
}

int flt_tls_hello_describe(flt_strbuf_t *out, const char *indent, const flt_tls_hello_t *h,
                           uint16_t record_version) {
  int r = 0;

  if (h->hello_retry)
    r |= flt_strbuf_appendf(out,
                            "%sthis ServerHello is a HelloRetryRequest: the "
                            "client must send a new ClientHello\n",
                            indent);
  if (record_version)
    r |= flt_strbuf_appendf(out, "%srecord version: %s (0x%04x)\n", indent,
                            flt_tls_version_name(record_version), (unsigned)record_version);
  else
    r |= flt_strbuf_appendf(out,
                            "%srecord version: not shown (the record header "
                            "is only seen with --wire)\n",
                            indent);
  r |= flt_strbuf_appendf(out, "%shandshake version: %s (0x%04x)\n", indent,
                          flt_tls_version_name(h->version), (unsigned)h->version);
  uint16_t real = flt_tls_hello_version(h);
  if (real != h->version)
    r |= flt_strbuf_appendf(out, "%s%s version: %s (0x%04x) (supported_versions)\n", indent,
                            h->client ? "highest offered" : "chosen", flt_tls_version_name(real),
                            (unsigned)real);
  r |= flt_strbuf_appendf(out, "%srandom: ", indent);
  r |= flt_tls_put_hex(out, h->random, 32, 32);
  r |= flt_strbuf_appendf(out, "\n%ssession id: ", indent);
  if (h->session_id_len == 0)
    r |= put(out, "empty");
  else {
    r |= flt_strbuf_appendf(out, "(%zu bytes) ", h->session_id_len);
    r |= flt_tls_put_hex(out, h->session_id, h->session_id_len, 32);
  }
  r |= put(out, "\n");
  r |= hello_suites(out, indent, h);
  return r | hello_exts(out, indent, h);
}

/* ---- the other handshake messages ---------------------------------------------- */

static int describe_ske(flt_strbuf_t *out, const char *indent, const uint8_t *msg, size_t len) {
  flt_tls_ske_t ske;
  int r;

  if (flt_tls_ske_parse(msg, len, &ske) < 0)
    return flt_strbuf_appendf(out,
                              "%skey exchange parameters: not ECDHE/DHE or "
                              "malformed (%zu bytes)\n",
                              indent, len);
  if (ske.ecdhe) {
    r = flt_strbuf_appendf(out, "%skey exchange: ECDHE, curve ", indent);
    r |= put_named(out, flt_tls_group_name, ske.group);
    r |= flt_strbuf_appendf(out, ", server public key %zu bytes\n", ske.pub_len);
  } else {
    r = flt_strbuf_appendf(out,
                           "%skey exchange: DHE, %zu-bit prime, server "
                           "public value %zu bytes\n",
                           indent, ske.dh_p_len * 8, ske.pub_len);
  }
  if (!ske.has_sig) return r | flt_strbuf_appendf(out, "%ssignature: none (anonymous)\n", indent);
  r |= flt_strbuf_appendf(out, "%ssignature: ", indent);
  r |= put_named(out, flt_tls_sigalg_name, ske.sigalg);
  return r | flt_strbuf_appendf(out,
                                ", %zu bytes, made with the certificate's key "
                                "over both randoms and these parameters\n",
                                ske.sig_len);
}

/* ClientKeyExchange: an ECDHE point has a 1-byte length; RSA's encrypted
 * pre-master secret and DHE's Yc have 2. */
static int describe_cke(flt_strbuf_t *out, const char *indent, flt_tls_cur_t body) {
  flt_tls_cur_t c = body, v;

  if (flt_tls_cur_vec(&c, 1, &v) == 0 && flt_tls_cur_left(&c) == 0)
    return flt_strbuf_appendf(out, "%sclient public key: %zu bytes (ECDHE)\n", indent, v.len);
  c = body;
  if (flt_tls_cur_vec(&c, 2, &v) == 0 && flt_tls_cur_left(&c) == 0)
    return flt_strbuf_appendf(out,
                              "%sencrypted pre-master secret (RSA) or DH public "
                              "value: %zu bytes\n",
                              indent, v.len);
  return flt_strbuf_appendf(out, "%s%zu bytes\n", indent, body.len);
}

static int describe_cv(flt_strbuf_t *out, const char *indent, flt_tls_cur_t c) {
  flt_tls_cur_t sig;
  uint16_t alg;
  int r;

  if (flt_tls_cur_u16(&c, &alg) < 0 || flt_tls_cur_vec(&c, 2, &sig) < 0)
    return flt_strbuf_appendf(out, "%smalformed\n", indent);
  r = flt_strbuf_appendf(out, "%ssignature: ", indent);
  r |= put_named(out, flt_tls_sigalg_name, alg);
  return r | flt_strbuf_appendf(out,
                                ", %zu bytes over the transcript so far: "
                                "proves possession of the certificate's key\n",
                                sig.len);
}

static int describe_nst(flt_strbuf_t *out, const char *indent, flt_tls_cur_t c, int tls13) {
  flt_tls_cur_t nonce, ticket, exts;
  uint32_t lifetime, age_add;

  if (flt_tls_cur_u32(&c, &lifetime) < 0) return flt_strbuf_appendf(out, "%smalformed\n", indent);
  if (tls13) {
    if (flt_tls_cur_u32(&c, &age_add) < 0 || flt_tls_cur_vec(&c, 1, &nonce) < 0 ||
        flt_tls_cur_vec(&c, 2, &ticket) < 0 || flt_tls_cur_vec(&c, 2, &exts) < 0)
      return flt_strbuf_appendf(out, "%smalformed\n", indent);
  } else if (flt_tls_cur_vec(&c, 2, &ticket) < 0) {
    return flt_strbuf_appendf(out, "%smalformed\n", indent);
  }
  return flt_strbuf_appendf(out,
                            "%sticket: %zu bytes, lifetime %lu s (lets the client "
                            "resume without a full handshake)\n",
                            indent, ticket.len, (unsigned long)lifetime);
}

static int describe_ee(flt_strbuf_t *out, const char *indent, flt_tls_cur_t c) {
  flt_tls_cur_t exts;
  flt_tls_ext_t e;
  int r = 0, n = 0;

  if (flt_tls_cur_vec(&c, 2, &exts) < 0) return flt_strbuf_appendf(out, "%smalformed\n", indent);
  while (flt_tls_ext_next(&exts, &e) == 1) {
    const char *name = flt_tls_is_grease(e.type) ? "GREASE" : flt_tls_ext_name(e.type);
    r |= flt_strbuf_appendf(out, "%s%s (%u): ", indent, name ? name : "unknown", (unsigned)e.type);
    r |= flt_tls_ext_describe(out, FLT_TLS_HS_ENCRYPTED_EXTENSIONS, &e);
    r |= put(out, "\n");
    n++;
  }
  if (n == 0) r |= flt_strbuf_appendf(out, "%sextensions: none\n", indent);
  return r;
}

int flt_tls_msg_describe(flt_strbuf_t *out, const char *indent, const uint8_t *msg, size_t len,
                         int tls13) {
  flt_tls_cur_t c, body;
  uint8_t type;
  uint32_t n;

  flt_tls_cur_init(&c, msg, len);
  if (flt_tls_cur_u8(&c, &type) < 0 || flt_tls_cur_u24(&c, &n) < 0 || n != flt_tls_cur_left(&c))
    return flt_strbuf_appendf(out, "%smalformed handshake message (%zu bytes)\n", indent, len);
  flt_tls_cur_rest(&c, &body);
  switch (type) {
    case FLT_TLS_HS_SERVER_KEY_EXCHANGE:
      return describe_ske(out, indent, msg, len);
    case FLT_TLS_HS_CLIENT_KEY_EXCHANGE:
      return describe_cke(out, indent, body);
    case FLT_TLS_HS_CERTIFICATE_VERIFY:
      return describe_cv(out, indent, body);
    case FLT_TLS_HS_NEW_SESSION_TICKET:
      return describe_nst(out, indent, body, tls13);
    case FLT_TLS_HS_ENCRYPTED_EXTENSIONS:
      return describe_ee(out, indent, body);
    case FLT_TLS_HS_SERVER_HELLO_DONE:
      return flt_strbuf_appendf(out,
                                "%s(empty: the server has said everything; the "
                                "client's turn)\n",
                                indent);
    case FLT_TLS_HS_FINISHED: {
      int r = flt_strbuf_appendf(out, "%sverify_data: ", indent);
      r |= flt_tls_put_hex(out, body.p, body.len, DESCRIBE_HEX_MAX);
      return r | put(out, " (a MAC over the whole handshake under the new keys)\n");
    }
    case FLT_TLS_HS_KEY_UPDATE:
      return flt_strbuf_appendf(
          out, "%snew traffic keys from here on%s\n", indent,
          body.len == 1 && body.p[0] == 1 ? "; asks the peer to update too" : "");
    default: {
      int r = flt_strbuf_appendf(out, "%s%zu bytes: ", indent, body.len);
      r |= flt_tls_put_hex(out, body.p, body.len, DESCRIBE_HEX_MAX);
      return r | put(out, "\n");
    }
  }
}
