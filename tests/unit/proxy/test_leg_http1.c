/* Unit test of the HTTP/1 framer (proxy/codec/http1.c) driven by legs
 * (proxy/leg.c) over two socketpairs, without a real server: a miniature
 * proxy in the shape of the session.
 *
 *   client leg C <-pair 1-> P (proxy, client side)   U (proxy, upstream side) <-pair 2-> O
 *
 * C writes two pipelined requests (the second with a chunked body) in
 * 5-byte pieces; P frames them and sends each head rebuilt with an edit
 * (px_http_head_build) and the body bytes as they came to U; O frames
 * them too and answers each; U frames the answers and passes them to P,
 * and C frames what arrives. Every framer sees whole heads and bodies
 * however the bytes were cut. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/codec/http1.h"
#include "proxy/leg.h"

static char readbuf[PX_LEG_READ_BUF];

typedef struct end {
  px_leg_t leg;
  px_http_t http; /* frames what this leg reads */
  struct end *to; /* where P and U pass what they frame (NULL: C and O) */
  const char *name;
  char seen[4][160]; /* one line per head: "GET /a host=... via=..." or "200 via=..." */
  int n_heads, n_ends;
  flt_strbuf_t body; /* de-chunked bodies of every message */
} end_t;

static void header(const flt_head_t *v, const char *name, char *out, size_t len) {
  const flt_header_t *hd = flt_head_find(v, name);
  snprintf(out, len, "%.*s", hd ? (int)hd->value_len : 1, hd ? hd->value : "-");
}

static void send_on(end_t *e, const void *data, size_t len) {
  assert_int_equal(px_leg_send(&e->leg, data, len), 0);
}

static int on_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  end_t *e = ud;
  flt_head_t v;
  char via[64], host[64];
  px_http_head_view(h, &v);
  header(&v, "via", via, sizeof(via));
  header(&v, "host", host, sizeof(host));
  if (h->type == HTTP_REQUEST)
    snprintf(e->seen[e->n_heads], sizeof(e->seen[0]), "%s %.*s host=%s via=%s", v.method,
             (int)h->url_len, h->store.data + h->url_off, host, via);
  else
    snprintf(e->seen[e->n_heads], sizeof(e->seen[0]), "%d via=%s", v.status, via);
  e->n_heads++;
  if (e->to == NULL) return 0;
  if (h->type == HTTP_REQUEST) {
    /* Upstream, as the session does: the head rebuilt with the edits. */
    px_head_edit_t edit;
    flt_strbuf_t out;
    memset(&edit, 0, sizeof(edit));
    edit.set_name[0] = "Via";
    edit.set_value[0] = "1.1 tlspeek";
    edit.n_set = 1;
    edit.strip_hop = 1;
    flt_strbuf_init(&out, PX_HTTP_MAX_HEAD + 8192);
    assert_int_equal(px_http_head_build(h, &edit, &out), 0);
    send_on(e->to, out.data, out.len);
    flt_strbuf_free(&out);
  } else {
    send_on(e->to, raw, len); /* answers go back as they came */
  }
  return 0;
}

static void on_forward(void *ud, const char *data, size_t len) {
  end_t *e = ud;
  if (e->to) send_on(e->to, data, len);
}

static void on_body(void *ud, const char *data, size_t len) {
  end_t *e = ud;
  flt_strbuf_append(&e->body, data, len);
}

static void on_end(void *ud, px_http_t *h) {
  end_t *e = ud;
  e->n_ends++;
  if (e->to == NULL && h->type == HTTP_REQUEST) {
    /* The origin answers each request at its end. */
    char resp[128];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nr%d\n",
                     e->n_ends);
    send_on(e, resp, (size_t)n);
  }
}

static const px_http_cbs_t cbs = {on_head, on_forward, on_body, on_end};

static void on_read(px_leg_t *leg, ssize_t nread, const char *data) {
  end_t *e = leg->owner;
  if (nread < 0) {
    leg->eof = 1;
    return;
  }
  assert_int_equal(px_http_feed(&e->http, data, (size_t)nread), 0);
}

