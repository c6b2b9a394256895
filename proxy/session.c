/* session.c — a session's sockets, its client-side TLS, its state, its
 * timers and its end. HTTP framing and flows are in session_http.c, the
 * upstream leg in upstream.c. */
#include "proxy/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ca/ca.h"
#include "filters/util/log.h"
#include "filters/util/output.h"
#include "proxy/flowact.h"
#include "proxy/loopguard.h"
#include "proxy/modes/passthrough.h"
#include "proxy/codec/peek.h"
#include "proxy/modes/proxyauth.h"
#include "proxy/session_h2.h"
#include "proxy/session_internal.h"
#include "proxy/worker.h"

static const px_session_ops_t session_ops; /* at the end of the file */

/* Both legs read into the worker's one buffer. */
_Static_assert(PX_READ_BUF >= PX_LEG_READ_BUF,
               "the worker's read buffer is smaller than a leg's read");

/* ---- writing and backpressure -------------------------------------------- */

/* Reads stop on the side whose peer has too much queued, and start again
 * once it drained below the low-water mark. */
static void update_reading(px_session_t *s) {
  if (s->state == PX_S_CLOSING) return;
  /* Writers behind (slow disk or terminal): take no new traffic until they
   * catch up; the worker's backlog timer calls us again. Nothing is lost. */
  int paused = (s->reading & PX_READ_BACKLOG) != 0;
  int backlog = paused ? flt_backlog() > FLT_BACKLOG_LOW : flt_backlog() > FLT_BACKLOG_HIGH;
  if (backlog != paused) {
    px_session_set_reading(s, PX_READ_BACKLOG, backlog);
    if (backlog) s->w->backlog_waiters++;
    else s->w->backlog_waiters--;
    if (backlog) px_worker_watch_backlog(s->w);
  }
  size_t to_up = s->upstream.pending.len + px_leg_queued(&s->upstream);
  size_t to_client = px_leg_queued(&s->client) + px_session_h2_h1_queued(s); /* h2 client */
  /* A request with Upgrade waits for its answer before what follows it is
   * read on (px_http_resume_http / px_http_set_raw). */
  /* Once our FIN is out (linger), reads only look for the client's EOF and
   * drop the rest, whatever the request was waiting for. */
  int want_client = !s->client.eof && !backlog &&
                    (s->end >= PX_END_LINGER ||
                     (!(s->reading & PX_READ_HELD) && !(s->icpt_pause & 1) &&
                      px_codec_phase(s->client.codec) != PX_CODEC_VERDICT &&
                      s->end < PX_END_FLUSHING &&
                      px_leg_room(&s->client, to_up, PX_LOW_WATER, PX_HIGH_WATER)));
  px_leg_want_read(&s->client, want_client);
  if (s->up != PX_UP_READY && s->up != PX_UP_TLS && s->up != PX_UP_PROXY_CONNECT) return;
  int want_up = !s->upstream.eof && !backlog && !(s->icpt_pause & 2) &&
                px_leg_room(&s->upstream, to_client, PX_LOW_WATER, PX_HIGH_WATER);
  px_leg_want_read(&s->upstream, want_up);
}

/* Everything for the client is written: send FIN, then read (and drop)
 * until the client closes too, so that unread request bytes cannot turn
 * our close into a reset that destroys the response in flight. */
static void maybe_finish(px_session_t *s) {
  /* Output still being gathered (batching) is not written yet either:
   * px_batch_end comes back here. */
  if (s->end < PX_END_FLUSHING || s->client.writes != 0 || s->client.batching ||
      s->state == PX_S_CLOSING || s->end >= PX_END_LINGER)
    return;
  if (s->client.tls.ssl && SSL_is_init_finished(s->client.tls.ssl) &&
      !(SSL_get_shutdown(s->client.tls.ssl) & SSL_SENT_SHUTDOWN)) {
    px_tls_wake(&s->client.tls); /* a quiet connection's BIOs */
    SSL_shutdown(s->client.tls.ssl);
    px_flush_tls(s, &s->client);
    if (s->client.writes != 0) return; /* back here when close_notify is out */
  }
  if (s->client.eof) {
    /* Answers sent after the client's EOF: did it take them? */
    if (px_delivery_pending(s)) return;
    px_session_close(s, "done");
    return;
  }
  if (px_leg_shutdown(&s->client, 0) != 0) {
    px_session_close(s, "done");
    return;
  }
  px_session_set_end(s, PX_END_LINGER);
  px_update_reading(s);
  px_set_deadline(s, 2000, PX_T_LINGER);
}

