/* tlshandshake.c — the handshake block of one connection: both legs,
 * message by message, numbered with the seed's steps (tlsparse.h,
 * flt_tls_handshake_render), with --explain's notes.
 *
 * The seed numbers a TLS 1.2 handshake 1 ClientHello, 2 ServerHello,
 * 3 Certificate, 4 ServerKeyExchange, 5 ServerHelloDone, 6 ClientKeyExchange,
 * 7 ChangeCipherSpec, 8 Finished, 9 Application Data. TLS 1.3 messages get
 * the number of the step whose job they do (CertificateVerify does step
 * 4's signing, EncryptedExtensions finishes step 2's answer); messages no
 * step covers (NewSessionTicket, alerts) get "-". */
#include "filters/tls/tlsparse.h"

#include <stdio.h>
#include <string.h>

#define IND "    " /* message fields */
#define ARROW "\xe2\x86\x92"
#define BOTH "\xe2\x87\x84"
#define ENC13_NOTE "encrypted on the wire: a sniffer sees only application_data records here"
#define ENC12_NOTE                                                       \
  "encrypted on the wire (after ChangeCipherSpec): a sniffer sees only " \
  "an opaque handshake record here"

typedef struct hs_ctx {
  const flt_tls_hs_view_t *v;
  unsigned explained; /* bit per (step, tls13) already explained */
} hs_ctx_t;

static int put(flt_strbuf_t *out, const char *s) {
  return flt_strbuf_append(out, s, strlen(s));
}

/* Bold when colour is on. */
static int put_bold(flt_strbuf_t *out, int color, const char *s) {
  if (!color) return put(out, s);
  return flt_strbuf_appendf(out, "\x1b[1m%s\x1b[0m", s);
}

static const char *dir_text(int leg, int sent) {
  if (leg == 0) return sent ? "tlspeek " ARROW " client" : "client " ARROW " tlspeek";
  return sent ? "tlspeek " ARROW " upstream" : "upstream " ARROW " tlspeek";
}

static int msg_type(const flt_tls_msg_t *m) {
  return m->content_type == FLT_TLS_CT_HANDSHAKE && m->len >= 1 && m->data ? m->data[0] : -1;
}

int flt_tls_msg_step(const flt_tls_msg_t *m) {
  if (m->content_type == FLT_TLS_CT_CHANGE_CIPHER_SPEC) return 7;
  switch (msg_type(m)) {
    case FLT_TLS_HS_CLIENT_HELLO:
      return 1;
    case FLT_TLS_HS_SERVER_HELLO:
    case FLT_TLS_HS_ENCRYPTED_EXTENSIONS:
      return 2;
    case FLT_TLS_HS_CERTIFICATE:
    case FLT_TLS_HS_CERTIFICATE_REQUEST:
    case FLT_TLS_HS_CERTIFICATE_STATUS:
    case FLT_TLS_HS_COMPRESSED_CERTIFICATE:
      return 3;
    case FLT_TLS_HS_SERVER_KEY_EXCHANGE:
    case FLT_TLS_HS_CERTIFICATE_VERIFY:
      return 4;
    case FLT_TLS_HS_SERVER_HELLO_DONE:
      return 5;
    case FLT_TLS_HS_CLIENT_KEY_EXCHANGE:
      return 6;
    case FLT_TLS_HS_FINISHED:
      return 8;
    default:
      return 0;
  }
}