static void on_written(px_leg_t *leg, int status, int shutdown) {
  (void)leg;
  (void)shutdown;
  assert_int_equal(status, 0);
}

static void on_plaintext(px_leg_t *leg, const char *data, size_t len) {
  (void)leg;
  (void)data;
  (void)len;
}

static int may_read(px_leg_t *leg) {
  return !leg->eof;
}

static const px_leg_ops_t ops = {on_read, on_written, on_plaintext, may_read, NULL};

static void end_open(end_t *e, uv_loop_t *loop, int fd, const char *name,
                     enum http_parser_type type) {
  memset(e, 0, sizeof(*e));
  e->name = name;
  px_leg_init(&e->leg, FLT_LEG_CLIENT, &ops, e, readbuf, 0);
  assert_int_equal(px_leg_open(&e->leg, loop, AF_UNSPEC), 0);
  assert_int_equal(uv_tcp_open(&e->leg.tcp, fd), 0);
  assert_int_equal(px_leg_read_start(&e->leg), 0);
  px_http_init(&e->http, type, &cbs, e);
  flt_strbuf_init(&e->body, 0);
}

static void on_closed(uv_handle_t *h) {
  px_leg_closed((px_leg_t *)h);
}

static void end_close(end_t *e) {
  px_leg_close(&e->leg, on_closed);
}

static void end_free(end_t *e) {
  px_leg_free(&e->leg);
  px_http_free(&e->http);
  flt_strbuf_free(&e->body);
}

static void run(uv_loop_t *loop) {
  for (int i = 0; i < 50; i++)
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_pipelined_requests_through_two_legs(void **state) {
  (void)state;
  uv_loop_t loop;
  int p1[2], p2[2];
  end_t c, p, u, o;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p1), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p2), 0);
  end_open(&c, &loop, p1[0], "client", HTTP_RESPONSE);
  end_open(&p, &loop, p1[1], "proxy-client", HTTP_REQUEST);
  end_open(&u, &loop, p2[0], "proxy-upstream", HTTP_RESPONSE);
  end_open(&o, &loop, p2[1], "origin", HTTP_REQUEST);
  p.to = &u;
  u.to = &p;

  static const char reqs[] =
      "GET /a HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: 1\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nbody\r\n6\r\n-more-\r\n0\r\n\r\n";
  for (size_t off = 0; off < sizeof(reqs) - 1; off += 5) {
    size_t n = sizeof(reqs) - 1 - off < 5 ? sizeof(reqs) - 1 - off : 5;
    send_on(&c, reqs + off, n);
    run(&loop);
  }
  run(&loop);

  /* The proxy framed both requests as the client sent them. */
  assert_int_equal(p.n_heads, 2);
  assert_int_equal(p.n_ends, 2);
  assert_string_equal(p.seen[0], "GET /a host=example.test via=-");
  assert_string_equal(p.seen[1], "POST /b host=example.test via=-");
  assert_string_equal(p.body.data, "body-more-");
  /* The origin got them with the edit applied and the hop-by-hop fields gone. */
  assert_int_equal(o.n_ends, 2);
  assert_string_equal(o.seen[0], "GET /a host=example.test via=1.1 tlspeek");
  assert_string_equal(o.seen[1], "POST /b host=example.test via=1.1 tlspeek");
  assert_string_equal(o.body.data, "body-more-");
  /* Both answers came back, in order, through the two response framers. */
  assert_int_equal(u.n_ends, 2);
  assert_int_equal(c.n_heads, 2);
  assert_int_equal(c.n_ends, 2);
  assert_string_equal(c.seen[0], "200 via=-");
  assert_string_equal(c.body.data, "r1\nr2\n");
  assert_int_equal(c.leg.writes + p.leg.writes + u.leg.writes + o.leg.writes, 0);

  end_t *all[4] = {&c, &p, &u, &o};
  for (int i = 0; i < 4; i++)
    end_close(all[i]);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < 4; i++)
    end_free(all[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipelined_requests_through_two_legs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