/* A write or shutdown of either leg completed (leg.h ops). */
static void on_leg_written(px_leg_t *leg, int status, int shutdown) {
  px_session_t *s = leg->owner;
  int to_client = leg == &s->client;
  if (shutdown) {
    if (s->state == PX_S_CLOSING) px_session_close(s, NULL);
    return;
  }
  if (to_client && status < 0 && status != UV_ECANCELED) px_delivery_client_gone(s);
  if (s->state == PX_S_CLOSING) {
    px_session_close(s, NULL);
    return;
  }
  if (status < 0 && status != UV_ECANCELED) {
    char msg[160];
    snprintf(msg, sizeof(msg), "write to %s failed: %s", to_client ? "client" : "upstream",
             uv_strerror(status));
    px_session_close(s, msg);
    return;
  }
  s->last_activity = px_session_now(s);
  if (to_client && s->answer) px_answer_drained(s); /* the next part of a file */
  px_update_reading(s);
  px_maybe_finish(s);
}

static void on_leg_wire_out(px_leg_t *leg, const void *data, size_t len) {
  px_session_t *s = leg->owner;
  if (s->w->shared->want_wire)
    flt_emit_wire(&s->w->shared->chain, &s->conn, leg->side, 1, data, len);
}

static void write_owned(px_session_t *s, px_leg_t *to, void *buf, size_t len) {
  if (len == 0 || s->state == PX_S_CLOSING) {
    free(buf);
    return;
  }
  int rc = px_leg_write_owned(to, buf, len);
  if (rc < 0) {
    px_session_close(s, rc == UV_ENOMEM ? "out of memory" : uv_strerror(rc));
    return;
  }
  px_update_reading(s);
}

static void flush_tls(px_session_t *s, px_leg_t *leg) {
  size_t len;
  void *out;
  while ((out = px_tls_take_output(&leg->tls, &len)) != NULL) px_write_owned(s, leg, out, len);
}

static void batch_begin(px_session_t *s, int to_upstream) {
  px_leg_batch_begin(to_upstream ? &s->upstream : &s->client);
}

static void batch_end(px_session_t *s, int to_upstream) {
  px_leg_t *leg = to_upstream ? &s->upstream : &s->client;
  if (leg->batch.len == 0) {
    leg->batching = 0;
  } else {
    flt_strbuf_t b = px_leg_batch_take(leg);
    if (to_upstream)
      px_send_upstream(s, b.data, b.len);
    else
      px_send_client(s, b.data, b.len);
    flt_strbuf_free(&b);
  }
  if (!to_upstream) px_maybe_finish(s); /* it waited for this batch */
}

static int batched(px_session_t *s, px_leg_t *leg, const void *data, size_t len) {
  if (!leg->batching) return 0;
  if (flt_strbuf_append(&leg->batch, data, len) != 0) px_session_close(s, "out of memory");
  return 1;
}

/* Sends on a leg that is ready; `what` names the failure of its TLS. */
static void send_on(px_session_t *s, px_leg_t *leg, const void *data, size_t len,
                    const char *what) {
  int rc = px_leg_send(leg, data, len);
  if (rc == 0) {
    px_update_reading(s);
  } else if (rc == -1) {
    char buf[200];
    px_session_close(s, px_tls_error_text(buf, sizeof(buf), what));
  } else {
    px_session_close(s, rc == UV_ENOMEM ? "out of memory" : uv_strerror(rc));
  }
}

static void send_client(px_session_t *s, const void *data, size_t len) {
  if (len == 0 || s->state == PX_S_CLOSING) return;
  if (batched(s, &s->client, data, len)) return;
  send_on(s, &s->client, data, len, "TLS write to client failed");
}

