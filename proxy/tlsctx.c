/* tlsctx.c — the two SSL_CTXs of a worker (never one per connection) and
 * the per-worker cache of upstream TLS sessions: px_tlsctx_* (worker.h). */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "filters/util/log.h"
#include "filters/tls/tlsparse.h"
#include "proxy/session.h"
#include "proxy/tls.h"
#include "proxy/tlsopts.h"
#include "proxy/worker.h"

static const unsigned char alpn_http11[] = "\x08http/1.1";
static const unsigned char alpn_h2[] = "\x02h2";
/* What the upstream is offered when the client offered h2: both, in the
 * client's order (an h2-only client is translated for an HTTP/1.1 upstream,
 * session_h2.c). */
static const unsigned char alpn_h2_h11[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h11_h2[] = "\x08http/1.1\x02h2";

static int session_index = -1;

void px_tlsctx_init_index(void) {
  if (session_index < 0)
    session_index = SSL_get_ex_new_index(0, (void *)"px_session", NULL, NULL, NULL);
}

int px_tlsctx_session_index(void) { return session_index; }

/* Reads SNI and ALPN from the ClientHello, then pauses the handshake (the
 * session connects upstream first) until the leaf certificate is set. */
static int on_client_hello(SSL *ssl, int *alert, void *arg) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  const unsigned char *p;
  size_t len;
  (void)arg;
  (void)alert;
  if (s == NULL) return SSL_CLIENT_HELLO_ERROR;
  if (s->state != PX_S_CLIENT_HELLO && s->state != PX_S_PEEK)
    return SSL_CLIENT_HELLO_SUCCESS; /* certificate is set: go on */

  /* server_name: list length (2), type (1) = host_name, length (2), name */
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) && len > 5 &&
      p[2] == 0) {
    size_t n = ((size_t)p[3] << 8) | p[4];
    if (n + 5 <= len && n < sizeof(s->conn.sni)) {
      memcpy(s->conn.sni, p + 5, n);
      s->conn.sni[n] = '\0';
      /* An SNI with a NUL or a space is not a host name; ignore it. */
      if (strlen(s->conn.sni) != n || strpbrk(s->conn.sni, " /\\") != NULL)
        s->conn.sni[0] = '\0';
    }
  }
  s->conn.match_ready = 1; /* host and SNI known: sinks' expressions can decide */
  /* ALPN: keep only the protocols we speak (h2, http/1.1), in the
   * client's order; the upstream is offered those. */
  s->alpn_offer = NULL;
  s->alpn_offer_len = 0;
  int h11 = 0, h2 = 0; /* position + 1 in the client's list */
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
                                &p, &len) && len >= 2) {
    size_t i = 2;
    for (int pos = 1; i < len; pos++) {
      size_t n = p[i];
      if (i + 1 + n > len) break;
      if (n == 8 && memcmp(p + i + 1, "http/1.1", 8) == 0 && !h11) h11 = pos;
      if (n == 2 && memcmp(p + i + 1, "h2", 2) == 0 && !h2) h2 = pos;
      i += 1 + n;
    }
  }
  /* An action that changes HTTP/1.1 flows only: h2 is kept for clients
   * that speak nothing else (their streams are then not changed). */
  if (h2 && h11 && px_config_h1_only_action(s->w->shared->cfg)) h2 = 0;
  if (h2) {
    s->alpn_offer = h11 && h11 < h2 ? alpn_h11_h2 : alpn_h2_h11;
    s->alpn_offer_len = sizeof(alpn_h2_h11) - 1;
  } else if (h11) {
    s->alpn_offer = alpn_http11;
    s->alpn_offer_len = sizeof(alpn_http11) - 1;
  }
  return SSL_CLIENT_HELLO_RETRY;
}

/* The client leg mirrors the upstream: h2 when the upstream chose h2;
 * else http/1.1 when the client offered it; else h2 when that is all the
 * client speaks (its streams are translated for the HTTP/1.1 upstream).
 * The upstream handshake is done by now (the ClientHello waited for it). */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  unsigned char *sel = NULL;
  (void)arg;
  int up_h2 = s && strcmp(s->conn.up_alpn, "h2") == 0;
  if (up_h2 && SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2) - 1, in, inlen) ==
                   OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof(alpn_http11) - 1, in,
                            inlen) == OPENSSL_NPN_NEGOTIATED ||
      SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2) - 1, in, inlen) ==
          OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/* OpenSSL hands us every secret of both legs; the key log filter writes
 * them out. Only installed when a key log is wanted. */
static void on_keylog_line(const SSL *ssl, const char *line) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  if (s) flt_emit_keylog(&s->w->shared->chain, &s->conn, line);
}

/* Every handshake message, ChangeCipherSpec and alert of both legs, as
 * OpenSSL parsed it (TLS 1.3's encrypted handshake messages included). */
static void on_tls_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  (void)arg;
  if (s == NULL || (content_type != SSL3_RT_HANDSHAKE && content_type != SSL3_RT_ALERT &&
                    content_type != SSL3_RT_CHANGE_CIPHER_SPEC))
    return;
  int client_leg = ssl == s->client.tls.ssl;
  const unsigned char *msg = buf;
  if (client_leg && !write_p && content_type == SSL3_RT_HANDSHAKE && len > 4 && msg[0] == 1 &&
      s->conn.ja3[0] == '\0') {
    char ja3_string[1024];
    flt_tls_fingerprint(msg, len, s->conn.ja3, ja3_string, sizeof(ja3_string), s->conn.ja4);
  }
  flt_emit_tls_message(&s->w->shared->chain, &s->conn, client_leg ? FLT_LEG_CLIENT : FLT_LEG_UPSTREAM,
                       write_p, content_type, version, buf, len);
}

