#include "proxy/tls.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/buffer.h>
#include <openssl/err.h>

int px_tls_init(px_tls_t *t, SSL_CTX *ctx, int server) {
  t->ssl = SSL_new(ctx);
  t->rbio = NULL;
  t->wbio = NULL;
  if (t->ssl == NULL) return -1;
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    t->ssl = NULL;
    return -1;
  }
  /* An empty read BIO means "wait for the network", not end of stream. */
  BIO_set_mem_eof_return(t->rbio, -1);
  BIO_set_mem_eof_return(t->wbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (server)
    SSL_set_accept_state(t->ssl);
  else
    SSL_set_connect_state(t->ssl);
  return 0;
}

void px_tls_free(px_tls_t *t) {
  if (t->ssl) SSL_free(t->ssl); /* frees both BIOs */
  t->ssl = NULL;
  t->rbio = t->wbio = NULL;
}

int px_tls_feed(px_tls_t *t, const void *data, size_t len) {
  size_t done = 0;
  if (px_tls_wake(t) != 0) return -1;
  while (done < len) {
    size_t n = 0;
    if (!BIO_write_ex(t->rbio, (const char *)data + done, len - done, &n))
      return -1;
    done += n;
  }
  return 0;
}

size_t px_tls_pending_output(const px_tls_t *t) {
  return t->wbio ? (size_t)BIO_ctrl_pending(t->wbio) : 0;
}

void *px_tls_take_output(px_tls_t *t, size_t *len) {
  size_t pending = px_tls_pending_output(t), got = 0;
  char *buf;
  *len = 0;
  if (pending == 0) return NULL;
  buf = malloc(pending);
  if (buf == NULL) return NULL;
  if (!BIO_read_ex(t->wbio, buf, pending, &got) || got == 0) {
    free(buf);
    return NULL;
  }
  *len = got;
  return buf;
}

static BIO *mem_bio(void) {
  BIO *b = BIO_new(BIO_s_mem());
  if (b) BIO_set_mem_eof_return(b, -1);
  return b;
}

#define PX_TLS_BIO_KEEP 512 /* an empty BIO larger than this is replaced */

static BIO *fresh_if_big(BIO *b, size_t keep) {
  BUF_MEM *bm = NULL;
  if (b == NULL || BIO_ctrl_pending(b) != 0) return NULL;
  BIO_get_mem_ptr(b, &bm);
  if (bm == NULL || bm->max <= keep) return NULL;
  return mem_bio();
}

static void trim(px_tls_t *t, size_t keep) {
  if (t->ssl == NULL) return;
  BIO *r = fresh_if_big(t->rbio, keep);
  if (r) {
    SSL_set0_rbio(t->ssl, r); /* frees the old one */
    t->rbio = r;
  }
  BIO *w = fresh_if_big(t->wbio, keep);
  if (w) {
    SSL_set0_wbio(t->ssl, w);
    t->wbio = w;
  }
}

void px_tls_trim(px_tls_t *t) { trim(t, PX_TLS_BIO_KEEP); }

/* An idle connection has no use for its BIOs: an empty memory BIO still
 * holds the BIO, its lock and two BUF_MEMs. SSL_set0_*bio(NULL) frees them. */
void px_tls_trim_all(px_tls_t *t) {
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL || BIO_ctrl_pending(t->rbio) != 0 ||
      BIO_ctrl_pending(t->wbio) != 0)
    return;
  SSL_set0_rbio(t->ssl, NULL);
  SSL_set0_wbio(t->ssl, NULL);
  t->rbio = t->wbio = NULL;
}

int px_tls_wake(px_tls_t *t) {
  if (t->ssl == NULL) return 0;
  if (t->rbio == NULL) {
    if ((t->rbio = mem_bio()) == NULL) return -1;
    SSL_set0_rbio(t->ssl, t->rbio);
  }
  if (t->wbio == NULL) {
    if ((t->wbio = mem_bio()) == NULL) return -1;
    SSL_set0_wbio(t->ssl, t->wbio);
  }
  return 0;
}

const char *px_tls_error_text(char *buf, size_t len, const char *fallback) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, len, "%s", fallback);
  } else {
    const char *reason = ERR_reason_error_string(e);
    if (reason)
      snprintf(buf, len, "%s", reason);
    else
      ERR_error_string_n(e, buf, len);
  }
  ERR_clear_error();
  return buf;
}