/* --explain: what each step does and why, in TLS 1.2 ([0]) and 1.3 ([1]). */
static const char *const explain_text[10][2] = {
    [1] = {"The client opens: a fresh random number, the versions and cipher suites it "
           "supports, and extensions such as the server name (SNI) and ALPN. All of it is "
           "clear text: a sniffer reads the host name here.",
           "The client opens: a fresh random number, the versions and cipher suites it "
           "supports, extensions such as SNI (clear text: a sniffer reads the host name "
           "here), and in TLS 1.3 already its key shares, to save a round trip."},
    [2] = {"The server picks one version and one cipher suite from the client's lists and "
           "adds its own random; both randoms go into the keys.",
           "The server picks the version and cipher suite and answers with its own key "
           "share. Both sides can now compute the handshake keys: in TLS 1.3 everything "
           "after the ServerHello is encrypted."},
    [3] = {"The server proves who it is with a certificate chain. The client checks that a "
           "CA it trusts signed it and that it names the host it asked for; on leg 1 that "
           "CA is tlspeek's own, which is how tlspeek can speak for any host.",
           "The server's certificate chain, checked by the client against the CAs it "
           "trusts and the host name (on leg 1 the CA is tlspeek's). In TLS 1.3 a sniffer "
           "no longer sees which certificate was sent."},
    [4] = {"The server's ephemeral (EC)DH public key, signed with the "
           "certificate's key so the client knows it comes from the certificate's owner.",
           "TLS 1.3 has no ServerKeyExchange (the key share rode in the ServerHello); "
           "CertificateVerify does its other job: the server signs the handshake so far "
           "with the certificate's key."},
    [5] = {"The server has said everything; the client's turn.", NULL},
    [6] = {"The client's ephemeral public key. Each side combines its "
           "own private key with the other's public key into the same pre-master secret, "
           "which a sniffer, seeing only public keys, cannot compute.",
           NULL},
    [7] = {"'From my next record on, I encrypt with the new keys'.",
           "It means nothing in TLS 1.3: it is sent only so that old "
           "middleboxes let the connection through."},
    [8] = {"The first encrypted handshake message, a MAC over the whole handshake. "
           "Had anyone changed an earlier message, the check would fail here.",
           "A MAC over the whole handshake under the handshake keys. Had anyone "
           "changed an earlier message, the check would fail here."},
    [9] = {"From here on HTTP travels in application_data records, "
           "encrypted and authenticated with the session keys. A sniffer sees only their "
           "lengths and timing; tlspeek, an endpoint of both TLS sessions, sees the "
           "plaintext.",
           NULL},
};

static const char *step_name(int step) {
  static const char *const names[10] = {"",
                                        "ClientHello",
                                        "ServerHello",
                                        "Certificate",
                                        "ServerKeyExchange",
                                        "ServerHelloDone",
                                        "ClientKeyExchange",
                                        "ChangeCipherSpec",
                                        "Finished",
                                        "Application Data"};
  return step >= 1 && step <= 9 ? names[step] : "";
}

const char *flt_tls_explain_text(int step, int tls13) {
  if (step < 1 || step > 9) return NULL;
  return explain_text[step][tls13 && explain_text[step][1] ? 1 : 0];
}

static int explain(flt_strbuf_t *out, const char *indent, int step, int tls13) {
  const char *text = flt_tls_explain_text(step, tls13);
  if (text == NULL) return 0;
  return flt_strbuf_appendf(out, "%s\xc2\xb7 step %d, %s: %s\n", indent, step, step_name(step),
                            text);
}

int flt_tls_explain_record(flt_strbuf_t *out, const char *indent) {
  return flt_strbuf_appendf(out,
                            "%s\xc2\xb7 application_data records: their type and length "
                            "are all a sniffer learns. In TLS 1.3 the first ones still "
                            "carry the rest of the handshake, encrypted; then HTTP.\n",
                            indent);
}

/* The leg's ServerHello, parsed; 0 when it has none (yet). */
static int leg_server_hello(const flt_tls_hs_view_t *v, int leg, flt_tls_hello_t *h) {
  for (size_t i = 0; i < v->n_msgs; i++) {
    const flt_tls_msg_t *m = &v->msgs[i];
    if (m->leg == leg && msg_type(m) == FLT_TLS_HS_SERVER_HELLO &&
        flt_tls_hello_parse(m->data, m->len, h) == 0 && !h->hello_retry)
      return 1;
  }
  return 0;
}

static int leg_is13(const flt_tls_hs_view_t *v, int leg) {
  flt_tls_hello_t h;
  return leg_server_hello(v, leg, &h) && flt_tls_hello_version(&h) == 0x0304;
}

