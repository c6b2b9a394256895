/* Unit tests for the leg (proxy/leg.c): two legs on the two ends of a
 * socketpair, on one libuv loop, move bytes plain and over TLS, pause their
 * reads, half-close, and tell their owner through the ops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "proxy/leg.h"

/* What one leg told its owner. */
typedef struct rec {
  flt_strbuf_t got;   /* bytes read (ciphertext on a TLS leg) */
  flt_strbuf_t plain; /* plaintext from px_leg_tls_read */
  flt_strbuf_t wire;  /* bytes seen by on_wire_out */
  int eof, written, shutdowns, last_status;
  int tls; /* feed reads to TLS and decrypt them */
  px_leg_read_t last_read;
  px_leg_t *leg;
} rec_t;

static char readbuf[PX_LEG_READ_BUF];

static void on_read(px_leg_t *leg, ssize_t nread, const char *data) {
  rec_t *r = leg->owner;
  if (nread < 0) {
    r->eof = 1;
    leg->eof = 1;
    return;
  }
  flt_strbuf_append(&r->got, data, (size_t)nread);
  if (!r->tls) return;
  assert_int_equal(px_tls_feed(&leg->tls, data, (size_t)nread), 0);
  if (!SSL_is_init_finished(leg->tls.ssl)) {
    SSL_do_handshake(leg->tls.ssl);
    px_leg_flush_tls(leg);
    if (!SSL_is_init_finished(leg->tls.ssl)) return;
  }
  r->last_read = px_leg_tls_read(leg);
  px_leg_flush_tls(leg);
}

static void on_written(px_leg_t *leg, int status, int shutdown) {
  rec_t *r = leg->owner;
  r->last_status = status;
  if (shutdown)
    r->shutdowns++;
  else
    r->written++;
}

static void on_plaintext(px_leg_t *leg, const char *data, size_t len) {
  rec_t *r = leg->owner;
  flt_strbuf_append(&r->plain, data, len);
}

static int may_read(px_leg_t *leg) {
  return !leg->eof;
}

static void on_wire_out(px_leg_t *leg, const void *data, size_t len) {
  rec_t *r = leg->owner;
  flt_strbuf_append(&r->wire, data, len);
}

static const px_leg_ops_t ops = {on_read, on_written, on_plaintext, may_read, on_wire_out};

typedef struct pair {
  uv_loop_t loop;
  px_leg_t a, b;
  rec_t ra, rb;
} pair_t;

static void pair_open(pair_t *p) {
  int fds[2];
  memset(p, 0, sizeof(*p));
  assert_int_equal(uv_loop_init(&p->loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  px_leg_init(&p->a, FLT_LEG_CLIENT, &ops, &p->ra, readbuf, 0);
  px_leg_init(&p->b, FLT_LEG_UPSTREAM, &ops, &p->rb, readbuf, 0);
  p->ra.leg = &p->a;
  p->rb.leg = &p->b;
  assert_int_equal(px_leg_open(&p->a, &p->loop, AF_UNSPEC), 0);
  assert_int_equal(px_leg_open(&p->b, &p->loop, AF_UNSPEC), 0);
  assert_int_equal(uv_tcp_open(&p->a.tcp, fds[0]), 0);
  assert_int_equal(uv_tcp_open(&p->b.tcp, fds[1]), 0);
  assert_ptr_equal(p->a.tcp.data, &p->ra); /* the handle's data is the owner */
  assert_int_equal(px_leg_read_start(&p->a), 0);
  assert_int_equal(px_leg_read_start(&p->b), 0);
}

static void run(pair_t *p) {
  for (int i = 0; i < 20; i++)
    uv_run(&p->loop, UV_RUN_NOWAIT);
}

static void on_closed(uv_handle_t *h) {
  px_leg_closed((px_leg_t *)h);
}

static void pair_close(pair_t *p) {
  assert_int_equal(px_leg_close(&p->a, on_closed), 1);
  assert_int_equal(px_leg_close(&p->b, on_closed), 1);
  assert_int_equal(px_leg_close(&p->b, on_closed), 0); /* already closing */
  uv_run(&p->loop, UV_RUN_DEFAULT);
  assert_false(p->a.tcp_open);
  assert_false(p->b.tcp_open);
  assert_int_equal(uv_loop_close(&p->loop), 0);
  px_leg_free(&p->a);
  px_leg_free(&p->b);
  rec_t *rs[2] = {&p->ra, &p->rb};
  for (int i = 0; i < 2; i++) {
    flt_strbuf_free(&rs[i]->got);
    flt_strbuf_free(&rs[i]->plain);
    flt_strbuf_free(&rs[i]->wire);
  }
}

static void test_plain_bytes_both_ways(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p);
  assert_int_equal(px_leg_send(&p.a, "hello", 5), 0);
  assert_int_equal(p.a.writes, 1);
  char *owned = strdup("world!");
  assert_int_equal(px_leg_write_owned(&p.b, owned, 6), 0);
  run(&p);
  assert_int_equal(p.rb.got.len, 5);
  assert_memory_equal(p.rb.got.data, "hello", 5);
  assert_int_equal(p.ra.got.len, 6);
  assert_memory_equal(p.ra.got.data, "world!", 6);
  assert_int_equal(p.a.writes, 0);
  assert_int_equal(p.ra.written, 1);
  assert_int_equal(p.ra.last_status, 0);
  assert_string_equal(p.ra.wire.data, "hello"); /* what went out, as it went */
  assert_int_equal(px_leg_queued(&p.a), 0);
  pair_close(&p);
}

static void test_paused_leg_reads_nothing_until_resumed(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p);
  px_leg_want_read(&p.b, 0);
  assert_true(p.b.paused);
  assert_int_equal(px_leg_send(&p.a, "later", 5), 0);
  run(&p);
  assert_int_equal(p.rb.got.len, 0);
  assert_int_equal(p.ra.written, 1); /* the kernel has it */
  px_leg_want_read(&p.b, 1);
  assert_false(p.b.paused);
  run(&p);
  assert_int_equal(p.rb.got.len, 5);
  /* The water marks: reading goes on below high, starts again below low. */
  assert_true(px_leg_room(&p.b, 100, 64, 256));
  assert_false(px_leg_room(&p.b, 256, 64, 256));
  p.b.paused = 1;
  assert_false(px_leg_room(&p.b, 100, 64, 256));
  assert_true(px_leg_room(&p.b, 63, 64, 256));
  p.b.paused = 0;
  pair_close(&p);
}

