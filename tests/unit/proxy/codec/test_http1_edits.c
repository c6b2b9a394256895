/* test_http1_edits.c — px_head_edited (proxy/codec/http1.h): the head the
 * views show for --set-header / --remove-header must be the head that
 * px_http_head_build sends, field for field, and its size the size sent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/http1.h"

flt_head_t *px_http_copy_head(px_http_t *h);

typedef struct built {
  px_head_edit_t edit;
  flt_strbuf_t sent;  /* px_http_head_build's bytes */
  flt_head_t *edited; /* px_head_edited of the parsed head */
} built_t;

static int on_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  built_t *b = ud;
  (void)raw;
  (void)len;
  flt_head_t *copy = px_http_copy_head(h);
  assert_non_null(copy);
  assert_int_equal(px_http_head_build(h, &b->edit, &b->sent), 0);
  b->edited = px_head_edited(copy, &b->edit);
  assert_non_null(b->edited);
  free(copy);
  return 0;
}
static void on_forward(void *ud, const char *d, size_t n) {
  (void)ud, (void)d, (void)n;
}
static void on_body(void *ud, const char *d, size_t n) {
  (void)ud, (void)d, (void)n;
}
static void on_end(void *ud, px_http_t *h) {
  (void)ud, (void)h;
}
static const px_http_cbs_t cbs = {on_head, on_forward, on_body, on_end};

/* The edited head serialised as HTTP/1.1, as the proxy would send it. */
static char *serialise(const flt_head_t *h) {
  flt_strbuf_t b;
  flt_strbuf_init(&b, 0);
  if (h->method && h->method[0])
    flt_strbuf_appendf(&b, "%s %s HTTP/%d.%d\r\n", h->method, h->url, h->http_major, h->http_minor);
  else
    flt_strbuf_appendf(&b, "HTTP/%d.%d %d %s\r\n", h->http_major, h->http_minor, h->status,
                       h->reason);
  for (size_t i = 0; i < h->n_headers; i++)
    flt_strbuf_appendf(&b, "%.*s: %.*s\r\n", (int)h->headers[i].name_len, h->headers[i].name,
                       (int)h->headers[i].value_len, h->headers[i].value);
  flt_strbuf_append(&b, "\r\n", 2);
  return b.data;
}

static void check(enum http_parser_type type, const char *in, built_t *b, const char *want) {
  px_http_t h;
  flt_strbuf_init(&b->sent, PX_HTTP_MAX_HEAD);
  px_http_init(&h, type, &cbs, b);
  assert_int_equal(px_http_feed(&h, in, strlen(in)), 0);
  assert_non_null(b->edited);
  char *view = serialise(b->edited);
  assert_string_equal(b->sent.data, want);
  assert_string_equal(view, want);
  assert_int_equal(b->edited->head_bytes, strlen(want));
  assert_int_equal(px_head_wire_size(b->edited), strlen(want));
  free(view);
  free(b->edited);
  flt_strbuf_free(&b->sent);
  px_http_free(&h);
}

static void test_request_remove_and_set(void **state) {
  built_t b;
  (void)state;
  memset(&b, 0, sizeof(b));
  b.edit.remove[b.edit.n_remove++] = "cookie";
  b.edit.set_name[b.edit.n_set] = "X-Debug";
  b.edit.set_value[b.edit.n_set++] = "1";
  b.edit.set_name[b.edit.n_set] = "X-New";
  b.edit.set_value[b.edit.n_set++] = "n";
  check(HTTP_REQUEST,
        "PUT /up HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\nx-debug: 0\r\nCOOKIE: y\r\n"
        "X-Debug: 2\r\nContent-Length: 0\r\n\r\n",
        &b, "PUT /up HTTP/1.1\r\nHost: a\r\nx-debug: 1\r\nContent-Length: 0\r\nX-New: n\r\n\r\n");
}

/* Removing and setting one name: the old fields go, the new one comes last. */
static void test_response_remove_then_set_same_name(void **state) {
  built_t b;
  (void)state;
  memset(&b, 0, sizeof(b));
  b.edit.remove[b.edit.n_remove++] = "Server";
  b.edit.set_name[b.edit.n_set] = "Server";
  b.edit.set_value[b.edit.n_set++] = "tlspeek";
  check(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n", &b,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: tlspeek\r\n\r\n");
}

static void test_no_edits_is_a_copy(void **state) {
  built_t b;
  (void)state;
  memset(&b, 0, sizeof(b));
  check(HTTP_RESPONSE, "HTTP/1.1 100 Continue\r\n\r\n", &b, "HTTP/1.1 100 Continue\r\n\r\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_remove_and_set),
      cmocka_unit_test(test_response_remove_then_set_same_name),
      cmocka_unit_test(test_no_edits_is_a_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
