/* test_reader.c — transcripts read back (filters/transcript/reader.h):
 * JSONL and HAR (tlspeek's and a browser's) into flows, field by field;
 * the format decision; and every kind of bad input, with the exact
 * message naming the line or JSON path. Reading back what the writers
 * really wrote is tests/e2e/test_show.py's business. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/transcript/reader.h"

static char err[512];

static flt_reader_t *open_text(const char *text, const char *name) {
  err[0] = '\0';
  return flt_reader_open_mem(text, strlen(text), name, err, sizeof(err));
}

static const char *hv(const flt_head_t *h, size_t i, int value) {
  assert_true(i < h->n_headers);
  return value ? h->headers[i].value : h->headers[i].name;
}

/* ---- JSONL ------------------------------------------------------------------ */

static const char jsonl_line[] =
    "{\"id\":7,\"conn\":3,\"client\":\"127.0.0.1:51234\",\"server\":\"10.0.0.1:8443\","
    "\"started\":\"2024-05-01T12:00:00.123Z\",\"url\":\"https://h.test:8443/a?b=1\","
    "\"method\":\"POST\",\"status\":201,\"reason\":\"Created\","
    "\"request\":{\"httpVersion\":\"HTTP/1.1\",\"headers\":[{\"name\":\"Host\",\"value\":"
    "\"h.test\"},{\"name\":\"X-Debug\",\"value\":\"1\"}],\"headersSize\":40,\"bodySize\":4,"
    "\"body\":\"AP/+AQ==\",\"bodyEncoding\":\"base64\",\"bodyTruncated\":false,"
    "\"decodeError\":null},"
    "\"response\":{\"httpVersion\":\"HTTP/1.1\",\"headers\":[{\"name\":\"Content-Encoding\","
    "\"value\":\"gzip\"}],\"headersSize\":50,\"bodySize\":30,\"body\":\"h\\u00e9\\n\","
    "\"bodyEncoding\":\"utf8\",\"bodyTruncated\":true,\"decodeError\":null},"
    "\"interim\":[{\"status\":100,\"reason\":\"Continue\",\"httpVersion\":\"HTTP/1.1\","
    "\"headers\":[]}],"
    "\"requestReceived\":{\"httpVersion\":\"HTTP/1.1\",\"headers\":[{\"name\":\"Host\","
    "\"value\":\"h.test\"},{\"name\":\"Cookie\",\"value\":\"a=1\"}],\"headersSize\":45},"
    "\"responseReceived\":null,"
    "\"timings\":{\"dns\":-1,\"connect\":-1,\"ssl\":-1,\"send\":0.012,\"wait\":3.1,"
    "\"receive\":0.2,\"total\":3.312},"
    "\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_128_GCM_SHA256\",\"sni\":\"h.test\","
    "\"alpn\":\"http/1.1\",\"ja3\":\"abc\",\"ja4\":\"t13d\",\"upstream\":null},"
    "\"error\":null,\"tags\":\"blocked slow\"}\n";

