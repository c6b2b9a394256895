/* tlsparse.h — the TLS dissector behind --handshake and --wire: a bounded
 * cursor, parsers for the handshake messages tlspeek shows (ClientHello,
 * ServerHello, Certificate, ServerKeyExchange, ...), IANA name tables,
 * JA3/JA3S/JA4 fingerprints, TLS record framing, and the text renderers
 * that filters/tls/tlsview.c assembles into blocks.
 *
 * Rules every function here keeps:
 *  - Wire bytes are read only through flt_tls_cur_t, which cannot read past
 *    its end: a malformed or hostile message gives -1 (or a "malformed"
 *    line in the rendering), never an out-of-bounds read.
 *  - Nothing here allocates except the strbufs it is handed (and OpenSSL's
 *    X509 objects, freed before return). Nothing here locks or writes.
 *  - Parsed structures borrow the caller's bytes: they are valid as long as
 *    the message they came from.
 *  - Renderers append to a flt_strbuf_t and return 0, or -1 when the buffer
 *    hit its cap (what fit is kept). Text that came off the wire (host
 *    names, ALPN ids, certificate names) is escaped so that it cannot drive
 *    a terminal.
 */
#ifndef TLSPEEK_TLSPARSE_H
#define TLSPEEK_TLSPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/util/strbuf.h"

/* The largest handshake message dissected. A ClientHello with
 * post-quantum key shares and padding is 2-20 KiB; certificate chains
 * reach tens of KiB. TLS allows 16 MiB, which nothing sane sends. */
#define FLT_TLS_MAX_HANDSHAKE (256u * 1024)
/* A TLS record's payload may be 2^14 bytes plus 2048 of expansion (TLS
 * 1.2 ciphertext); anything longer is not a TLS record. */
#define FLT_TLS_MAX_RECORD (16384u + 2048u)
#define FLT_TLS_RECORD_HEADER 5
/* The JA3 string of a ClientHello with every list at its maximum is about
 * 400 KiB; real ones are < 1 KiB. Longer strings are cut (and the hash is
 * then not computed). */
#define FLT_TLS_MAX_JA3 (64u * 1024)

/* ---- the bounded cursor -------------------------------------------------
 * Every read either succeeds completely and advances, or fails with -1 and
 * leaves the cursor where it was. */
typedef struct flt_tls_cur {
  const uint8_t *p;
  size_t len;
  size_t off;
} flt_tls_cur_t;

void flt_tls_cur_init(flt_tls_cur_t *c, const uint8_t *p, size_t len);
size_t flt_tls_cur_left(const flt_tls_cur_t *c);
int flt_tls_cur_u8(flt_tls_cur_t *c, uint8_t *v);
int flt_tls_cur_u16(flt_tls_cur_t *c, uint16_t *v);
int flt_tls_cur_u24(flt_tls_cur_t *c, uint32_t *v);
int flt_tls_cur_u32(flt_tls_cur_t *c, uint32_t *v);
/* Borrows the next n bytes. */
int flt_tls_cur_bytes(flt_tls_cur_t *c, size_t n, const uint8_t **p);
/* The next n bytes as a cursor of their own. */
int flt_tls_cur_sub(flt_tls_cur_t *c, size_t n, flt_tls_cur_t *sub);
/* A vector with a 1-, 2- or 3-byte length prefix, as a cursor. */
int flt_tls_cur_vec(flt_tls_cur_t *c, int len_bytes, flt_tls_cur_t *sub);
/* The unread rest, as a cursor (the cursor itself is then at its end). */
void flt_tls_cur_rest(flt_tls_cur_t *c, flt_tls_cur_t *rest);

/* ---- numbers and names ------------------------------------------------- */

enum {
  FLT_TLS_CT_CHANGE_CIPHER_SPEC = 20,
  FLT_TLS_CT_ALERT = 21,
  FLT_TLS_CT_HANDSHAKE = 22,
  FLT_TLS_CT_APPLICATION_DATA = 23,
  FLT_TLS_CT_HEARTBEAT = 24
};

