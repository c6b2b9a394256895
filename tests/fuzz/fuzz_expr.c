/* fuzz_expr.c — libFuzzer target for the match-expression compiler and
 * evaluator (filters/expr/expr*.c). Each input is compiled as an expression with
 * both term sets; what compiles is evaluated against a fixed flow (with a
 * binary response body) and its connection. Errors must keep their shape.
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_expr.c filters/expr/expr*.c filters/chain.c -lpcre2-8 -o fuzz_expr
 *   ./fuzz_expr -max_len=512 tests/fuzz/corpus/expr
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR(n, v) \
  { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }

static const flt_header_t req_headers[] = {
    HDR("Host", "www.example.com:8443"),
    HDR("User-Agent", "fuzz/1.0"),
    HDR("Upgrade", "websocket"),
    HDR("Content-Type", "application/json"),
};

static const flt_header_t resp_headers[] = {
    HDR("Content-Type", "image/png"), HDR("X-Bytes", "\xff\xfe\xc3"), /* not UTF-8 */
};

static const uint8_t resp_body[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0x00, 0xff, 0xc3};

static flt_conn_t conn;
static flt_flow_t flow;
static char url[] = "https://user@www.example.com:8443/a/b.png?q=\xe2\x82\xac";

static void init_flow(void) {
  strcpy(conn.client, "[::1]:50000");
  strcpy(conn.server_host, "www.example.com");
  strcpy(conn.server_addr, "93.184.216.34:8443");
  conn.kind = FLT_CONN_HTTPS;
  conn.client_tls = 1;
  strcpy(conn.sni, "www.example.com");
  strcpy(conn.tls_version, "TLSv1.2");
  strcpy(conn.alpn, "h2");
  strcpy(conn.ja3, "e7d705a3286e19ea42f587b344ee6865");
  strcpy(conn.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");

  flow.conn = &conn;
  strcpy(flow.scheme, "https");
  flow.url = url;
  flow.req.method = "POST";
  flow.req.url = "/a/b.png";
  flow.req.headers = req_headers;
  flow.req.n_headers = sizeof(req_headers) / sizeof(req_headers[0]);
  flow.resp.status = 101;
  flow.resp.headers = resp_headers;
  flow.resp.n_headers = sizeof(resp_headers) / sizeof(resp_headers[0]);
  flow.has_response = 1;
}

/* A compile error is "column N: ...\n  <text>\n  <N-1 spaces>^", or one of
 * the few messages that have no column. Anything else is a bug. */
static void check_error(const char *err) {
  const char *caret;
  unsigned long col;

  if (strncmp(err, "expression is too long", 22) == 0) return;
  if (sscanf(err, "column %lu:", &col) != 1 || col == 0) abort();
  caret = strrchr(err, '\n');
  if (caret == NULL || strlen(caret) != 1 + 2 + (col - 1) + 1 || caret[strlen(caret) - 1] != '^')
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  /* The error echoes the whole expression; size the buffer for it so the
   * shape check above sees untruncated messages. */
  static char err[4 * FLT_EXPR_MAX_LEN];
  flt_expr_bodies_t bodies = {data, size, resp_body, sizeof(resp_body)};
  char *text;

  if (!ready) {
    init_flow();
    ready = 1;
  }
  if (size > FLT_EXPR_MAX_LEN + 1) return 0;
  text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';

  for (int allowed = FLT_EXPR_ALL_TERMS; allowed <= FLT_EXPR_HOST_TERMS; allowed++) {
    flt_expr_t *e = flt_expr_compile(text, allowed, err, sizeof(err));
    if (e == NULL) {
      check_error(err);
      continue;
    }
    int hit = flt_expr_match_flow(e, &flow, &bodies);
    if (hit != flt_expr_match_flow(e, &flow, &bodies)) abort(); /* deterministic */
    (void)flt_expr_match_flow(e, &flow, NULL);
    (void)flt_expr_match_conn(e, &conn);
    (void)flt_expr_needs_body(e);
    flt_expr_free(e);
  }
  free(text);
  return 0;
}