static void test_jsonl_fields(void **state) {
  (void)state;
  flt_rec_flow_t *rf;
  flt_reader_t *r = open_text(jsonl_line, NULL);
  assert_non_null(r);
  assert_int_equal(flt_reader_format(r), FLT_READER_JSONL);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  const flt_flow_t *f = &rf->flow;
  assert_string_equal(rf->where, "line 1");
  assert_ptr_equal(f->conn, &rf->conn);
  assert_int_equal(f->id, 7);
  assert_int_equal(rf->conn.id, 3);
  assert_string_equal(rf->conn.client, "127.0.0.1:51234");
  assert_string_equal(rf->conn.server_addr, "10.0.0.1:8443");
  assert_string_equal(rf->conn.server_host, "h.test");
  assert_int_equal(rf->conn.server_port, 8443);
  assert_string_equal(f->scheme, "https");
  assert_string_equal(f->url, "https://h.test:8443/a?b=1");
  /* The request as received, and as forwarded (an action changed it). */
  assert_string_equal(f->req.method, "POST");
  assert_string_equal(f->req.url, "/a?b=1");
  assert_int_equal(f->req.n_headers, 2);
  assert_string_equal(hv(&f->req, 1, 0), "Cookie");
  assert_non_null(f->req_sent);
  assert_string_equal(f->req_sent->method, "POST");
  assert_string_equal(hv(f->req_sent, 1, 0), "X-Debug");
  assert_null(f->resp_sent);
  assert_true(f->has_response);
  assert_int_equal(f->resp.status, 201);
  assert_string_equal(f->resp.reason, "Created");
  assert_int_equal(f->resp.http_major, 1);
  assert_int_equal(f->resp.http_minor, 1);
  assert_int_equal(f->n_interim, 1);
  assert_int_equal(f->interim[0]->status, 100);
  assert_string_equal(f->interim[0]->reason, "Continue");
  /* Bodies as recorded: base64 decoded; the wire sizes. */
  assert_int_equal(rf->body[0].len, 4);
  assert_memory_equal(rf->body[0].data, "\x00\xff\xfe\x01", 4);
  assert_int_equal(f->req_body_bytes, 4);
  assert_int_equal(rf->body[1].len, 4);
  assert_memory_equal(rf->body[1].data, "h\xc3\xa9\n", 4);
  assert_true(rf->body[1].truncated);
  assert_int_equal(f->resp_body_bytes, 30);
  assert_null(rf->body[1].decode_error);
  /* Times: exact microseconds. */
  assert_int_equal(f->t_start_us, 1714564800123000ull);
  assert_int_equal(f->t_req_end_us - f->t_start_us, 12);
  assert_int_equal(f->t_resp_head_us - f->t_req_end_us, 3100);
  assert_int_equal(f->t_end_us - f->t_start_us, 3312);
  assert_true(rf->conn.client_tls);
  assert_string_equal(rf->conn.tls_version, "TLSv1.3");
  assert_string_equal(rf->conn.sni, "h.test");
  assert_string_equal(rf->conn.ja4, "t13d");
  assert_string_equal(f->tags, "blocked slow");
  assert_null(f->error);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 0);
  flt_reader_free(r);
}

static void test_jsonl_lines_failed_flow_and_http_target(void **state) {
  (void)state;
  flt_rec_flow_t *rf;
  const char *text =
      "{\"url\":\"http://[::1]:8080/x\",\"method\":\"GET\",\"status\":0,\"request\":{},"
      "\"response\":null,\"error\":\"cannot connect\"}\n"
      "\n   \r\n"
      "{\"url\":\"http://h.test\",\"method\":\"GET\",\"request\":{\"headers\":[]}}";
  flt_reader_t *r = open_text(text, "t.jsonl");
  assert_non_null(r);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_false(rf->flow.has_response);
  assert_string_equal(rf->flow.error, "cannot connect");
  assert_string_equal(rf->conn.server_host, "::1");
  assert_int_equal(rf->conn.server_port, 8080);
  assert_string_equal(rf->conn.client, "-");
  /* http:// of a tlspeek transcript: absolute-form, as a proxy client sends */
  assert_string_equal(rf->flow.req.url, "http://[::1]:8080/x");
  assert_int_equal(rf->flow.req.http_major, 0);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_string_equal(rf->where, "line 4");
  assert_int_equal(rf->conn.server_port, 80);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 0);
  flt_reader_free(r);
}

/* ---- HAR ---------------------------------------------------------------------- */

/* A browser's HAR: pretty-printed, HTTP/2, a binary body in base64, sizes
 * unknown (-1), a failed request (status 0, response._error). */
