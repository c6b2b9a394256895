/* fuzz_web_request.c — libFuzzer target for the web page server's request
 * handling without sockets: bytes fed to the request parser
 * (proxy/web/http.c) in pieces, as reads would deliver them, and each
 * complete request answered by px_web_route (proxy/web/api.c) over a flow
 * store holding two recorded flows (a resend never starts a thread: file
 * mode, or live mode without a proxy listener), flow 1 held by --intercept
 * in the registry (proxy/intercept.h) so that its routes run their JSON
 * checks and decisions. Checks:
 *   - the parser never uses more bytes than it was given;
 *   - every request gets an answer with a status and bytes to send;
 *   - nothing under /api/ but a request carrying the token gets a 200;
 *   - a Host other than this server's never gets a 200.
 * Corpus: tests/fuzz/corpus/web_request/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

#include "filters/expr/expr.h"
#include "filters/transcript/reader.h"
#include "filters/web/store.h"
#include "proxy/intercept.h"
#include "proxy/web/web_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "0123456789abcdef0123456789abcdef"

static const char flows_jsonl[] =
    "{\"id\":1,\"conn\":1,\"client\":\"127.0.0.1:5000\",\"server\":\"127.0.0.1:80\","
    "\"started\":\"2024-05-01T12:00:00.000Z\",\"url\":\"http://a.test/x?y=1\",\"method\":\"POST\","
    "\"status\":200,\"reason\":\"OK\",\"request\":{\"httpVersion\":\"HTTP/1.1\",\"headers\":"
    "[{\"name\":\"Host\",\"value\":\"a.test\"},{\"name\":\"X-Q\",\"value\":\"it's\"}],"
    "\"headersSize\":40,\"bodySize\":5,\"body\":\"hello\",\"bodyEncoding\":\"utf8\","
    "\"bodyTruncated\":false,\"decodeError\":null},\"response\":{\"httpVersion\":\"HTTP/1.1\","
    "\"headers\":[{\"name\":\"Content-Type\",\"value\":\"image/png\"}],\"headersSize\":30,"
    "\"bodySize\":3,\"body\":\"AAEC\",\"bodyEncoding\":\"base64\",\"bodyTruncated\":false,"
    "\"decodeError\":null},\"interim\":[],\"requestReceived\":null,\"responseReceived\":null,"
    "\"timings\":{\"dns\":-1,\"connect\":-1,\"ssl\":-1,\"send\":0,\"wait\":1,\"receive\":0,"
    "\"total\":1},\"tls\":null,\"error\":null,\"tags\":null}\n"
    "{\"id\":2,\"conn\":2,\"client\":\"127.0.0.1:5001\",\"server\":\"127.0.0.1:443\","
    "\"started\":\"2024-05-01T12:00:01.000Z\",\"url\":\"https://b.test/\",\"method\":\"GET\","
    "\"status\":0,\"reason\":\"\",\"request\":{\"httpVersion\":\"HTTP/1.1\",\"headers\":[],"
    "\"headersSize\":20,\"bodySize\":0,\"body\":\"\",\"bodyEncoding\":\"utf8\","
    "\"bodyTruncated\":false,\"decodeError\":null},\"response\":null,\"interim\":[],"
    "\"requestReceived\":null,\"responseReceived\":null,\"timings\":{\"dns\":-1,\"connect\":-1,"
    "\"ssl\":-1,\"send\":0,\"wait\":-1,\"receive\":-1,\"total\":0},\"tls\":null,"
    "\"error\":\"upstream closed\",\"tags\":null}\n";

static flt_web_store_t *store;

static flt_web_store_t *make_store(void) {
  char err[256];
  flt_rec_flow_t *rf;
  flt_web_store_t *s = flt_web_store_new(4, 1 << 20);
  flt_reader_t *r = flt_reader_open_mem(flows_jsonl, sizeof(flows_jsonl) - 1, "x.jsonl", err,
                                        sizeof(err));
  if (s == NULL || r == NULL) abort();
  while (flt_reader_next(r, &rf, err, sizeof(err)) == 1)
    if (flt_web_store_add_recorded(s, rf) < 0) abort();
  flt_reader_free(r);
  return s;
}

static void answer(px_web_ctx_t *ctx, const px_web_req_t *req) {
  px_web_resp_t p;
  size_t len;
  px_web_resp_init(&p);
  px_web_route(ctx, req, &p);
  if (p.status < 200 || p.status > 599) abort();
  char *bytes = px_web_resp_bytes(&p, &len);
  if (bytes == NULL || len < 12) abort();
  const char *host = px_web_req_header(req, "Host");
  char path[1024];
  px_web_req_path(req, path, sizeof(path));
  if (p.status == 200 && (host == NULL || (strcasecmp(host, "127.0.0.1:8081") != 0 &&
                                           strcasecmp(host, "localhost:8081") != 0 &&
                                           strcasecmp(host, "[::1]:8081") != 0)))
    abort();
  if (p.status == 200 && strncmp(path, "/api/", 5) == 0 && req->url.data &&
      strstr(req->url.data, TOKEN) == NULL && !px_web_req_header(req, "X-Tlspeek-Token"))
    abort();
  if (p.sse) {
    px_web_sse_pos_t pos = {0, 0, 0, 0};
    flt_strbuf_t out;
    flt_strbuf_init(&out, 0);
    px_web_sse_events(ctx, ctx->sse_filter, &pos, &out);
    flt_strbuf_free(&out);
  }
  flt_expr_free(ctx->sse_filter);
  ctx->sse_filter = NULL;
  if (ctx->resend) abort(); /* file mode: never */
  free(bytes);
  px_web_resp_free(&p);
}