static int hello_fingerprints(flt_strbuf_t *out, const flt_tls_hello_t *h) {
  flt_strbuf_t s;
  char md5[33], ja4[FLT_TLS_JA4_LEN];
  int r = 0;

  flt_strbuf_init(&s, FLT_TLS_MAX_JA3);
  if (h->client) {
    if (flt_tls_ja3(h, &s, md5) == 0)
      r |= flt_strbuf_appendf(out, IND "JA3: %s\n" IND "JA3 MD5: %s\n", s.data, md5);
    flt_strbuf_reset(&s);
    if (flt_tls_ja4(h, ja4, &s) == 0)
      r |= flt_strbuf_appendf(out, IND "JA4: %s\n" IND "JA4_r: %s\n", ja4, s.data);
  } else if (flt_tls_ja3s(h, &s, md5) == 0) {
    r |= flt_strbuf_appendf(out, IND "JA3S: %s\n" IND "JA3S MD5: %s\n", s.data, md5);
  }
  flt_strbuf_free(&s);
  return r;
}

static int render_body(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13, uint16_t recver) {
  flt_tls_hello_t h;
  int type = msg_type(m);

  if (m->data == NULL)
    return flt_strbuf_appendf(out, IND "(%zu bytes: over the %u-byte dissection limit)\n", m->len,
                              FLT_TLS_MAX_HANDSHAKE);
  if (m->content_type == FLT_TLS_CT_CHANGE_CIPHER_SPEC) return 0;
  if (m->content_type == FLT_TLS_CT_ALERT) {
    if (m->len < 2) return put(out, IND "malformed alert\n");
    return flt_strbuf_appendf(out, IND "%s (%u), level %s\n", flt_tls_alert_name(m->data[1]),
                              m->data[1], m->data[0] == 2 ? "fatal" : "warning");
  }
  if (type == FLT_TLS_HS_CLIENT_HELLO || type == FLT_TLS_HS_SERVER_HELLO) {
    if (flt_tls_hello_parse(m->data, m->len, &h) < 0)
      return flt_strbuf_appendf(out, IND "malformed hello (%zu bytes)\n", m->len);
    int r = flt_tls_hello_describe(out, IND, &h, recver);
    return r | hello_fingerprints(out, &h);
  }
  if (type == FLT_TLS_HS_CERTIFICATE) {
    flt_tls_cur_t list;
    /* The leg's version says the format; a message that only parses in
     * the other one is still shown. */
    int f13 = flt_tls_cert_list(m->data, m->len, tls13, &list) == 0 ? tls13 : !tls13;
    return flt_tls_certs_describe(out, IND, m->data, m->len, f13);
  }
  return flt_tls_msg_describe(out, IND, m->data, m->len, tls13);
}

const char *flt_tls_msg_name(const flt_tls_msg_t *m) {
  int type = msg_type(m);
  return m->content_type == FLT_TLS_CT_CHANGE_CIPHER_SPEC ? "ChangeCipherSpec"
         : m->content_type == FLT_TLS_CT_ALERT            ? "Alert"
         : type >= 0 ? flt_tls_handshake_name((unsigned)type)
                     : "handshake message";
}

int flt_tls_message_render(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13,
                           uint16_t record_version) {
  int step = flt_tls_msg_step(m), type = msg_type(m);
  const char *name = flt_tls_msg_name(m);
  char num[8];
  int r;

  snprintf(num, sizeof(num), "%c", step ? '0' + step : '-');
  r = flt_strbuf_appendf(out, "  %s %s \xc2\xb7 %s \xc2\xb7 %zu bytes\n", num, name,
                         dir_text(m->leg, m->sent), m->len);
  if (type >= 0 && tls13 && type != FLT_TLS_HS_CLIENT_HELLO && type != FLT_TLS_HS_SERVER_HELLO)
    r |= put(out, IND "[" ENC13_NOTE "]\n");
  else if (tls13 && m->content_type == FLT_TLS_CT_ALERT)
    r |= put(out, IND "[" ENC13_NOTE "]\n");
  else if (!tls13 && type == FLT_TLS_HS_FINISHED)
    r |= put(out, IND "[" ENC12_NOTE "]\n");
  return r | render_body(out, m, tls13, record_version);
}