static const char browser_har[] =
    "\xef\xbb\xbf{\n"
    "  \"log\": {\n"
    "    \"version\": \"1.2\",\n"
    "    \"creator\": {\"name\": \"WebInspector\", \"version\": \"537.36\"},\n"
    "    \"entries\": [\n"
    "      {\"startedDateTime\": \"2024-05-01T14:00:00.500+02:00\", \"time\": 5,\n"
    "       \"request\": {\"method\": \"GET\", \"url\": \"https://www.example.test/img.png\",\n"
    "         \"httpVersion\": \"h2\", \"headers\": [{\"name\": \":authority\", \"value\":\n"
    "         \"www.example.test\"}], \"queryString\": [], \"cookies\": [],\n"
    "         \"headersSize\": -1, \"bodySize\": 0},\n"
    "       \"response\": {\"status\": 200, \"statusText\": \"\", \"httpVersion\": \"h2\",\n"
    "         \"headers\": [{\"name\": \"content-type\", \"value\": \"image/png\"}],\n"
    "         \"content\": {\"size\": 3, \"mimeType\": \"image/png\", \"text\": \"iVBO\",\n"
    "         \"encoding\": \"base64\"}, \"redirectURL\": \"\", \"headersSize\": -1,\n"
    "         \"bodySize\": -1},\n"
    "       \"cache\": {}, \"timings\": {\"blocked\": 1, \"dns\": -1, \"send\": 0.5,\n"
    "         \"wait\": 4, \"receive\": 0.5}, \"serverIPAddress\": \"2001:db8::1\"},\n"
    "      {\"startedDateTime\": \"2024-05-01T12:00:01Z\", \"time\": 0,\n"
    "       \"request\": {\"method\": \"GET\", \"url\": \"http://blocked.test/\"},\n"
    "       \"response\": {\"status\": 0, \"statusText\": \"\", \"_error\":\n"
    "         \"net::ERR_BLOCKED_BY_CLIENT\"}}\n"
    "    ]\n"
    "  }\n"
    "}\n";

static void test_har_from_a_browser(void **state) {
  (void)state;
  flt_rec_flow_t *rf;
  flt_reader_t *r = open_text(browser_har, "x.json");
  assert_non_null(r);
  assert_int_equal(flt_reader_format(r), FLT_READER_HAR);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_string_equal(rf->where, "log.entries[0]");
  assert_string_equal(rf->conn.client, "-"); /* not in a HAR */
  assert_string_equal(rf->conn.server_addr, "[2001:db8::1]:443");
  assert_int_equal(rf->flow.req.http_major, 2);
  assert_string_equal(rf->flow.req.url, "/img.png");
  assert_string_equal(hv(&rf->flow.req, 0, 0), ":authority");
  assert_true(rf->flow.has_response);
  assert_int_equal(rf->body[1].len, 3);
  assert_memory_equal(rf->body[1].data, "\x89PN", 3);
  assert_int_equal(rf->flow.resp_body_bytes, 3); /* -1: the recorded length */
  assert_int_equal(rf->flow.t_start_us, 1714564800500000ull);
  assert_int_equal(rf->flow.t_end_us - rf->flow.t_start_us, 5000);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_false(rf->flow.has_response);
  assert_string_equal(rf->flow.error, "net::ERR_BLOCKED_BY_CLIENT");
  /* not tlspeek's: an http:// target is origin-form */
  assert_string_equal(rf->flow.req.url, "/");
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 0);
  flt_reader_free(r);
}

static void test_har_of_tlspeek_on_one_line(void **state) {
  (void)state;
  flt_rec_flow_t *rf;
  const char *har =
      "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"tlspeek\",\"version\":\"1\"},"
      "\"entries\":[{\"request\":{\"method\":\"GET\",\"url\":\"http://h.test:81/p\",\"postData\":"
      "{\"mimeType\":\"\",\"text\":\"q\",\"_decodeError\":\"gzip: incorrect header check\"},"
      "\"bodySize\":1,\"_bodyTruncated\":true},\"response\":{\"status\":204,\"statusText\":"
      "\"No Content\",\"_interimResponses\":[{\"status\":103,\"reason\":\"Early Hints\"}]},"
      "\"_tls\":{\"version\":\"TLSv1.2\",\"upstream\":{\"version\":\"TLSv1.3\",\"verify\":"
      "\"ok\"}},\"_error\":null,\"_tags\":\"t\"}]}}\n";
  flt_reader_t *r = open_text(har, NULL);
  assert_non_null(r);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_string_equal(rf->flow.req.url, "http://h.test:81/p");
  assert_string_equal(rf->body[0].decode_error, "gzip: incorrect header check");
  assert_true(rf->body[0].truncated);
  assert_int_equal(rf->flow.n_interim, 1);
  assert_string_equal(rf->flow.interim[0]->reason, "Early Hints");
  assert_string_equal(rf->conn.up_verify, "ok");
  assert_string_equal(rf->flow.tags, "t");
  assert_null(rf->flow.error);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 0);
  flt_reader_free(r);
}

/* WebSocket messages: HAR's _webSocketMessages (Chrome's fields) and
 * JSONL's websocket, a close's code put back in front of its reason. */
