/* test_transcript_edits.c — what HAR and JSON lines record of heads that an
 * action changed (as forwarded; JSONL also as received), of interim (1xx)
 * responses, and what opening a transcript says about a re-used file
 * (filters/transcript/transcript.h, jsonl.c, har.c, trfile.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters/transcript/transcript.h"
#include "tests/unit/filters/transcript/fixtures/transcriptfixtures.h"

#define HDR(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static const flt_header_t req_got[] = {HDR("Host", "example.test"), HDR("Cookie", "s=1")};
static const flt_header_t req_sent[] = {HDR("Host", "example.test"), HDR("X-Debug", "1")};
static const flt_header_t resp_got[] = {HDR("Server", "x"), HDR("Content-Length", "0")};
static const flt_header_t hints[] = {HDR("Link", "</a.css>; rel=preload")};

/* One flow: request edited, 103 and 100 before a 200, response as received
 * unless `edit_resp`. */
static void run_edited_flow(flt_chain_t *ch, flt_conn_t *c, int edit_resp) {
  static const flt_header_t resp_sent[] = {HDR("Content-Length", "0")};
  flt_head_t sent_req, sent_resp;
  flt_head_t i103 = {.http_major = 1,
                     .http_minor = 1,
                     .status = 103,
                     .reason = "Early Hints",
                     .headers = hints,
                     .n_headers = 1,
                     .method = ""};
  flt_head_t i100 = {
      .http_major = 1, .http_minor = 1, .status = 100, .reason = "Continue", .method = ""};
  const flt_head_t *interim[] = {&i103, &i100};
  flt_flow_t f;

  memset(&f, 0, sizeof(f));
  f.id = 1;
  f.conn = c;
  snprintf(f.scheme, sizeof(f.scheme), "http");
  f.url = (char *)"http://example.test/x";
  f.req = (flt_head_t){.http_major = 1,
                       .http_minor = 1,
                       .method = "GET",
                       .url = "/x",
                       .headers = req_got,
                       .n_headers = 2,
                       .head_bytes = 50};
  sent_req = f.req;
  sent_req.headers = req_sent;
  sent_req.head_bytes = 48;
  f.req_sent = &sent_req;
  f.t_start_us = f.t_req_end_us = BASE_US;
  flt_emit_request_head(ch, &f);
  flt_emit_request_end(ch, &f);
  f.interim = interim;
  f.n_interim = 2;
  f.has_response = 1;
  f.resp = (flt_head_t){.http_major = 1,
                        .http_minor = 1,
                        .status = 200,
                        .reason = "OK",
                        .headers = resp_got,
                        .n_headers = 2,
                        .method = ""};
  if (edit_resp) {
    sent_resp = f.resp;
    sent_resp.headers = resp_sent;
    sent_resp.n_headers = 1;
    f.resp_sent = &sent_resp;
  }
  f.t_resp_head_us = BASE_US + 1000;
  flt_emit_response_head(ch, &f);
  f.t_end_us = BASE_US + 2000;
  flt_emit_flow_end(ch, &f);
}

static cJSON *field(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  assert_non_null(v);
  return (cJSON *)v;
}

static void check_headers(const cJSON *arr, const flt_header_t *want, int n) {
  assert_int_equal(cJSON_GetArraySize(arr), n);
  for (int i = 0; i < n; i++) {
    const cJSON *h = cJSON_GetArrayItem(arr, i);
    assert_string_equal(field(h, "name")->valuestring, want[i].name);
    assert_string_equal(field(h, "value")->valuestring, want[i].value);
  }
}