int flt_tls_message_body_render(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13,
                                uint16_t record_version) {
  return render_body(out, m, tls13, record_version);
}

/* "TLSv1.3, TLS_AES_256_GCM_SHA384, key exchange x25519" from the leg's
 * ServerHello (key_share) or ServerKeyExchange (TLS 1.2). */
static int leg_summary(flt_strbuf_t *out, const flt_tls_hs_view_t *v, int leg) {
  flt_tls_hello_t h;
  flt_tls_ext_t e;
  flt_tls_ske_t ske;
  uint16_t group = 0;

  if (!leg_server_hello(v, leg, &h)) return put(out, "  no ServerHello on this leg\n");
  uint16_t suite = flt_tls_hello_suite(&h), ver = flt_tls_hello_version(&h);
  if (flt_tls_hello_find_ext(&h, FLT_TLS_EXT_KEY_SHARE, &e) && e.len >= 2)
    group = (uint16_t)(e.data[0] << 8 | e.data[1]);
  for (size_t i = 0; i < v->n_msgs && !group; i++)
    if (v->msgs[i].leg == leg && msg_type(&v->msgs[i]) == FLT_TLS_HS_SERVER_KEY_EXCHANGE &&
        flt_tls_ske_parse(v->msgs[i].data, v->msgs[i].len, &ske) == 0 && ske.ecdhe)
      group = ske.group;
  const char *sn = flt_tls_suite_name(suite), *gn = group ? flt_tls_group_name(group) : NULL;
  return flt_strbuf_appendf(out, "  negotiated: %s, %s, key exchange %s\n",
                            flt_tls_version_name(ver), sn ? sn : "unknown suite",
                            gn      ? gn
                            : group ? "unknown group"
                                    : "RSA or not shown");
}

/* "  protocol (ALPN): client leg h2, upstream leg h2 (why)": the client
 * gets what the upstream chose; an h2-only client gets h2 anyway. */
static int alpn_line(flt_strbuf_t *out, const flt_tls_hs_view_t *v) {
  const char *c = v->alpn && v->alpn[0] ? v->alpn : "none";
  const char *u = v->up_alpn && v->up_alpn[0] ? v->up_alpn : "none";
  const char *why = "";
  if (strcmp(c, "h2") == 0 && strcmp(u, "h2") == 0)
    why = " (the upstream chose h2, so the client got h2)";
  else if (strcmp(c, "h2") == 0)
    why = " (the client offered only h2: its streams are sent upstream as HTTP/1.1)";
  else if (strcmp(c, "http/1.1") == 0)
    why = " (the client got what the upstream chose, or what it offered)";
  return flt_strbuf_appendf(out, "  protocol (ALPN): client leg %s, upstream leg %s%s\n", c, u, why);
}

static int render_leg(flt_strbuf_t *out, hs_ctx_t *cx, int leg) {
  const flt_tls_hs_view_t *v = cx->v;
  int tls13 = leg_is13(v, leg), r = 0, any = 0;

  if (leg == 0)
    r |= put_bold(out, v->color, "  \xe2\x96\xb6 leg 1 \xc2\xb7 client " BOTH " tlspeek");
  else
    r |= put_bold(out, v->color, "  \xe2\x96\xb6 leg 2 \xc2\xb7 tlspeek " BOTH " upstream");
  r |= put(out, leg == 0 ? " (tlspeek plays the server, with a certificate it minted)\n"
                         : " (tlspeek plays the client)\n");
  for (size_t i = 0; i < v->n_msgs; i++)
    any |= v->msgs[i].leg == leg;
  if (!any) return r | put(out, "  no TLS messages on this leg\n");
  r |= leg_summary(out, v, leg);
  for (size_t i = 0; i < v->n_msgs; i++) {
    const flt_tls_msg_t *m = &v->msgs[i];
    int step = flt_tls_msg_step(m), type = msg_type(m);
    if (m->leg != leg) continue;
    unsigned bit = 1u << (step * 2 + tls13);
    if (v->explain && step && !(cx->explained & bit)) {
      r |= explain(out, "  ", step, tls13);
      cx->explained |= bit;
    }
    int hello = type == FLT_TLS_HS_CLIENT_HELLO || type == FLT_TLS_HS_SERVER_HELLO;
    r |= flt_tls_message_render(out, m, tls13, hello ? v->record_version[leg][m->sent] : 0);
  }
  if (leg == 1) {
    r |= flt_strbuf_appendf(out, "  upstream certificate verification: %s\n",
                            v->up_verify && v->up_verify[0] ? v->up_verify : "(not known)");
    r |= alpn_line(out, v);
  }
  return r;
}