/* A read budget (throttle.c): reads take no more than is left, stop below
 * the minimum whatever px_leg_want_read asks, and start again when topped
 * up; off, reads are free again. */
static void test_budget_rations_reads(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p);
  char data[3000];
  memset(data, 'x', sizeof(data));
  px_leg_set_budget(&p.b, 1, 0, 0, 100); /* empty: reads stop */
  assert_true(p.b.paused);
  assert_int_equal(px_leg_send(&p.a, data, sizeof(data)), 0);
  run(&p);
  assert_int_equal(p.rb.got.len, 0);
  px_leg_want_read(&p.b, 1); /* the owner wants them; the budget says no */
  assert_true(p.b.paused);
  run(&p);
  assert_int_equal(p.rb.got.len, 0);
  px_leg_set_budget(&p.b, 1, 1000, 5000, 100);
  assert_false(p.b.paused);
  run(&p);
  assert_int_equal(p.rb.got.len, 1000); /* exactly the budget */
  assert_true(p.b.paused);
  px_leg_set_budget(&p.b, 1, 50, 5000, 100); /* below the minimum: still stopped */
  assert_true(p.b.paused);
  px_leg_set_budget(&p.b, 1, 100000, 500, 100); /* capped at 500 */
  assert_int_equal(p.b.budget, 500);
  run(&p);
  assert_int_equal(p.rb.got.len, 1500);
  px_leg_want_read(&p.b, 0); /* the owner's pause stays when topped up */
  px_leg_set_budget(&p.b, 1, 5000, 5000, 100);
  assert_true(p.b.paused);
  px_leg_want_read(&p.b, 1);
  px_leg_set_budget(&p.b, 0, 0, 0, 0); /* off */
  assert_false(p.b.paused);
  run(&p);
  assert_int_equal(p.rb.got.len, sizeof(data));
  pair_close(&p);
}

static void test_shutdown_is_the_peers_eof(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p);
  assert_int_equal(px_leg_send(&p.a, "last", 4), 0);
  assert_int_equal(px_leg_shutdown(&p.a, 1), 0); /* plain: no close_notify to send */
  assert_int_equal(p.a.writes, 2);               /* the write and the shutdown */
  run(&p);
  assert_int_equal(p.rb.got.len, 4);
  assert_true(p.rb.eof);
  assert_int_equal(p.ra.shutdowns, 1);
  assert_int_equal(p.a.writes, 0);
  /* The other way still works: a half-close. */
  assert_int_equal(px_leg_send(&p.b, "answer", 6), 0);
  run(&p);
  assert_int_equal(p.ra.got.len, 6);
  pair_close(&p);
}

static void test_batch_gathers_until_taken(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p);
  px_leg_batch_begin(&p.a);
  assert_true(p.a.batching);
  flt_strbuf_append(&p.a.batch, "ab", 2);
  flt_strbuf_append(&p.a.batch, "cd", 2);
  flt_strbuf_t b = px_leg_batch_take(&p.a);
  assert_false(p.a.batching);
  assert_int_equal(p.a.batch.len, 0);
  assert_string_equal(b.data, "abcd");
  flt_strbuf_free(&b);
  pair_close(&p);
}

static X509 *self_signed(EVP_PKEY *key) {
  X509 *cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             (const unsigned char *)"leg.test", -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  return cert;
}