enum {
  FLT_TLS_HS_HELLO_REQUEST = 0,
  FLT_TLS_HS_CLIENT_HELLO = 1,
  FLT_TLS_HS_SERVER_HELLO = 2,
  FLT_TLS_HS_NEW_SESSION_TICKET = 4,
  FLT_TLS_HS_END_OF_EARLY_DATA = 5,
  FLT_TLS_HS_ENCRYPTED_EXTENSIONS = 8,
  FLT_TLS_HS_CERTIFICATE = 11,
  FLT_TLS_HS_SERVER_KEY_EXCHANGE = 12,
  FLT_TLS_HS_CERTIFICATE_REQUEST = 13,
  FLT_TLS_HS_SERVER_HELLO_DONE = 14,
  FLT_TLS_HS_CERTIFICATE_VERIFY = 15,
  FLT_TLS_HS_CLIENT_KEY_EXCHANGE = 16,
  FLT_TLS_HS_FINISHED = 20,
  FLT_TLS_HS_CERTIFICATE_STATUS = 22,
  FLT_TLS_HS_KEY_UPDATE = 24,
  FLT_TLS_HS_COMPRESSED_CERTIFICATE = 25
};

enum {
  FLT_TLS_EXT_SERVER_NAME = 0,
  FLT_TLS_EXT_STATUS_REQUEST = 5,
  FLT_TLS_EXT_SUPPORTED_GROUPS = 10,
  FLT_TLS_EXT_EC_POINT_FORMATS = 11,
  FLT_TLS_EXT_SIGNATURE_ALGORITHMS = 13,
  FLT_TLS_EXT_ALPN = 16,
  FLT_TLS_EXT_PADDING = 21,
  FLT_TLS_EXT_ENCRYPT_THEN_MAC = 22,
  FLT_TLS_EXT_EXTENDED_MASTER_SECRET = 23,
  FLT_TLS_EXT_COMPRESS_CERTIFICATE = 27,
  FLT_TLS_EXT_RECORD_SIZE_LIMIT = 28,
  FLT_TLS_EXT_SESSION_TICKET = 35,
  FLT_TLS_EXT_PRE_SHARED_KEY = 41,
  FLT_TLS_EXT_EARLY_DATA = 42,
  FLT_TLS_EXT_SUPPORTED_VERSIONS = 43,
  FLT_TLS_EXT_PSK_KEY_EXCHANGE_MODES = 45,
  FLT_TLS_EXT_SIGNATURE_ALGORITHMS_CERT = 50,
  FLT_TLS_EXT_KEY_SHARE = 51,
  FLT_TLS_EXT_ECH = 0xfe0d,
  FLT_TLS_EXT_RENEGOTIATION_INFO = 0xff01
};

/* GREASE (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa, in every u16 list. */
int flt_tls_is_grease(uint16_t v);
/* IANA names; NULL when the number is not in the table (GREASE is not:
 * test it first). */
const char *flt_tls_suite_name(uint16_t suite);
const char *flt_tls_ext_name(uint16_t type);
const char *flt_tls_group_name(uint16_t group);
const char *flt_tls_sigalg_name(uint16_t sigalg);
/* Always a string: "ClientHello", ..., "unknown". */
const char *flt_tls_handshake_name(unsigned type);
const char *flt_tls_content_type_name(unsigned type);
const char *flt_tls_alert_name(unsigned desc);
/* "TLSv1.3", "TLSv1.2", ..., "SSLv3", "unknown". */
const char *flt_tls_version_name(uint16_t version);

/* ---- hellos ------------------------------------------------------------- */

typedef struct flt_tls_ext {
  uint16_t type;
  const uint8_t *data;
  size_t len;
} flt_tls_ext_t;

typedef struct flt_tls_hello {
  int client;            /* 1: ClientHello, 0: ServerHello */
  int hello_retry;       /* a ServerHello that is a HelloRetryRequest */
  uint16_t version;      /* legacy_version of the message */
  const uint8_t *random; /* 32 bytes */
  const uint8_t *session_id;
  size_t session_id_len;
  const uint8_t *suites;      /* ClientHello: the list; ServerHello: 2 bytes */
  size_t suites_len;          /* bytes (even) */
  const uint8_t *compression; /* ClientHello: the list; ServerHello: 1 byte */
  size_t compression_len;
  const uint8_t *exts; /* the extensions block, framing validated */
  size_t exts_len;
  int has_exts; /* the block is present (even if empty) */
  size_t n_exts;
} flt_tls_hello_t;

