/* Unit tests of the codec interface (proxy/codec/codec.h): the http1 codec
 * (http1_codec.c) fed by a leg (proxy/leg.c) over a socketpair, without a
 * server, and the raw codec (raw.c). A recording sink stands in for the
 * session: every event with its stream id, in order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/codec/codec.h"
#include "proxy/leg.h"

static char readbuf[PX_LEG_READ_BUF];

typedef struct rec {
  flt_strbuf_t log;     /* "head GET /a up=0 s=0|body 4|end s=0|..." */
  flt_strbuf_t forward; /* bytes to pass on */
  flt_strbuf_t body;    /* de-chunked body bytes */
  int hold_next;        /* on_head answers PX_CODEC_HOLD once */
  int refuse;           /* on_head refuses */
  int heads, ends, errors, upgrades;
} rec_t;

static int rec_head(void *owner, px_codec_t *c, const px_codec_head_t *h) {
  rec_t *r = owner;
  flt_head_t view;
  px_codec_head_view(c, h->stream, &view);
  if (h->request)
    flt_strbuf_appendf(&r->log, "head %s %.*s up=%d s=%u|", view.method, (int)h->target_len,
                       h->target, h->upgrade, h->stream);
  else
    flt_strbuf_appendf(&r->log, "head %d s=%u|", h->status, h->stream);
  if (r->refuse) {
    px_codec_refuse(c, h->stream, "refused by the test");
    return -1;
  }
  if (r->hold_next) {
    r->hold_next = 0;
    return PX_CODEC_HOLD;
  }
  r->heads++;
  flt_strbuf_append(&r->forward, h->raw, h->raw_len);
  return 0;
}

static void rec_body(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  rec_t *r = owner;
  (void)c, (void)stream;
  flt_strbuf_append(&r->body, d, n);
}

static void rec_forward(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  rec_t *r = owner;
  (void)c;
  assert_int_equal(stream, PX_CODEC_STREAM0);
  flt_strbuf_append(&r->forward, d, n);
}

static void rec_end(void *owner, px_codec_t *c, uint32_t stream) {
  rec_t *r = owner;
  (void)c;
  r->ends++;
  flt_strbuf_appendf(&r->log, "end s=%u|", stream);
}

static void rec_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  rec_t *r = owner;
  (void)c;
  r->errors++;
  flt_strbuf_appendf(&r->log, "error s=%u %s|", stream, why);
}

static void rec_upgrade(void *owner, px_codec_t *c, uint32_t stream) {
  rec_t *r = owner;
  (void)c;
  r->upgrades++;
  flt_strbuf_appendf(&r->log, "upgrade s=%u|", stream);
}

static const px_codec_sink_t sink = {rec_head, rec_body, rec_forward, rec_end, rec_error,
                                     rec_upgrade};

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof(*r));
  flt_strbuf_init(&r->log, 0);
  flt_strbuf_init(&r->forward, 0);
  flt_strbuf_init(&r->body, 0);
}

static void rec_free(rec_t *r) {
  flt_strbuf_free(&r->log);
  flt_strbuf_free(&r->forward);
  flt_strbuf_free(&r->body);
}

/* ---- a leg over a socketpair feeding a codec --------------------------------- */

typedef struct end {
  px_leg_t leg;
  rec_t rec;
  int eof_rc;
} end_t;

static void on_read(px_leg_t *leg, ssize_t nread, const char *data) {
  end_t *e = leg->owner;
  if (nread < 0) {
    leg->eof = 1;
    if (leg->codec) e->eof_rc = px_codec_eof(leg->codec);
    return;
  }
  if (leg->codec) px_codec_input(leg->codec, data, (size_t)nread);
}

static void on_written(px_leg_t *leg, int status, int shutdown) {
  (void)leg, (void)shutdown;
  assert_int_equal(status, 0);
}

static void on_plaintext(px_leg_t *leg, const char *data, size_t len) {
  (void)leg, (void)data, (void)len;
}

static int may_read(px_leg_t *leg) { return !leg->eof; }

static const px_leg_ops_t ops = {on_read, on_written, on_plaintext, may_read, NULL};

static void end_open(end_t *e, uv_loop_t *loop, int fd, px_codec_t *(*make)(end_t *)) {
  memset(e, 0, sizeof(*e));
  rec_init(&e->rec);
  px_leg_init(&e->leg, FLT_LEG_CLIENT, &ops, e, readbuf, 0);
  assert_int_equal(px_leg_open(&e->leg, loop, AF_UNSPEC), 0);
  assert_int_equal(uv_tcp_open(&e->leg.tcp, fd), 0);
  assert_int_equal(px_leg_read_start(&e->leg), 0);
  e->leg.codec = make ? make(e) : NULL;
}