static void test_websocket_messages(void **state) {
  (void)state;
  flt_rec_flow_t *rf;
  const char *har =
      "{\"log\":{\"entries\":[{\"request\":{\"method\":\"GET\",\"url\":\"https://h/ws\"},"
      "\"response\":{\"status\":101},\"_webSocketMessages\":["
      "{\"type\":\"send\",\"time\":1.5,\"opcode\":1,\"data\":\"hi\"},"
      "{\"type\":\"receive\",\"time\":1.6,\"opcode\":2,\"data\":\"AAH/\"},"
      "{\"type\":\"send\",\"time\":1.7,\"opcode\":8,\"_closeCode\":1000,\"data\":\"bye\"}]}]}}";
  flt_reader_t *r = open_text(har, NULL);
  assert_non_null(r);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_int_equal(rf->n_ws, 3);
  assert_int_equal(rf->ws[0].dir, FLT_DIR_REQUEST);
  assert_int_equal(rf->ws[0].opcode, 1);
  assert_memory_equal(rf->ws[0].data, "hi", 2);
  assert_int_equal(rf->ws[1].dir, FLT_DIR_RESPONSE);
  assert_int_equal(rf->ws[1].len, 3);
  assert_memory_equal(rf->ws[1].data, "\x00\x01\xff", 3);
  assert_int_equal(rf->ws[2].len, 5);
  assert_memory_equal(rf->ws[2].data, "\x03\xe8" "bye", 5);
  flt_reader_free(r);
  const char *jsonl =
      "{\"url\":\"https://h/ws\",\"method\":\"GET\",\"status\":101,\"request\":{},\"websocket\":["
      "{\"type\":\"receive\",\"time\":1.5,\"opcode\":1,\"data\":\"AA==\",\"encoding\":\"base64\"},"
      "{\"type\":\"receive\",\"time\":1.6,\"opcode\":8,\"data\":\"\",\"encoding\":\"utf8\","
      "\"closeCode\":4001,\"closeReason\":\"\"}]}\n";
  r = open_text(jsonl, "t.jsonl");
  assert_non_null(r);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_int_equal(rf->n_ws, 2);
  assert_int_equal(rf->ws[0].len, 1);
  assert_int_equal(rf->ws[0].data[0], 0);
  assert_int_equal(rf->ws[1].len, 2);
  assert_memory_equal(rf->ws[1].data, "\x0f\xa1", 2);
  flt_reader_free(r);
  const char *bad = "{\"url\":\"https://h/ws\",\"method\":\"GET\",\"request\":{},\"websocket\":["
                    "{\"type\":\"sideways\",\"opcode\":1}]}\n";
  r = open_text(bad, "t.jsonl");
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), -1);
  assert_string_equal(err, "line 1: websocket[0].type: expected \"send\" or \"receive\"");
  flt_reader_free(r);
}

/* ---- bad input ---------------------------------------------------------------- */