static void send_upstream(px_session_t *s, const void *data, size_t len) {
  if (len == 0 || s->state == PX_S_CLOSING) return;
  if (batched(s, &s->upstream, data, len)) return;
  if (s->up != PX_UP_READY) {
    /* Not connected yet: keep the bytes (bounded by backpressure). */
    if (flt_strbuf_append(&s->upstream.pending, data, len) != 0) {
      px_session_close(s, "too much data before the upstream connection was ready");
      return;
    }
    px_update_reading(s);
    return;
  }
  send_on(s, &s->upstream, data, len, "TLS write upstream failed");
}

/* ---- the client's TLS ---------------------------------------------------- */

static void client_tls_read(px_session_t *s);
static void client_eof(px_session_t *s);

static void client_tls_established(px_session_t *s) {
  SSL *ssl = s->client.tls.ssl;
  const unsigned char *alpn = NULL;
  unsigned alpn_len = 0;
  snprintf(s->conn.tls_version, sizeof(s->conn.tls_version), "%s", SSL_get_version(ssl));
  snprintf(s->conn.cipher, sizeof(s->conn.cipher), "%s", SSL_get_cipher_name(ssl));
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn_len < sizeof(s->conn.alpn)) {
    memcpy(s->conn.alpn, alpn ? (const char *)alpn : "", alpn_len);
    s->conn.alpn[alpn_len] = '\0';
  }
  flt_emit_tls_established(&s->w->shared->chain, &s->conn);
  px_set_deadline(s, 0, PX_T_NONE);
  if (s->state == PX_S_CLIENT_TLS) px_session_set_state(s, PX_S_HTTP);
}

/* Drives the client handshake; returns 0 to go on, -1 when the session
 * closed or waits. */