static px_codec_t *make_request(end_t *e) { return px_codec_http1_new(1, &sink, &e->rec); }
static px_codec_t *make_response(end_t *e) { return px_codec_http1_new(0, &sink, &e->rec); }
static px_codec_t *make_raw(end_t *e) { return px_codec_raw_new(&sink, &e->rec); }

static void on_closed(uv_handle_t *h) { px_leg_closed((px_leg_t *)h); }

static void end_free(end_t *e) {
  px_codec_free(e->leg.codec);
  px_leg_free(&e->leg);
  rec_free(&e->rec);
}

static void run(uv_loop_t *loop) {
  for (int i = 0; i < 50; i++) uv_run(loop, UV_RUN_NOWAIT);
}

/* Sends `data` from `from` in pieces of `step` bytes, running the loop. */
static void send_pieces(uv_loop_t *loop, end_t *from, const char *data, size_t step) {
  size_t len = strlen(data);
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    assert_int_equal(px_leg_send(&from->leg, data + off, n), 0);
    run(loop);
  }
}

typedef struct pair {
  uv_loop_t loop;
  end_t a, b; /* a writes, b's codec reads */
} pair_t;

static void pair_open(pair_t *p, px_codec_t *(*make)(end_t *)) {
  int fds[2];
  assert_int_equal(uv_loop_init(&p->loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  end_open(&p->a, &p->loop, fds[0], NULL);
  end_open(&p->b, &p->loop, fds[1], make);
}

static void pair_close(pair_t *p) {
  px_leg_close(&p->a.leg, on_closed);
  px_leg_close(&p->b.leg, on_closed);
  run(&p->loop);
  assert_int_equal(uv_loop_close(&p->loop), 0);
  end_free(&p->a);
  end_free(&p->b);
}

static void test_http1_codec_frames_requests_from_a_leg(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p, make_request);
  px_codec_t *c = p.b.leg.codec;
  assert_string_equal(c->ops->name, "http1");
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  send_pieces(&p.loop, &p.a, "GET /a HTTP/1.1\r\nHost: x\r\n", 3);
  assert_int_equal(px_codec_phase(c), PX_CODEC_HEAD); /* a head has begun */
  send_pieces(&p.loop, &p.a,
              "\r\nPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "4\r\nbody\r\n",
              5);
  assert_int_equal(px_codec_phase(c), PX_CODEC_BODY);
  send_pieces(&p.loop, &p.a, "0\r\n\r\n", 2);
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  assert_string_equal(p.b.rec.log.data,
                      "head GET /a up=0 s=0|end s=0|head POST /b up=0 s=0|end s=0|");
  assert_string_equal(p.b.rec.body.data, "body");
  /* The heads as received and the body as framed on the wire. */
  assert_string_equal(p.b.rec.forward.data,
                      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nbody\r\n0\r\n\r\n");
  /* A rebuilt head, as a session sends it on with edits. */
  flt_strbuf_t out;
  px_head_edit_t edit;
  memset(&edit, 0, sizeof(edit));
  edit.remove[edit.n_remove++] = "Transfer-Encoding";
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_codec_head_build(c, 0, &edit, &out), 0);
  assert_string_equal(out.data, "POST /b HTTP/1.1\r\nHost: x\r\n\r\n");
  flt_strbuf_free(&out);
  flt_head_t *copy = px_codec_head_copy(c, 0);
  assert_non_null(copy);
  assert_string_equal(copy->method, "POST");
  free(copy);
  px_codec_trim(c); /* idle: gives back its whole framer state */
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  assert_int_equal(px_codec_eof(c), 0); /* nothing was cut short */
  px_codec_trim(c);
  /* The next request makes the state again, split as it comes. */
  send_pieces(&p.loop, &p.a, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n", 3);
  assert_int_equal(p.b.rec.heads, 3);
  assert_non_null(strstr(p.b.rec.log.data, "head GET /c up=0 s=0|end s=0|"));
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  px_codec_reset(c); /* a released upstream's codec: fresh, asleep */
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  assert_int_equal(p.b.rec.errors, 0);
  pair_close(&p);
}

static void test_http1_codec_hold_release_and_upgrade(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p, make_request);
  px_codec_t *c = p.b.leg.codec;
  p.b.rec.hold_next = 1;
  send_pieces(&p.loop, &p.a, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n", 64);
  assert_int_equal(px_codec_phase(c), PX_CODEC_HELD);
  assert_int_equal(p.b.rec.heads, 0);
  assert_int_equal(px_codec_release(c), 0); /* on_head sees the same head again */
  assert_int_equal(p.b.rec.heads, 1);
  assert_int_equal(px_codec_phase(c), PX_CODEC_IDLE);
  /* An upgrade request: what follows waits for the verdict. */
  send_pieces(&p.loop, &p.a,
              "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
              "\x81\x02hi",
              64);
  assert_int_equal(px_codec_phase(c), PX_CODEC_VERDICT);
  size_t before = p.b.rec.forward.len;
  px_codec_set_raw(c); /* switched: the kept bytes come out, then everything */
  assert_int_equal(px_codec_phase(c), PX_CODEC_RAW);
  assert_true(px_codec_relaying(c));
  assert_int_equal(p.b.rec.upgrades, 1);
  send_pieces(&p.loop, &p.a, "more", 64);
  assert_string_equal(p.b.rec.forward.data + before, "\x81\x02himore");
  assert_string_equal(p.b.rec.log.data,
                      "head GET /held up=0 s=0|head GET /held up=0 s=0|end s=0|"
                      "head GET /ws up=1 s=0|end s=0|upgrade s=0|");
  pair_close(&p);
}

static void test_http1_codec_errors_reach_the_sink(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p, make_request);
  px_codec_t *c = p.b.leg.codec;
  send_pieces(&p.loop, &p.a,
              "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 64);
  assert_int_equal(p.b.rec.errors, 1);
  assert_int_equal(px_codec_phase(c), PX_CODEC_FAILED);
  assert_non_null(strstr(p.b.rec.log.data, "error s=0 "));
  assert_string_not_equal(px_codec_error(c), "");
  pair_close(&p);

  /* A head the owner refuses: the sink's reason is the error. */
  pair_open(&p, make_response);
  p.b.rec.refuse = 1;
  send_pieces(&p.loop, &p.a, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 64);
  assert_string_equal(p.b.rec.log.data, "head 200 s=0|error s=0 refused by the test|");
  assert_string_equal(px_codec_error(p.b.leg.codec), "refused by the test");
  pair_close(&p);
}

static void test_http1_codec_eof_completes_or_cuts(void **state) {
  (void)state;
  pair_t p;
  /* A response without length ends at the peer's close. */
  pair_open(&p, make_response);
  send_pieces(&p.loop, &p.a, "HTTP/1.1 200 OK\r\n\r\nuntil close", 64);
  assert_int_equal(p.b.rec.ends, 0);
  assert_int_equal(px_leg_shutdown(&p.a.leg, 0), 0);
  run(&p.loop);
  assert_true(p.b.leg.eof);
  assert_int_equal(p.b.eof_rc, 0);
  assert_int_equal(p.b.rec.ends, 1);
  assert_string_equal(p.b.rec.body.data, "until close");
  pair_close(&p);
  /* A head cut short by the close: -1, and the error says so. */
  pair_open(&p, make_response);
  send_pieces(&p.loop, &p.a, "HTTP/1.1 200 OK\r\nContent-", 64);
  assert_int_equal(px_leg_shutdown(&p.a.leg, 0), 0);
  run(&p.loop);
  assert_int_equal(p.b.eof_rc, -1);
  assert_non_null(strstr(px_codec_error(p.b.leg.codec), "connection closed in the middle of a"));
  /* reset: a fresh codec for a new connection. */
  px_codec_reset(p.b.leg.codec);
  assert_int_equal(px_codec_phase(p.b.leg.codec), PX_CODEC_IDLE);
  assert_string_equal(px_codec_error(p.b.leg.codec), "");
  pair_close(&p);
}

static void test_raw_codec_forwards_everything(void **state) {
  (void)state;
  pair_t p;
  pair_open(&p, make_raw);
  px_codec_t *c = p.b.leg.codec;
  assert_string_equal(c->ops->name, "raw");
  assert_int_equal(px_codec_phase(c), PX_CODEC_RAW);
  assert_true(px_codec_relaying(c));
  send_pieces(&p.loop, &p.a, "SSH-2.0-OpenSSH\r\nGET / HTTP/1.1\r\n\r\n", 7);
  assert_string_equal(p.b.rec.forward.data, "SSH-2.0-OpenSSH\r\nGET / HTTP/1.1\r\n\r\n");
  assert_int_equal(p.b.rec.heads + p.b.rec.ends + p.b.rec.errors, 0);
  assert_int_equal(px_codec_release(c), 0);
  assert_int_equal(px_codec_resume(c), 0);
  assert_int_equal(px_leg_shutdown(&p.a.leg, 0), 0);
  run(&p.loop);
  assert_int_equal(p.b.eof_rc, 0);
  flt_strbuf_t out;
  flt_strbuf_init(&out, 0);
  assert_int_equal(px_codec_head_build(c, 0, NULL, &out), -1); /* no heads here */
  assert_null(px_codec_head_copy(c, 0));
  assert_string_equal(px_codec_error(c), "");
  pair_close(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_http1_codec_frames_requests_from_a_leg),
      cmocka_unit_test(test_http1_codec_hold_release_and_upgrade),
      cmocka_unit_test(test_http1_codec_errors_reach_the_sink),
      cmocka_unit_test(test_http1_codec_eof_completes_or_cuts),
      cmocka_unit_test(test_raw_codec_forwards_everything),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