/* Parses a ClientHello or ServerHello handshake message (with its 4-byte
 * header, as on_tls_message delivers it). Checks every length, including
 * each extension's framing, so that later iteration cannot fail. Trailing
 * bytes after the extensions are an error. Returns 0 or -1. */
int flt_tls_hello_parse(const uint8_t *msg, size_t len, flt_tls_hello_t *h);
/* An iterator over an extensions block: start with flt_tls_cur_init(it,
 * h->exts, h->exts_len). Returns 1 with *e filled, 0 at the end, -1 when
 * malformed. */
int flt_tls_ext_next(flt_tls_cur_t *it, flt_tls_ext_t *e);
/* Finds the first extension of `type`; returns 1 found, 0 not. */
int flt_tls_hello_find_ext(const flt_tls_hello_t *h, uint16_t type, flt_tls_ext_t *e);
/* The version the hello really means: for a ServerHello the
 * supported_versions choice, for a ClientHello the highest non-GREASE
 * supported_versions entry; else legacy_version. */
uint16_t flt_tls_hello_version(const flt_tls_hello_t *h);
/* The ServerHello's cipher suite (0 for a ClientHello). */
uint16_t flt_tls_hello_suite(const flt_tls_hello_t *h);

/* ---- fingerprints --------------------------------------------------------
 * JA3 (Salesforce): "version,ciphers,extensions,groups,point_formats", all
 * decimal, '-' separated, wire order, GREASE removed; hashed with MD5.
 * JA3S: "version,cipher,extensions" of a ServerHello.
 * JA4 (FoxIO): t<ver><d|i><nn ciphers><nn exts><alpn>_<sha256 of sorted
 * ciphers, 12 hex>_<sha256 of sorted extensions without SNI/ALPN, '_',
 * signature algorithms in wire order, 12 hex>. JA4_r is the same with the
 * lists instead of the hashes. */
#define FLT_TLS_JA4_LEN 48

int flt_tls_ja3(const flt_tls_hello_t *h, flt_strbuf_t *str, char md5[33]);
int flt_tls_ja3s(const flt_tls_hello_t *h, flt_strbuf_t *str, char md5[33]);
/* raw may be NULL. Returns 0 or -1 (not a ClientHello, raw capped). */
int flt_tls_ja4(const flt_tls_hello_t *h, char ja4[FLT_TLS_JA4_LEN], flt_strbuf_t *raw);
/* For the core: JA3 MD5 (hex), the JA3 string (cut to ja3_cap - 1 and
 * NUL-terminated; may be NULL) and JA4 of a ClientHello handshake message
 * (with its 4-byte header). Returns 0, or -1 with every output "". */
int flt_tls_fingerprint(const uint8_t *client_hello_msg, size_t len, char ja3_md5[33],
                        char *ja3_string, size_t ja3_cap, char ja4[48]);

/* ---- other handshake messages -------------------------------------------- */

/* The certificate_list of a Certificate message (header included): TLS
 * 1.3's form (request context, per-entry extensions) when tls13 is set,
 * else TLS 1.2's. Iterate it with flt_tls_cert_next. */
int flt_tls_cert_list(const uint8_t *msg, size_t len, int tls13, flt_tls_cur_t *list);
/* Returns 1 with the next DER certificate, 0 at the end, -1 malformed. */
int flt_tls_cert_next(flt_tls_cur_t *list, int tls13, const uint8_t **der, size_t *der_len);

typedef struct flt_tls_ske {
  int ecdhe;       /* 1: ECDHE params, 0: DHE params */
  uint16_t group;  /* ECDHE: the named group */
  size_t pub_len;  /* ECDHE point / DHE Ys, bytes */
  size_t dh_p_len; /* DHE: prime size, bytes */
  int has_sig;     /* TLS 1.2 signature present */
  uint16_t sigalg;
  size_t sig_len;
} flt_tls_ske_t;

