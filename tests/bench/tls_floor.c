/* tls_floor.c — how much heap one idle server-side TLS connection costs in
 * the OpenSSL this machine has, with nothing else around it: the floor under
 * any proxy's "RSS per idle intercepted connection".
 *
 * Usage: tls_floor CERT_AND_KEY.pem [COUNT]
 *
 * Each connection is a TLS handshake between an SSL_CTX server (the PEM's
 * certificate and key, SSL_MODE_RELEASE_BUFFERS, session tickets as OpenSSL
 * sets them) and a client over memory BIOs, then one request and a 1 KiB
 * response, as in the benchmark's idle scenario. The client side is freed;
 * the server side is kept. Prints the growth of malloc's in-use bytes
 * (mallinfo2) per kept connection, in KiB, measured after a warm-up of 100.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

typedef struct end {
  SSL *ssl;
  BIO *in, *out; /* what the peer sent us / what we send */
} end_t;

static int end_init(end_t *e, SSL_CTX *ctx, int server) {
  e->ssl = SSL_new(ctx);
  e->in = BIO_new(BIO_s_mem());
  e->out = BIO_new(BIO_s_mem());
  if (e->ssl == NULL || e->in == NULL || e->out == NULL) return -1;
  BIO_set_mem_eof_return(e->in, -1);
  BIO_set_mem_eof_return(e->out, -1);
  SSL_set_bio(e->ssl, e->in, e->out);
  if (server)
    SSL_set_accept_state(e->ssl);
  else
    SSL_set_connect_state(e->ssl);
  return 0;
}

/* Moves every pending byte from `from` to `to`. */
static void carry(end_t *from, end_t *to) {
  char buf[16384];
  int n;
  while ((n = BIO_read(from->out, buf, sizeof(buf))) > 0)
    BIO_write(to->in, buf, n);
}

static int one_connection(SSL_CTX *sctx, SSL_CTX *cctx, SSL **kept) {
  end_t s, c;
  char buf[4096], resp[1024 + 64];
  static const char req[] = "GET /1k HTTP/1.1\r\nHost: localhost\r\n\r\n";

  if (end_init(&s, sctx, 1) != 0 || end_init(&c, cctx, 0) != 0) return -1;
  for (int round = 0; round < 8 && !(SSL_is_init_finished(s.ssl) && SSL_is_init_finished(c.ssl));
       round++) {
    SSL_do_handshake(c.ssl);
    carry(&c, &s);
    SSL_do_handshake(s.ssl);
    carry(&s, &c);
  }
  if (!SSL_is_init_finished(s.ssl) || !SSL_is_init_finished(c.ssl)) return -1;
  if (SSL_write(c.ssl, req, (int)sizeof(req) - 1) <= 0) return -1;
  carry(&c, &s);
  if (SSL_read(s.ssl, buf, sizeof(buf)) <= 0) return -1;
  int hl = snprintf(resp, 64, "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n");
  memset(resp + hl, 'x', 1024);
  if (SSL_write(s.ssl, resp, hl + 1024) <= 0) return -1;
  carry(&s, &c);
  while (SSL_read(c.ssl, buf, sizeof(buf)) > 0)
    continue; /* tickets, response */
  SSL_free(c.ssl);
  *kept = s.ssl;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CERT_AND_KEY.pem [COUNT]\n", argv[0]);
    return 2;
  }
  int count = argc > 2 ? atoi(argv[2]) : 2000;
  if (count < 200) count = 200;
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  if (sctx == NULL || cctx == NULL || SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx, argv[1], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_mode(cctx, SSL_MODE_RELEASE_BUFFERS);
  SSL **kept = calloc((size_t)count, sizeof(*kept));
  if (kept == NULL) return 1;
  size_t base = 0;
  for (int i = 0; i < count; i++) {
    if (one_connection(sctx, cctx, &kept[i]) != 0) {
      fprintf(stderr, "connection %d failed\n", i);
      ERR_print_errors_fp(stderr);
      return 1;
    }
    if (i == 99) base = mallinfo2().uordblks;
  }
  double per = (double)(mallinfo2().uordblks - base) / (count - 100) / 1024.0;
  printf("%.1f\n", per);
  for (int i = 0; i < count; i++)
    SSL_free(kept[i]);
  free(kept);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  return 0;
}