/* The ClientHello (or ServerHello) tlspeek received or sent on a leg. */
static int find_hello(const flt_tls_hs_view_t *v, int leg, int sent, int type, flt_tls_hello_t *h) {
  for (size_t i = 0; i < v->n_msgs; i++) {
    const flt_tls_msg_t *m = &v->msgs[i];
    if (m->leg == leg && m->sent == sent && msg_type(m) == type &&
        flt_tls_hello_parse(m->data, m->len, h) == 0)
      return 1;
  }
  return 0;
}

static int fp_line(flt_strbuf_t *out, const char *who, const flt_tls_hs_view_t *v, int leg,
                   int sent, char ja4_out[FLT_TLS_JA4_LEN]) {
  flt_tls_hello_t h;
  flt_strbuf_t s;
  char md5[33] = "", ja4[FLT_TLS_JA4_LEN] = "";
  int r = 0, client = (leg == 0) != sent; /* the client side of that leg sent it */

  ja4_out[0] = '\0';
  if (!find_hello(v, leg, sent, client ? FLT_TLS_HS_CLIENT_HELLO : FLT_TLS_HS_SERVER_HELLO, &h))
    return 0;
  flt_strbuf_init(&s, FLT_TLS_MAX_JA3);
  if (client) {
    flt_tls_ja3(&h, &s, md5);
    flt_tls_ja4(&h, ja4, NULL);
    r = flt_strbuf_appendf(out, "    %-24s JA3 %s  JA4 %s\n", who, md5, ja4);
    snprintf(ja4_out, FLT_TLS_JA4_LEN, "%s", ja4);
  } else {
    flt_tls_ja3s(&h, &s, md5);
    r = flt_strbuf_appendf(out, "    %-24s JA3S %s\n", who, md5);
  }
  flt_strbuf_free(&s);
  return r;
}

static int render_fingerprints(flt_strbuf_t *out, const flt_tls_hs_view_t *v) {
  char a[FLT_TLS_JA4_LEN], b[FLT_TLS_JA4_LEN], unused[FLT_TLS_JA4_LEN];
  int r = put_bold(out, v->color, "  \xe2\x96\xb6 fingerprints");
  r |= put(out, " (what anyone on the path can compute from the clear-text hellos)\n");
  r |= fp_line(out, "client's ClientHello", v, 0, 0, a);
  r |= fp_line(out, "tlspeek's ClientHello", v, 1, 1, b);
  r |= fp_line(out, "upstream's ServerHello", v, 1, 0, unused);
  r |= fp_line(out, "tlspeek's ServerHello", v, 0, 1, unused);
  if (a[0] && b[0])
    r |= put(out, strcmp(a, b) ? "    the JA4s differ: the upstream sees tlspeek's TLS stack, "
                                 "not the client's\n"
                               : "    the JA4s are equal: tlspeek's hello looks like the "
                                 "client's\n");
  return r;
}