/* Parses a TLS 1.2 ServerKeyExchange (header included) for ECDHE (named
 * curve) or DHE. Returns 0 or -1 (other key exchanges, malformed). */
int flt_tls_ske_parse(const uint8_t *msg, size_t len, flt_tls_ske_t *ske);

/* ---- records -------------------------------------------------------------- */

/* Reads a record header from p[0..len) (len >= 5 needed). Returns 1 when it
 * is a plausible TLS record header (known content type, major version 3,
 * length within FLT_TLS_MAX_RECORD), 0 when it is not, -1 when too short. */
int flt_tls_record_header(const uint8_t *p, size_t len, uint8_t *type, uint16_t *version,
                          size_t *body_len);

/* ---- rendering -------------------------------------------------------------
 * Multi-line renderings put `indent` before every line and end each line
 * with "\n". */

/* One extension's decoded content after "name (type): ". `hs_type` is the
 * message carrying it (ClientHello, ServerHello, EncryptedExtensions...):
 * several extensions differ between them; or in FLT_TLS_HS_HRR_FLAG for
 * a HelloRetryRequest, whose key_share holds only a group. */
#define FLT_TLS_HS_HRR_FLAG 0x100u
int flt_tls_ext_describe(flt_strbuf_t *out, unsigned hs_type, const flt_tls_ext_t *e);
/* A whole ClientHello / ServerHello, field by field. `record_version` is
 * the version of the record that carried it, or 0 when unknown. */
int flt_tls_hello_describe(flt_strbuf_t *out, const char *indent, const flt_tls_hello_t *h,
                           uint16_t record_version);
/* The fields of any other handshake message (ServerKeyExchange,
 * CertificateVerify, Finished, NewSessionTicket, ...). Certificates are
 * rendered by flt_tls_certs_describe. `tls13` says how to read formats
 * that differ between versions. */
int flt_tls_msg_describe(flt_strbuf_t *out, const char *indent, const uint8_t *msg, size_t len,
                         int tls13);
/* A Certificate message: each certificate's subject, issuer, serial,
 * validity, SANs, key type and size, signature algorithm and SHA-256
 * fingerprint (OpenSSL's d2i_X509). */
int flt_tls_certs_describe(flt_strbuf_t *out, const char *indent, const uint8_t *msg, size_t len,
                           int tls13);
/* Appends bytes as text for a terminal: printable ASCII as is, anything
 * else as \xNN. */
int flt_tls_put_escaped(flt_strbuf_t *out, const uint8_t *p, size_t len);
/* Appends len bytes as lower-case hex, at most max bytes, then "…" and the
 * full size when cut. */
int flt_tls_put_hex(flt_strbuf_t *out, const uint8_t *p, size_t len, size_t max);

/* ---- the handshake of a connection, both legs ---------------------------------- */

/* One message as on_tls_message delivered it. */
typedef struct flt_tls_msg {
  int leg;             /* 0: client <-> tlspeek, 1: tlspeek <-> upstream */
  int sent;            /* tlspeek sent it on that leg */
  int content_type;    /* 22 handshake, 20 ChangeCipherSpec, 21 alert */
  const uint8_t *data; /* NULL when it was over FLT_TLS_MAX_HANDSHAKE */
  size_t len;
} flt_tls_msg_t;

typedef struct flt_tls_hs_view {
  const char *client; /* "127.0.0.1:5000" */
  const char *server; /* "example.test:443" */
  uint64_t conn_id;
  const flt_tls_msg_t *msgs; /* both legs, in arrival order */
  size_t n_msgs;
  size_t n_dropped; /* messages not kept (caps) */
  /* Version of the first handshake record per [leg][sent], 0 unknown. */
  uint16_t record_version[2][2];
  const char *up_verify; /* "ok" or OpenSSL's reason; "" unknown */
  const char *alpn;      /* the protocol each leg negotiated by ALPN ("" none) */
  const char *up_alpn;
  int complete;          /* the client-leg handshake finished */
  int explain;           /* add --explain's notes */
  int color;
} flt_tls_hs_view_t;

/* The whole handshake block of a connection: leg 1 then leg 2, each
 * message numbered with the seed's step (1 ClientHello ... 8 Finished),
 * TLS 1.3's encrypted messages marked, certificate chains, the upstream
 * verdict, and the fingerprints of both ClientHellos side by side. */