static int ctx_error(SSL_CTX *ctx, const char *what, char *err, size_t errlen) {
  char buf[256];
  snprintf(err, errlen, "%s: %s", what, px_tls_error_text(buf, sizeof(buf), "failed"));
  SSL_CTX_free(ctx);
  return -1;
}

int px_tlsctx_make_server(px_worker_t *w, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) return ctx_error(NULL, "cannot create the TLS server context", err, errlen);
  if (px_tlsopts_apply(ctx, w->shared->cfg, PX_LEG_CLIENT) != 0)
    return ctx_error(ctx, "cannot apply the client leg's TLS settings", err, errlen);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  /* Idle connections give their read/write buffers back. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
  if (w->shared->want_keylog) SSL_CTX_set_keylog_callback(ctx, on_keylog_line);
  if (w->shared->want_tls_messages) SSL_CTX_set_msg_callback(ctx, on_tls_msg);
  /* Resumption for clients: a server-side cache and tickets whose keys are
   * the same on every worker, so a client may land on any of them. */
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tlspeek", 7);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 20000);
  if (SSL_CTX_set_tlsext_ticket_keys(ctx, w->shared->ticket_keys,
                                     sizeof(w->shared->ticket_keys)) != 1)
    return ctx_error(ctx, "cannot set TLS ticket keys", err, errlen);
  w->server_ctx = ctx;
  return 0;
}

/* OpenSSL hands us each new upstream session (TLS 1.3 tickets arrive after
 * the handshake); we keep the latest per host:port. */
static int on_new_upstream_session(SSL *ssl, SSL_SESSION *sess) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  char key[280];
  if (s == NULL) return 0;
  snprintf(key, sizeof(key), "%s:%u", s->up_name[0] ? s->up_name : s->up_host,
           (unsigned)s->up_port);
  px_tlsctx_upsess_store(s->w, key, sess);
  return 1; /* we took the reference */
}

/* The server asked for a client certificate (CertificateRequest). The one
 * --client-cert gave for this host, if any, is set already (start_tls).
 * Without one the handshake ends here: the session answers 502 naming the
 * cause instead of letting the server refuse a client that cannot know why. */
static int on_certificate_request(SSL *ssl, void *arg) {
  px_session_t *s = SSL_get_ex_data(ssl, px_tlsctx_session_index());
  (void)arg;
  if (s == NULL) return 1;
  s->up_cert_requested = 1;
  return s->up_cert_file != NULL;
}

int px_tlsctx_make_client(px_worker_t *w, char *err, size_t errlen) {
  const px_config_t *cfg = w->shared->cfg;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) return ctx_error(NULL, "cannot create the TLS client context", err, errlen);
  if (px_tlsopts_apply(ctx, cfg, PX_LEG_UPSTREAM) != 0)
    return ctx_error(ctx, "cannot apply the upstream leg's TLS settings", err, errlen);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cert_cb(ctx, on_certificate_request, NULL);
  /* Verification runs even with -k so the verdict can be shown; only the
   * decision to abort depends on it. */
  SSL_CTX_set_verify(ctx, cfg->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  if (SSL_CTX_set_default_verify_paths(ctx) != 1)
    flt_log_warn("could not load the system trust store");
  if (cfg->upstream_ca &&
      SSL_CTX_load_verify_locations(ctx, cfg->upstream_ca, NULL) != 1) {
    char what[600];
    snprintf(what, sizeof(what), "cannot load --upstream-ca %s", cfg->upstream_ca);
    return ctx_error(ctx, what, err, errlen);
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_upstream_session);
  if (w->shared->want_keylog) SSL_CTX_set_keylog_callback(ctx, on_keylog_line);
  if (w->shared->want_tls_messages) SSL_CTX_set_msg_callback(ctx, on_tls_msg);
  w->client_ctx = ctx;
  return 0;
}

/* A small open-addressing table would be overkill: 256 slots, hashed, with
 * replacement on collision. Losing a cached session only costs a full
 * handshake. */
static size_t slot_of(const char *key) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return (size_t)(h % PX_UPSESS_SLOTS);
}

void px_tlsctx_upsess_store(px_worker_t *w, const char *key, SSL_SESSION *sess) {
  px_upsess_t *e = &w->upsess[slot_of(key)];
  if (e->sess) SSL_SESSION_free(e->sess);
  snprintf(e->key, sizeof(e->key), "%s", key);
  e->sess = sess;
}

SSL_SESSION *px_tlsctx_upsess_get(px_worker_t *w, const char *key) {
  px_upsess_t *e = &w->upsess[slot_of(key)];
  if (e->sess == NULL || strcmp(e->key, key) != 0) return NULL;
  if (!SSL_SESSION_is_resumable(e->sess)) return NULL;
  return e->sess;
}

void px_tlsctx_upsess_clear(px_worker_t *w) {
  for (size_t i = 0; i < PX_UPSESS_SLOTS; i++) {
    if (w->upsess[i].sess) SSL_SESSION_free(w->upsess[i].sess);
    w->upsess[i].sess = NULL;
  }
}