/* Flow 1 waits, as a worker would publish it (the loop never runs: a
 * decision's wake-up only marks the handle). */
static px_icpt_entry_t *hold_flow_1(void) {
  static uv_loop_t loop;
  static uv_async_t wake;
  static const char head[] = "POST /x?y=1 HTTP/1.1\r\nHost: a.test\r\nX-Q: it's\r\n"
                             "Content-Length: 5\r\n\r\n";
  if (loop.data == NULL) {
    if (uv_loop_init(&loop) != 0 || uv_async_init(&loop, &wake, NULL) != 0) abort();
    loop.data = &wake;
  }
  px_icpt_entry_t *e = px_icpt_publish(1, 0, "http://a.test", 13, &wake);
  if (e == NULL) abort();
  px_icpt_set_message(e, head, sizeof(head) - 1, "hello", 5, PX_ICPT_BODY_COMPLETE);
  return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  px_web_ctx_t ctx;
  px_web_req_t req;
  if (size < 1) return 0;
  if (store == NULL) store = make_store();
  memset(&ctx, 0, sizeof(ctx));
  ctx.o.store = store;
  ctx.o.file = (data[0] & 0x80) ? NULL : "x.jsonl"; /* live: no proxy, so no resend */
  px_icpt_entry_t *held = hold_flow_1();
  ctx.o.version = "0.1.0";
  memcpy(ctx.token, TOKEN, 33);
  snprintf(ctx.bound, sizeof(ctx.bound), "127.0.0.1:8081");
  ctx.port = 8081;
  uint32_t seed = data[0];
  data++;
  size--;
  px_web_req_init(&req);
  size_t have = 0;
  while (have < size) {
    seed = seed * 1103515245u + 12345u;
    size_t piece = 1 + (seed >> 16) % 64;
    if (piece > size - have) piece = size - have;
    size_t off = 0;
    while (off < piece) {
      size_t used = px_web_req_feed(&req, (const char *)data + have + off, piece - off);
      if (used > piece - off) abort();
      off += used;
      if (!req.complete && !req.error) break;
      if (req.error) goto Done;
      answer(&ctx, &req);
      px_web_req_reset(&req);
    }
    have += piece;
  }
Done:
  px_web_req_free(&req);
  px_icpt_withdraw(held);
  return 0;
}