static int client_handshake(px_session_t *s) {
  int rc = SSL_do_handshake(s->client.tls.ssl);
  px_flush_tls(s, &s->client);
  if (rc == 1) {
    client_tls_established(s);
    return 0;
  }
  int e = SSL_get_error(s->client.tls.ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -1;
  if (e == SSL_ERROR_WANT_CLIENT_HELLO_CB) {
    if (s->state == PX_S_PEEK) {
      /* First ClientHello: connect upstream before answering it. */
      px_session_set_state(s, PX_S_CLIENT_HELLO);
      px_set_deadline(s, s->w->shared->cfg->handshake_timeout_ms, PX_T_CLIENT_TLS);
      /* Upstream, offer (and verify) the name the client asked for. */
      if (s->lc->mode != PX_MODE_REVERSE && s->conn.sni[0] &&
          px_upstream_set_names(s, NULL, s->conn.sni) != 0)
        return -1;
      flt_emit_client_hello(&s->w->shared->chain, &s->conn); /* a plugin may pass it through */
      if (s->state == PX_S_CLOSING || px_passthrough_maybe(s)) return -1;
      if (px_answer_mints_alone(s)) s->ops->upstream_ready(s); /* upstream at its first use */
      else if (px_upstream_unconnected(s)) px_upstream_start(s);
    }
    return -1;
  }
  char buf[256], msg[400];
  const char *host = s->conn.sni[0] ? s->conn.sni : s->conn.server_host;
  px_passthrough_note_rejection(s, ERR_peek_error(),
                                e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN);
  snprintf(msg, sizeof(msg), "client TLS handshake for %s failed: %s", host,
           px_tls_error_text(buf, sizeof(buf), e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
                                                   ? "the client closed the connection"
                                                   : "handshake error"));
  px_session_fail(s, FLT_LOG_INFO, NULL, msg, PX_FAIL_CLOSE);
  return -1;
}

static void client_tls_read(px_session_t *s) {
  px_leg_read_t r = px_leg_tls_read(&s->client);
  if (r == PX_LEG_READ_STOPPED) return;
  px_flush_tls(s, &s->client);
  if (r == PX_LEG_READ_AGAIN) return;
  if (r == PX_LEG_READ_CLOSED) {
    /* close_notify: the client is done sending, but may still read. */
    client_eof(s);
    return;
  }
  px_passthrough_note_early_close(s, ERR_peek_error());
  char eb[256], msg[300];
  snprintf(msg, sizeof(msg), "client TLS: %s",
           px_tls_error_text(eb, sizeof(eb), "connection reset"));
  px_session_close(s, msg);
}

static void client_tls_input(px_session_t *s, const char *data, size_t len) {
  if (!s->leaf_set && flt_strbuf_append(&s->hello_raw, data, len) != 0) {
    px_session_close(s, "ClientHello larger than 256 KiB");
    return;
  }
  if (px_tls_feed(&s->client.tls, data, len) != 0) {
    px_session_close(s, "out of memory");
    return;
  }
  if (s->state == PX_S_CLIENT_HELLO) return; /* paused: upstream first */
  if (!SSL_is_init_finished(s->client.tls.ssl) && client_handshake(s) != 0) return;
  client_tls_read(s);
}

/* Our certificate for the client: mirrors the upstream's when there is one. */
static int set_leaf(px_session_t *s) {
  ca_leaf_req_t req = {0};
  X509 *leaf = NULL;
  char err[CA_ERR_LEN];
  char ip[64] = "";
  const char *colon;

  req.sni = s->conn.sni[0] ? s->conn.sni : s->conn.server_host;
  if (s->conn.server_addr[0]) {
    const char *a = s->conn.server_addr;
    if (a[0] == '[') {
      colon = strchr(a, ']');
      snprintf(ip, sizeof(ip), "%.*s", (int)(colon - a - 1), a + 1);
    } else {
      colon = strrchr(a, ':');
      snprintf(ip, sizeof(ip), "%.*s", (int)(colon - a), a);
    }
    req.ip = ip;
  }
  req.upstream = s->up_cert;
  if (ca_mint_leaf(s->w->shared->minter, &req, &leaf, err, sizeof(err)) != 0) {
    px_session_log(s, FLT_LOG_ERROR, "cannot mint a certificate for %s: %s", req.sni, err);
    return -1;
  }
  int ok = SSL_use_certificate(s->client.tls.ssl, leaf) == 1 &&
           SSL_use_PrivateKey(s->client.tls.ssl, ca_minter_key(s->w->shared->minter)) == 1;
  X509_free(leaf);
  if (!ok) {
    char buf[200];
    px_session_log(s, FLT_LOG_ERROR, "cannot use the minted certificate: %s",
                   px_tls_error_text(buf, sizeof(buf), "?"));
    return -1;
  }
  s->leaf_set = 1;
  flt_strbuf_free(&s->hello_raw); /* intercepting: nothing to replay */
  return 0;
}

/* The client's handshake was paused for the upstream; resume it with our
 * certificate. `next` is CLIENT_TLS, or ERROR_REPLY when upstream failed. */
static void resume_client_handshake(px_session_t *s, px_state_t next) {
  if (set_leaf(s) != 0) {
    px_session_close(s, "cannot mint a certificate");
    return;
  }
  px_session_set_state(s, next);
  if (client_handshake(s) == 0) client_tls_read(s);
}

/* ---- half-close ------------------------------------------------------------ */

/* Bytes pass both ways unframed: a relay (raw TCP, passthrough, non-HTTP
 * inside TLS) or an HTTP connection after 101 Switching Protocols. */
static int relaying(const px_session_t *s) {
  return s->state == PX_S_RAW ||
         (px_codec_relaying(s->client.codec) && px_codec_relaying(s->upstream.codec));
}

/* The upstream leg is connected or on its way. */
static int upstream_alive(const px_session_t *s) {
  return !s->upstream.eof &&
         (s->up == PX_UP_RESOLVING || s->up == PX_UP_CONNECTING ||
          s->up == PX_UP_PROXY_CONNECT || s->up == PX_UP_TLS || s->up == PX_UP_READY);
}

/* The client of a relay is done sending: pass its EOF on (close_notify
 * first on a TLS leg; libuv sends the FIN after the queued writes). */
static void upstream_half_close(px_session_t *s) {
  if (s->upstream.tls.ssl) {
    px_tls_wake(&s->upstream.tls);
    SSL_shutdown(s->upstream.tls.ssl);
    px_flush_tls(s, &s->upstream);
  }
  px_leg_shutdown(&s->upstream, 0);
}

/* The client sent FIN (or close_notify). A relay passes it on and goes on
 * relaying the answer; HTTP answers the requests it has; what is already
 * on its way to the client is let out before the close. */
static void client_eof(px_session_t *s) {
  if (s->client.eof) return;
  s->client.eof = 1;
  px_delivery_client_left(s);
  px_passthrough_note_early_close(s, 0); /* checked the certificate, and left? */
  if (relaying(s) && upstream_alive(s)) {
    /* Not connected yet: px_session_upstream_ready passes it on. */
    if (s->up == PX_UP_READY) upstream_half_close(s);
    px_update_reading(s);
    return;
  }
  if (s->flows.head && (s->state == PX_S_HTTP || s->state == PX_S_PROXY_HTTP)) {
    /* The client half-closed after its request: answer it first. */
    px_session_set_end(s, PX_END_DRAINING);
    px_update_reading(s);
    return;
  }
  /* What is on its way goes out first. A TLS client then gets close_notify
   * before the close, also when every write is already done (its EOF came
   * in after the last response had reached it): it may still be reading,
   * and a bare FIN reads as a truncation. */
  int tls_up = s->client.tls.ssl && SSL_is_init_finished(s->client.tls.ssl);
  if ((s->client.writes > 0 || tls_up) && s->end < PX_END_LINGER) {
    px_session_set_end(s, PX_END_FLUSHING);
    px_update_reading(s);
    px_maybe_finish(s);
    return;
  }
  px_session_close(s, "client closed");
}

/* ---- the upstream's verdict ----------------------------------------------- */

static void upstream_ready(px_session_t *s) {
  px_set_deadline(s, 0, PX_T_NONE);
  if (s->state == PX_S_CLIENT_HELLO) {
    resume_client_handshake(s, PX_S_CLIENT_TLS);
    if (s->state == PX_S_CLOSING) return;
    /* The client still has to finish its handshake: keep it timed. */
    if (s->client.tls.ssl && !SSL_is_init_finished(s->client.tls.ssl))
      px_set_deadline(s, s->w->shared->cfg->handshake_timeout_ms, PX_T_CLIENT_TLS);
  }
  if (s->upstream.pending.len > 0) {
    flt_strbuf_t pending = s->upstream.pending;
    flt_strbuf_init(&s->upstream.pending, pending.cap);
    px_send_upstream(s, pending.data, pending.len);
    flt_strbuf_free(&pending);
  }
  /* The client of a relay half-closed while we were connecting. */
  if (s->client.eof && relaying(s) && s->state != PX_S_CLOSING) upstream_half_close(s);
  px_update_reading(s);
}

/* "upstream HOST:PORT", what an upstream failure is about in the log. */
static const char *upstream_about(const px_session_t *s, char *buf, size_t len) {
  snprintf(buf, len, "upstream %s:%u", s->up_host, (unsigned)s->up_port);
  return buf;
}

static void upstream_failed(px_session_t *s) {
  char about[300];
  int then = PX_FAIL_CLOSE;
  if (s->state == PX_S_HTTP || s->state == PX_S_PROXY_HTTP) then = s->up_error_status;
  if (s->state == PX_S_CLIENT_HELLO) then = PX_FAIL_KEEP;
  px_set_deadline(s, 0, PX_T_NONE);
  px_session_fail(s, FLT_LOG_WARN, upstream_about(s, about, sizeof(about)), s->up_error, then);
  if (then == PX_FAIL_KEEP) {
    /* Finish the client's handshake so the 502 can be read inside TLS. */
    px_set_deadline(s, s->w->shared->cfg->handshake_timeout_ms, PX_T_CLIENT_TLS);
    resume_client_handshake(s, PX_S_ERROR_REPLY);
  }
}

/* ---- reading from the client ---------------------------------------------- */

/* First bytes of a connection: TLS (0x16), HTTP (px_http_sniff), or raw. */
static void peek_input(px_session_t *s, const char *data, size_t len) {
  if (flt_strbuf_append(&s->peek, data, len) != 0) {
    px_session_close(s, "out of memory");
    return;
  }
  px_peek_kind_t kind = px_peek_classify((const uint8_t *)s->peek.data, s->peek.len);
  if (kind == PX_PEEK_NEED_MORE) return; /* need more bytes to tell */
  /* Whatever comes, the request framer starts afresh (it saw CONNECT). */
  px_codec_resume(s->client.codec);
  if (kind == PX_PEEK_TLS) {
    s->conn.kind = FLT_CONN_HTTPS;
    s->conn.client_tls = 1;
    if (s->lc->mode != PX_MODE_REVERSE) {
      s->up_tls_wanted = 1; /* TLS inside CONNECT: TLS upstream too */
      s->conn.upstream_tls = 1;
    }
    if (px_tls_init(&s->client.tls, s->w->server_ctx, 1) != 0) {
      px_session_close(s, "cannot create a TLS session");
      return;
    }
    SSL_set_ex_data(s->client.tls.ssl, px_tlsctx_session_index(), s);
    flt_strbuf_t peeked = s->peek;
    flt_strbuf_init(&s->peek, 0);
    client_tls_input(s, peeked.data, peeked.len);
    flt_strbuf_free(&peeked);
    return;
  }
  s->conn.match_ready = 1; /* not TLS: the target is all there is to know */
  int http = kind == PX_PEEK_HTTP || kind == PX_PEEK_H2;
  flt_strbuf_t peeked = s->peek;
  flt_strbuf_init(&s->peek, 0);
  s->conn.kind = http ? FLT_CONN_HTTP : FLT_CONN_RAW;
  if (http)
    px_session_set_state(s, PX_S_HTTP);
  else
    px_session_codec_relay(s, 0);
  px_set_deadline(s, 0, PX_T_NONE);
  /* Raw bytes go upstream now. HTTP connects once its first request head is
   * complete (on_req_head): a client dribbling a head holds no upstream. */
  if (px_upstream_unconnected(s) && !http) px_upstream_start(s);
  if (kind == PX_PEEK_H2) px_session_codec_h2c(s); /* prior knowledge: session_h2.c */
  if (s->state != PX_S_CLOSING) px_session_codec_client_plaintext(s, peeked.data, peeked.len);
  flt_strbuf_free(&peeked);
}

static void on_client_read(px_leg_t *leg, ssize_t nread, const char *data) {
  px_session_t *s = leg->owner;
  if (nread < 0) {
    if (nread != UV_EOF) {
      px_session_log(s, FLT_LOG_DEBUG, "client read: %s", uv_strerror((int)nread));
      /* A reset: the client reads nothing more; its flows end now. */
      px_delivery_client_left(s);
      px_delivery_client_gone(s);
      px_passthrough_note_early_close(s, 0); /* checked the certificate, and left? */
      if (s->state != PX_S_CLOSING) px_session_close(s, "the client reset the connection");
      return;
    }
    client_eof(s);
    return;
  }
  s->conn.bytes_in += (uint64_t)nread;
  s->last_activity = px_session_now(s);
  if (s->end >= PX_END_LINGER) return; /* answered already: drop the rest */
  if (s->w->shared->want_wire) px_proxyauth_emit_wire(s, data, (size_t)nread);
  if (s->client.tls.ssl) {
    client_tls_input(s, data, (size_t)nread);
  } else if (s->state == PX_S_PEEK) {
    peek_input(s, data, (size_t)nread);
  } else if (s->state == PX_S_SOCKS) {
    px_socks_input(s, data, (size_t)nread);
  } else {
    px_session_codec_client_plaintext(s, data, (size_t)nread);
  }
}

static void set_target(px_session_t *s, const char *host, uint16_t port) {
  if (px_upstream_set_names(s, host, host) != 0) return;
  s->up_port = port;
  snprintf(s->conn.server_host, sizeof(s->conn.server_host), "%s", host);
  s->conn.server_port = port;
  /* An IP literal is already the address (~dst can match before connecting). */
  unsigned char bin[16];
  if (inet_pton(AF_INET, host, bin) == 1)
    snprintf(s->conn.server_addr, sizeof(s->conn.server_addr), "%s:%u", host, (unsigned)port);
  else if (inet_pton(AF_INET6, host, bin) == 1)
    snprintf(s->conn.server_addr, sizeof(s->conn.server_addr), "[%s]:%u", host, (unsigned)port);
}

static void session_peek(px_session_t *s, const char *data, size_t len) {
  peek_input(s, data, len);
}

static void on_upstream_read(px_leg_t *leg, ssize_t nread, const char *data) {
  px_session_t *s = leg->owner;
  if (nread < 0) {
    if (nread != UV_EOF)
      px_session_log(s, FLT_LOG_DEBUG, "upstream read: %s", uv_strerror((int)nread));
    if (s->up == PX_UP_FAILED) {
      /* Already reported; the 502 to the client must not be cut short. */
      uv_read_stop((uv_stream_t *)&leg->tcp);
      return;
    }
    if (s->up == PX_UP_TLS) {
      px_upstream_fail(s, 502, "%s:%u closed the connection during the TLS handshake",
                       s->up_host, (unsigned)s->up_port);
      return;
    }
    px_upstream_closed(s);
    return;
  }
  s->conn.bytes_out += (uint64_t)nread;
  s->last_activity = px_session_now(s);
  if (s->w->shared->want_wire)
    flt_emit_wire(&s->w->shared->chain, &s->conn, FLT_LEG_UPSTREAM, 0, (const uint8_t *)data,
                  (size_t)nread);
  px_upstream_on_read(s, data, (size_t)nread);
}

static void on_client_plaintext(px_leg_t *leg, const char *data, size_t len) {
  px_session_t *s = leg->owner;
  s->client_app_data = 1;
  px_session_codec_client_plaintext(s, data, len);
}

static void on_upstream_plaintext(px_leg_t *leg, const char *data, size_t len) {
  px_upstream_plaintext(leg->owner, data, len);
}

static int client_may_read(px_leg_t *leg) {
  px_session_t *s = leg->owner;
  return s->state != PX_S_CLOSING && !s->client.eof;
}

static int upstream_may_read(px_leg_t *leg) {
  px_session_t *s = leg->owner;
  return s->state != PX_S_CLOSING;
}

static const px_leg_ops_t client_ops = {on_client_read, on_leg_written, on_client_plaintext,
                                        client_may_read, on_leg_wire_out};
static const px_leg_ops_t upstream_ops = {on_upstream_read, on_leg_written,
                                          on_upstream_plaintext, upstream_may_read,
                                          on_leg_wire_out};

/* ---- accept and close ------------------------------------------------------ */

px_session_t *px_session_new(px_worker_t *w, const px_listen_cfg_t *lc) {
  px_session_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->ops = &session_ops;
  s->w = w;
  s->lc = lc;
  px_leg_init(&s->client, FLT_LEG_CLIENT, &client_ops, s, w->readbuf, 0);
  px_leg_init(&s->upstream, FLT_LEG_UPSTREAM, &upstream_ops, s, w->readbuf,
              PX_HIGH_WATER + PX_READ_BUF + PX_HTTP_MAX_HEAD);
  if (px_session_codec_init(s) != 0) { /* before any handle: little to undo */
    px_session_codec_free(s);
    px_leg_free(&s->client);
    px_leg_free(&s->upstream);
    free(s);
    return NULL;
  }
  px_leg_open(&s->client, &w->loop, AF_UNSPEC);
  s->handles_open = 1;
  uv_timer_init(&w->loop, &s->timer);
  s->timer.data = s;
  s->handles_open++;
  /* link first so close can unlink */
  s->next = w->sessions;
  if (w->sessions) w->sessions->prev = s;
  w->sessions = s;
  w->n_sessions++;
  atomic_fetch_add(&w->shared->live_sessions, 1);
  flt_strbuf_init(&s->peek, 64 * 1024);
  flt_strbuf_init(&s->hello_raw, 256 * 1024);
  px_upstream_set_names(s, NULL, NULL);
  s->conn.id = atomic_fetch_add(&w->shared->next_session_id, 1) + 1;
  s->conn.core = &px_core_ops;
  s->conn.worker = w->index;
  s->conn.start_us = flt_now_us();
  s->conn.dns_us = s->conn.connect_us = s->conn.ssl_us = -1;
  s->last_activity = px_session_now(s);
  return s;
}

void px_session_start(px_session_t *s) {
  px_worker_t *w = s->w;
  const px_listen_cfg_t *lc = s->lc;
  if (lc->mode == PX_MODE_REVERSE) {
    if (px_upstream_set_names(s, lc->target_host, lc->target_host) != 0) return;
    s->up_port = lc->target_port;
    s->up_tls_wanted = lc->target_tls;
    s->conn.upstream_tls = lc->target_tls;
    snprintf(s->conn.server_host, sizeof(s->conn.server_host), "%s", lc->target_host);
    s->conn.server_port = lc->target_port;
  } else if (lc->mode == PX_MODE_TRANSPARENT) {
    if (px_transparent_destination(s) != 0) return;
  }
  if (lc->mode == PX_MODE_REVERSE || lc->mode == PX_MODE_TRANSPARENT)
    px_session_set_state(s, PX_S_PEEK);
  else if (lc->mode == PX_MODE_SOCKS5)
    px_session_set_state(s, PX_S_SOCKS);
  else
    px_session_set_state(s, PX_S_PROXY_HTTP);
  flt_emit_conn_open(&w->shared->chain, &s->conn);
  px_set_deadline(s, 0, PX_T_NONE);
  px_session_timer_deadline_start(s, PX_WAIT_FIRST);
  px_leg_read_start(&s->client);
}

static void session_free(px_session_t *s) {
  px_worker_t *w = s->w;
  if (s->reading & PX_READ_BACKLOG) w->backlog_waiters--;
  if (s->prev)
    s->prev->next = s->next;
  else
    w->sessions = s->next;
  if (s->next) s->next->prev = s->prev;
  w->n_sessions--;
  atomic_fetch_sub(&w->shared->live_sessions, 1);
  px_leg_free(&s->client);
  px_leg_free(&s->upstream);
  if (s->up_cert) X509_free(s->up_cert);
  px_upstream_free(s);
  px_session_codec_free(s);
  flt_strbuf_free(&s->peek);
  flt_strbuf_free(&s->hello_raw);
  free(s->remote_home);
  free(s);
  px_worker_session_gone(w);
}

static void on_handle_closed(uv_handle_t *h) {
  px_session_t *s = h->data;
  s->handles_open--;
  if (h == (uv_handle_t *)&s->client.tcp) px_leg_closed(&s->client);
  if (h == (uv_handle_t *)&s->upstream.tcp) px_leg_closed(&s->upstream);
  px_session_close(s, NULL);
}

static void session_close(px_session_t *s, const char *why) {
  if (s->state != PX_S_CLOSING) {
    if (why) px_session_log(s, FLT_LOG_DEBUG, "closing: %s", why);
    px_upstream_tls_close(s);
    px_session_set_state(s, PX_S_CLOSING);
    px_upstream_count_idle(s, 0);
    px_delivery_check_gone(s);
    px_session_intercept_drop(s);
    px_session_http_fail_flows(s, why && strcmp(why, "done") != 0 ? why : "connection closed");
    flt_emit_conn_close(&s->w->shared->chain, &s->conn);
    px_upstream_cancel_lookup(s); /* its callback never runs */
    px_leg_close(&s->client, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    px_upstream_forget(s);
    px_leg_close(&s->upstream, on_handle_closed);
    return;
  }
  /* Already closing: free once every handle, request and write is done. */
  if (s->handles_open == 0 && s->client.writes == 0 && s->upstream.writes == 0)
    session_free(s);
}

static void session_drain(px_session_t *s) {
  if (s->state == PX_S_CLOSING) return;
  if (s->flows.head == NULL && s->flows.req == NULL && s->client.writes == 0)
    px_session_close(s, "shutting down");
  else
    /* Finish the flows in progress first (session_http.c). */
    px_session_set_end(s, PX_END_DRAINING);
}

static void send_to(px_session_t *s, int to_upstream, const void *data, size_t len) {
  if (to_upstream)
    send_upstream(s, data, len);
  else
    send_client(s, data, len);
}

static void batch(px_session_t *s, int to_upstream, int begin) {
  if (begin)
    batch_begin(s, to_upstream);
  else
    batch_end(s, to_upstream);
}

static const px_session_ops_t session_ops = {
    .close = session_close,
    .fail_with = px_session_state_fail,
    .drain = session_drain,
    .maybe_finish = maybe_finish,
    .update_reading = update_reading,
    .send = send_to,
    .batch = batch,
    .write_owned = write_owned,
    .flush_tls = flush_tls,
    .set_target = set_target,
    .peek = session_peek,
    .upstream_ready = upstream_ready,
    .upstream_failed = upstream_failed,
    .upstream_plaintext = px_session_codec_upstream_plaintext,
    .upstream_closed = px_session_codec_upstream_closed,
    .reply_error = px_session_http_reply_error,
    .set_deadline = px_session_timer_set_deadline,
    .relay = px_session_codec_relay,
    .flow_finish = px_session_http_flow_finish,
};