static void test_tls_over_two_legs(void **state) {
  (void)state;
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = self_signed(key);
  SSL_CTX_use_certificate(sctx, cert);
  SSL_CTX_use_PrivateKey(sctx, key);
  pair_t p;
  pair_open(&p);
  p.ra.tls = p.rb.tls = 1;
  assert_int_equal(px_tls_init(&p.a.tls, sctx, 1), 0);
  assert_int_equal(px_tls_init(&p.b.tls, cctx, 0), 0);
  SSL_do_handshake(p.b.tls.ssl); /* the ClientHello */
  assert_int_equal(px_leg_flush_tls(&p.b), 0);
  run(&p);
  assert_true(SSL_is_init_finished(p.a.tls.ssl));
  assert_true(SSL_is_init_finished(p.b.tls.ssl));

  assert_int_equal(px_leg_send(&p.b, "GET / HTTP/1.1\r\n\r\n", 18), 0);
  run(&p);
  assert_int_equal(p.ra.plain.len, 18);
  assert_memory_equal(p.ra.plain.data, "GET / HTTP/1.1\r\n\r\n", 18);
  assert_int_equal(p.ra.last_read, PX_LEG_READ_AGAIN);
  assert_true(p.ra.got.len > 18); /* ciphertext on the wire */
  assert_int_equal(px_leg_send(&p.a, "HTTP/1.1 204 \r\n\r\n", 18), 0);
  run(&p);
  assert_string_equal(p.rb.plain.data, "HTTP/1.1 204 \r\n\r\n");

  /* close_notify, then the FIN: the server leg reads "closed", then EOF. */
  assert_int_equal(px_leg_shutdown(&p.b, 1), 0);
  run(&p);
  assert_int_equal(p.ra.last_read, PX_LEG_READ_CLOSED);
  assert_true(p.ra.eof);
  assert_int_equal(px_leg_tls_close_now(&p.b), 0); /* already sent */
  assert_true(px_leg_tls_close_now(&p.a) > 0);     /* the server's goes out at once */
  run(&p);
  assert_int_equal(p.rb.last_read, PX_LEG_READ_CLOSED);
  pair_close(&p);
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

/* A quiet leg frees its memory BIOs (px_tls_trim_all); reads, writes and
 * close_notify make them again (px_tls_wake) and nothing is lost. */
static void test_quiet_tls_legs_free_their_bios(void **state) {
  (void)state;
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = self_signed(key);
  SSL_CTX_use_certificate(sctx, cert);
  SSL_CTX_use_PrivateKey(sctx, key);
  pair_t p;
  pair_open(&p);
  p.ra.tls = p.rb.tls = 1;
  assert_int_equal(px_tls_init(&p.a.tls, sctx, 1), 0);
  assert_int_equal(px_tls_init(&p.b.tls, cctx, 0), 0);
  SSL_do_handshake(p.b.tls.ssl);
  assert_int_equal(px_leg_flush_tls(&p.b), 0);
  run(&p);
  assert_true(SSL_is_init_finished(p.a.tls.ssl));

  px_tls_trim_all(&p.a.tls);
  px_tls_trim_all(&p.b.tls);
  assert_null(p.a.tls.rbio);
  assert_null(p.a.tls.wbio);
  assert_null(p.b.tls.wbio);
  assert_int_equal(px_tls_pending_output(&p.a.tls), 0);
  assert_int_equal(px_leg_send(&p.b, "ping", 4), 0); /* wakes b's BIOs */
  assert_non_null(p.b.tls.wbio);
  run(&p); /* a's read wakes its BIOs */
  assert_non_null(p.a.tls.rbio);
  assert_int_equal(p.ra.plain.len, 4);
  assert_memory_equal(p.ra.plain.data, "ping", 4);

  px_tls_trim_all(&p.a.tls);
  px_tls_trim_all(&p.b.tls);
  assert_null(p.a.tls.wbio);
  assert_int_equal(px_leg_send(&p.a, "pong", 4), 0);
  run(&p);
  assert_string_equal(p.rb.plain.data, "pong");

  /* close_notify from sleeping legs, both ways. */
  px_tls_trim_all(&p.a.tls);
  px_tls_trim_all(&p.b.tls);
  assert_int_equal(px_leg_shutdown(&p.b, 1), 0);
  run(&p);
  assert_int_equal(p.ra.last_read, PX_LEG_READ_CLOSED);
  px_tls_trim_all(&p.a.tls);
  assert_null(p.a.tls.wbio);
  assert_true(px_leg_tls_close_now(&p.a) > 0);
  run(&p);
  assert_int_equal(p.rb.last_read, PX_LEG_READ_CLOSED);
  pair_close(&p);
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_bytes_both_ways),
      cmocka_unit_test(test_paused_leg_reads_nothing_until_resumed),
      cmocka_unit_test(test_budget_rations_reads),
      cmocka_unit_test(test_shutdown_is_the_peers_eof),
      cmocka_unit_test(test_batch_gathers_until_taken),
      cmocka_unit_test(test_tls_over_two_legs),
      cmocka_unit_test(test_quiet_tls_legs_free_their_bios),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