static void test_forwarded_received_and_interim(void **state) {
  char har_path[128], jl_path[128], err[512];
  flt_chain_t ch = {0};
  flt_conn_t c;
  (void)state;

  path_in(har_path, sizeof(har_path), "edits.har");
  path_in(jl_path, sizeof(jl_path), "edits.jsonl");
  void *har = flt_har_new(har_path, 1000, "9.9-test", err, sizeof(err));
  void *jl = flt_jsonl_new(jl_path, 1000, err, sizeof(err));
  assert_true(har && jl);
  flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
  flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
  init_conn(&c, 1, "127.0.0.1:40001", "93.184.216.34:80", 0);
  run_edited_flow(&ch, &c, 0);
  run_edited_flow(&ch, &c, 1);
  flt_emit_conn_close(&ch, &c);
  flt_emit_shutdown(&ch);

  char *text = slurp(jl_path, NULL);
  char *second = strchr(text, '\n');
  assert_non_null(second);
  *second++ = '\0';
  for (int i = 0; i < 2; i++) {
    cJSON *o = cJSON_Parse(i ? second : text);
    assert_non_null(o);
    /* "request" as forwarded; the received head beside it. */
    check_headers(field(field(o, "request"), "headers"), req_sent, 2);
    assert_int_equal((int)field(field(o, "request"), "headersSize")->valuedouble, 48);
    check_headers(field(field(o, "requestReceived"), "headers"), req_got, 2);
    assert_int_equal((int)field(field(o, "requestReceived"), "headersSize")->valuedouble, 50);
    if (i == 0) {
      assert_true(cJSON_IsNull(field(o, "responseReceived")));
      check_headers(field(field(o, "response"), "headers"), resp_got, 2);
    } else {
      check_headers(field(field(o, "responseReceived"), "headers"), resp_got, 2);
      check_headers(field(field(o, "response"), "headers"), resp_got + 1, 1);
    }
    const cJSON *in = field(o, "interim");
    assert_int_equal(cJSON_GetArraySize(in), 2);
    assert_int_equal((int)field(cJSON_GetArrayItem(in, 0), "status")->valuedouble, 103);
    assert_string_equal(field(cJSON_GetArrayItem(in, 0), "reason")->valuestring, "Early Hints");
    check_headers(field(cJSON_GetArrayItem(in, 0), "headers"), hints, 1);
    assert_int_equal((int)field(cJSON_GetArrayItem(in, 1), "status")->valuedouble, 100);
    assert_string_equal(field(cJSON_GetArrayItem(in, 1), "httpVersion")->valuestring, "HTTP/1.1");
    cJSON_Delete(o);
  }
  free(text);

  cJSON *doc = load_har(har_path, 2);
  const cJSON *e = entry_at(doc, 0);
  check_headers(field(field(e, "request"), "headers"), req_sent, 2);
  assert_int_equal(cJSON_GetArraySize(field(field(e, "request"), "cookies")), 0);
  const cJSON *ir = field(field(e, "response"), "_interimResponses");
  assert_int_equal(cJSON_GetArraySize(ir), 2);
  assert_int_equal((int)field(cJSON_GetArrayItem(ir, 1), "status")->valuedouble, 100);
  cJSON_Delete(doc);
  flt_har_free(har);
  flt_jsonl_free(jl);
}

/* Redirects fd 2 into a file while `open_it` runs; returns what it said. */
static char *stderr_of(void *(*open_it)(const char *), const char *path, void **made) {
  char out[128];
  path_in(out, sizeof(out), "stderr.txt");
  int saved = dup(2), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  *made = open_it(path);
  dup2(saved, 2);
  close(saved);
  return slurp(out, NULL);
}

static void *open_jsonl(const char *path) {
  char err[512];
  return flt_jsonl_new(path, 100, err, sizeof(err));
}

static void *open_keylog(const char *path) {
  char err[512];
  return flt_keylog_new(path, err, sizeof(err));
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void test_reused_file_is_stated(void **state) {
  char path[128], want[512];
  void *made;
  struct stat st;
  (void)state;

  /* New: nothing said. Empty: nothing lost, nothing said. */
  path_in(path, sizeof(path), "reuse.jsonl");
  char *said = stderr_of(open_jsonl, path, &made);
  assert_non_null(made);
  assert_string_equal(said, "");
  free(said);
  flt_jsonl_free(made);
  said = stderr_of(open_jsonl, path, &made);
  assert_string_equal(said, "");
  free(said);
  flt_jsonl_free(made);

  write_file(path, "{\"old\": 1}\n");
  said = stderr_of(open_jsonl, path, &made);
  assert_non_null(made);
  snprintf(want, sizeof(want), "overwriting existing JSONL file %s (11 B)", path);
  assert_non_null(strstr(said, want));
  free(said);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 0); /* truncated */
  flt_jsonl_free(made);

  path_in(path, sizeof(path), "reuse.keys");
  write_file(path, "CLIENT_RANDOM 00 01\n");
  said = stderr_of(open_keylog, path, &made);
  assert_non_null(made);
  snprintf(want, sizeof(want), "key log %s exists (20 B): appending to it", path);
  assert_non_null(strstr(said, want));
  assert_null(strstr(said, "overwriting"));
  free(said);
  flt_keylog_free(made);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 20); /* kept */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forwarded_received_and_interim),
      cmocka_unit_test(test_reused_file_is_stated),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