int flt_tls_handshake_render(flt_strbuf_t *out, const flt_tls_hs_view_t *v) {
  hs_ctx_t cx = {v, 0};
  int r, any_up = 0;
  char head[512];

  snprintf(head, sizeof(head),
           "\xe2\x94\x81\xe2\x94\x81 TLS handshake \xc2\xb7 %s " ARROW " %s (connection %llu)%s",
           v->client, v->server, (unsigned long long)v->conn_id,
           v->complete ? "" : " \xe2\x80\x94 did not complete");
  r = put_bold(out, v->color, head);
  r |= put(out,
           "\n  Two TLS sessions, one per leg: the client's ends at tlspeek, and "
           "tlspeek opens its own to the upstream.\n");
  for (size_t i = 0; i < v->n_msgs; i++)
    any_up |= v->msgs[i].leg == 1;
  if (any_up)
    r |= put(out,
             "  (tlspeek held leg 1 after the ClientHello, did leg 2 to learn the real "
             "server's certificate, then answered the client.)\n");
  r |= render_leg(out, &cx, 0);
  r |= render_leg(out, &cx, 1);
  r |= render_fingerprints(out, v);
  if (v->n_dropped)
    r |= flt_strbuf_appendf(out, "  (%zu more TLS messages not kept: per-connection limit)\n",
                            v->n_dropped);
  if (v->explain && v->complete) r |= explain(out, "  ", 9, 0);
  return r;
}

/* ServerHello: "TLSv1.3, TLS_AES_128_GCM_SHA256"; ClientHello: the version,
 * SNI, ALPN and how many suites it offers. */
static int hello_summary(flt_strbuf_t *out, const flt_tls_hello_t *h) {
  flt_tls_ext_t e;
  int r = put(out, flt_tls_version_name(flt_tls_hello_version(h)));

  if (!h->client) {
    const char *sn = flt_tls_suite_name(flt_tls_hello_suite(h));
    return r | flt_strbuf_appendf(out, ", %s%s", sn ? sn : "unknown suite",
                                  h->hello_retry ? " (HelloRetryRequest)" : "");
  }
  if (flt_tls_hello_find_ext(h, FLT_TLS_EXT_SERVER_NAME, &e)) {
    r |= put(out, ", SNI ");
    r |= flt_tls_ext_describe(out, FLT_TLS_HS_CLIENT_HELLO, &e);
  }
  if (flt_tls_hello_find_ext(h, FLT_TLS_EXT_ALPN, &e)) {
    r |= put(out, ", ALPN ");
    r |= flt_tls_ext_describe(out, FLT_TLS_HS_CLIENT_HELLO, &e);
  }
  return r | flt_strbuf_appendf(out, ", %zu cipher suites", h->suites_len / 2);
}

int flt_tls_msg_summary(flt_strbuf_t *out, const flt_tls_msg_t *m, int tls13) {
  flt_tls_hello_t h;
  flt_tls_cur_t list;
  const uint8_t *der;
  size_t der_len, n = 0;
  int type = msg_type(m);

  if (m->data == NULL) return flt_strbuf_appendf(out, "%zu bytes (not dissected)", m->len);
  if (m->content_type == FLT_TLS_CT_ALERT && m->len >= 2)
    return flt_strbuf_appendf(out, "%s (%u), level %s", flt_tls_alert_name(m->data[1]), m->data[1],
                              m->data[0] == 2 ? "fatal" : "warning");
  if ((type == FLT_TLS_HS_CLIENT_HELLO || type == FLT_TLS_HS_SERVER_HELLO) &&
      flt_tls_hello_parse(m->data, m->len, &h) == 0)
    return hello_summary(out, &h);
  if (type == FLT_TLS_HS_CERTIFICATE) {
    int f13 = flt_tls_cert_list(m->data, m->len, tls13, &list) == 0 ? tls13 : !tls13;
    if (flt_tls_cert_list(m->data, m->len, f13, &list) == 0)
      while (flt_tls_cert_next(&list, f13, &der, &der_len) == 1) n++;
    return flt_strbuf_appendf(out, "%zu certificate%s, %zu bytes", n, n == 1 ? "" : "s", m->len);
  }
  return flt_strbuf_appendf(out, "%zu bytes", m->len);
}