int flt_tls_handshake_render(flt_strbuf_t *out, const flt_tls_hs_view_t *v);
/* One message on its own (for messages after the handshake block, such
 * as NewSessionTicket and alerts). `tls13` as in flt_tls_msg_describe. */
int flt_tls_message_render(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13,
                           uint16_t record_version);
/* The pieces of the block above, for views other than the console (the
 * web page, filters/web/): a message's step (1..9, 0 when no step covers
 * it), its name ("ClientHello", "ChangeCipherSpec", "Alert"), --explain's
 * note for a step (NULL when there is none), a one-line summary (hellos:
 * version, SNI, ALPN, suites; alerts; certificate counts) and the fields
 * of the message as flt_tls_message_render shows them, without its
 * first line. */
int flt_tls_msg_step(const flt_tls_msg_t *m);
const char *flt_tls_msg_name(const flt_tls_msg_t *m);
const char *flt_tls_explain_text(int step, int tls13);
int flt_tls_msg_summary(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13);
int flt_tls_message_body_render(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13,
                                uint16_t record_version);

/* One certificate's facts as the view shows them, as text (names escaped
 * as flt_tls_put_escaped does; times "2024-05-01 12:00:00 UTC"; SANs
 * "DNS:h", one per line; sha256 lower-case hex). 0, or -1 when the DER
 * does not parse. */
typedef struct flt_tls_cert_info {
  char subject[512];
  char issuer[512];
  char not_before[40];
  char not_after[40];
  char sans[2048];
  char sha256[65];
} flt_tls_cert_info_t;
int flt_tls_cert_info(const uint8_t *der, size_t len, flt_tls_cert_info_t *ci);

/* --explain's note on what an application_data record tells a sniffer
 * (the wire view gives it with the first one; step 9 itself ends the
 * handshake block). */
int flt_tls_explain_record(flt_strbuf_t *out, const char *indent);

/* ---- the wire view's record reassembly -------------------------------------
 * Bytes of one leg and direction arrive in socket-sized chunks that cut
 * records anywhere; the reassembler keeps the head of the record in
 * progress (up to `keep` bytes, which is what is hexdumped) and reports
 * each record once it is complete. A direction that does not start with a
 * TLS record header is plaintext (plain HTTP, or the CONNECT before TLS)
 * until one does. */
typedef struct flt_tls_reasm {
  int tls; /* records seen in this direction */
  uint8_t hdr[FLT_TLS_RECORD_HEADER];
  size_t hdr_have;
  size_t body_len, body_have; /* of the record in progress */
  uint8_t *keep;              /* its first `keep_cap` body bytes */
  size_t keep_cap, keep_have;
  uint64_t records; /* completed records */
  uint64_t bytes;   /* bytes seen in this direction */
} flt_tls_reasm_t;

typedef struct flt_tls_record {
  uint8_t type;
  uint16_t version;
  size_t len;          /* body length */
  const uint8_t *head; /* the first head_len body bytes */
  size_t head_len;
  uint64_t index; /* 0-based record number in this direction */
} flt_tls_record_t;

/* Reports a record, or a run of plaintext (type 0: head/len are the bytes
 * of this chunk that are not TLS). */
typedef void (*flt_tls_record_cb)(void *ud, const flt_tls_record_t *r);

/* keep_cap: body bytes kept per record (the wire limit). Returns 0 or -1
 * (out of memory). */
int flt_tls_reasm_init(flt_tls_reasm_t *r, size_t keep_cap);
void flt_tls_reasm_free(flt_tls_reasm_t *r);
/* Feeds a chunk; calls cb for each record completed (and for plaintext).
 * A direction that was TLS and then carries bytes that are no record
 * header falls back to plaintext from there on. */
void flt_tls_reasm_feed(flt_tls_reasm_t *r, const uint8_t *p, size_t len, flt_tls_record_cb cb,
                        void *ud);
/* Bytes of the record in progress: nonzero when a chunk ended mid-record. */
size_t flt_tls_reasm_pending(const flt_tls_reasm_t *r);

#endif