typedef struct bad_case {
  const char *text;
  const char *name;
  int flows_before; /* flows read before the error */
  const char *message;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"", NULL, 0, "empty: not a HAR or JSONL transcript"},
    {"\n \n", NULL, 0, "empty: not a HAR or JSONL transcript"},
    {"[1,2]", NULL, 0,
     "line 1 starts with '[': not a HAR or JSONL transcript (both are JSON objects)"},
    {"\x01\x02", NULL, 0,
     "line 1 starts with byte 0x01: not a HAR or JSONL transcript (both are JSON objects)"},
    {"{\"a\":1}", NULL, 0,
     "line 1: not a HAR or JSONL transcript: a JSON object without \"log\" (HAR) or "
     "\"url\" (JSONL)"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{}}\n{\"url\":", NULL, 1,
     "line 2, column 8: malformed JSON (it ends too early)"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{}}\n{\"url\":1}", NULL, 1,
     "line 2: url: expected a string"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{}}\n{\"url\":\"x\",\"method\":\"GET\","
     "\"request\":{}}\0",
     NULL, 1, "line 2, column 40: a NUL byte: not JSON text"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\"}", NULL, 0, "line 1: request: missing"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{},\"status\":1000}", NULL, 0,
     "line 1: status: expected an integer from 0 to 999"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{},\"status\":2.5}", NULL, 0,
     "line 1: status: expected an integer from 0 to 999"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{\"headers\":[{\"name\":\"A\"}]}}",
     NULL, 0, "line 1: request.headers[0].value: missing"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{\"headers\":[7]}}", NULL, 0,
     "line 1: request.headers[0]: expected an object"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{\"body\":\"a*\",\"bodyEncoding\":"
     "\"base64\"}}",
     NULL, 0, "line 1: request.body: invalid base64"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{\"bodyEncoding\":\"hex\"}}", NULL, 0,
     "line 1: request.bodyEncoding: expected \"utf8\" or \"base64\""},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{},\"interim\":[{\"status\":100,"
     "\"headers\":{}}]}",
     NULL, 0, "line 1: interim[0].headers: expected an array"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{},\"timings\":{\"wait\":\"3\"}}", NULL,
     0, "line 1: timings.wait: expected a number"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{},\"tls\":{\"upstream\":{\"alpn\":"
     "false}}}",
     NULL, 0, "line 1: tls.upstream.alpn: expected a string"},
    {"{\"url\":\"http://a/\",\"method\":\"GET\",\"request\":{\"bodyTruncated\":1}}", NULL, 0,
     "line 1: request.bodyTruncated: expected true or false"},
    {"{\n\"log\": 5}", NULL, 0, "log: expected an object"},
    {"{\"log\":{}}", NULL, 0, "log.entries: missing"},
    {"{\"log\":{\"entries\":[{\"request\":{\"method\":\"GET\",\"url\":\"http://a/\"},"
     "\"response\":{\"status\":200}},{\"request\":{\"method\":\"GET\",\"url\":\"http://a/\"},"
     "\"response\":{\"status\":\"200\"}}]}}",
     NULL, 1, "log.entries[1].response.status: expected a number"},
    {"{\"log\":{\"entries\":[1]}}", NULL, 0, "log.entries[0]: expected an object (one entry)"},
    {"{\"log\":{\"entries\":[{\"request\":{\"method\":\"GET\",\"url\":\"http://a/\",\"postData\":"
     "{\"text\":\"%%\",\"encoding\":\"base64\"}},\"response\":{\"status\":200}}]}}",
     NULL, 0, "log.entries[0].request.postData.text: invalid base64"},
    {"{\n  \"log\": {\n    \"entries\": [\n  }", NULL, 0, "line 4, column 3: malformed JSON"},
    {"{ \"id\": ", "a.jsonl", 0, "line 1, column 9: malformed JSON (it ends too early)"},
};

static void test_bad_input(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    const bad_case_t *c = &bad_cases[i];
    size_t len = strlen(c->text);
    if (strstr(c->message, "NUL byte")) len++; /* the NUL itself */
    flt_rec_flow_t *rf;
    err[0] = '\0';
    flt_reader_t *r = flt_reader_open_mem(c->text, len, c->name, err, sizeof(err));
    int rc = 1, n = 0;
    while (r && (rc = flt_reader_next(r, &rf, err, sizeof(err))) == 1)
      n++;
    if (strcmp(err, c->message) != 0 || n != c->flows_before)
      fail_msg("case %zu: got \"%s\" after %d flows, want \"%s\" after %d", i, err, n, c->message,
               c->flows_before);
    if (r) {
      assert_int_equal(rc, -1);
      assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), -1); /* stays failed */
      assert_null(rf);
    }
    flt_reader_free(r);
  }
}

static void test_open_by_path(void **state) {
  (void)state;
  char path[] = "/tmp/tlspeek-reader-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, jsonl_line, strlen(jsonl_line)), (ssize_t)strlen(jsonl_line));
  close(fd);
  flt_rec_flow_t *rf;
  flt_reader_t *r = flt_reader_open(path, err, sizeof(err));
  assert_non_null(r);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 1);
  assert_int_equal(flt_reader_next(r, &rf, err, sizeof(err)), 0);
  flt_reader_free(r);
  unlink(path);
  assert_null(flt_reader_open(path, err, sizeof(err)));
  assert_string_equal(err, "cannot open it: No such file or directory");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jsonl_fields),
      cmocka_unit_test(test_jsonl_lines_failed_flow_and_http_target),
      cmocka_unit_test(test_har_from_a_browser),
      cmocka_unit_test(test_har_of_tlspeek_on_one_line),
      cmocka_unit_test(test_websocket_messages),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_open_by_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
