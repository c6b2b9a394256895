/* test_transcript.c — the recording filters (filters/transcript/transcript.h) as
 * records: HAR and JSON lines (their entries, crash safety, shared records,
 * the body cap), the key log, and open and write errors, driven through a
 * real chain with synthetic connections and flows, and their files read
 * back with cJSON. The PCAP output is in test_transcript_pcap.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "filters/expr/expr.h"
#include "filters/util/strbuf.h"
#include "filters/transcript/transcript.h"
#include "filters/transcript/transcript_internal.h"
#include "tests/unit/filters/transcript/fixtures/transcriptfixtures.h"

/* ---- stderr ----------------------------------------------------------------- */

/* Redirects fd 2 into a temp file until stderr_end(), which returns what
 * was written there. */
static int stderr_begin(void) {
  char path[128];
  int saved = dup(2), fd;

  path_in(path, sizeof(path), "stderr.txt");
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  return saved;
}

static char *stderr_end(int saved) {
  char path[128];
  dup2(saved, 2);
  close(saved);
  path_in(path, sizeof(path), "stderr.txt");
  return slurp(path, NULL);
}

/* ---- base64 and UTF-8 ------------------------------------------------------ */

static void test_base64_and_utf8(void **state) {
  uint8_t in[300], out[300];
  (void)state;

  for (size_t i = 0; i < sizeof(in); i++)
    in[i] = (uint8_t)(i * 37 + 11);
  for (size_t len = 0; len < 10; len++) {
    char *b = tr_base64(in, len, NULL);
    assert_int_equal(strlen(b), (len + 2) / 3 * 4);
    assert_int_equal(b64_decode(b, out), len);
    assert_memory_equal(in, out, len);
    free(b);
  }
  char *b = tr_base64((const uint8_t *)"foobar", 6, NULL);
  assert_string_equal(b, "Zm9vYmFy");
  free(b);
  assert_true(tr_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x9c\x93", 10));
  assert_false(tr_utf8_valid((const uint8_t *)"a\0b", 3));
  assert_false(tr_utf8_valid((const uint8_t *)"\xc3(", 2));
  assert_false(tr_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
}

/* ---- the JSON writer ---------------------------------------------------------- */

static char *jw_text(tr_jw_t *w) {
  struct iovec *iov;
  int n = tr_jw_iov(w, 0, &iov);
  flt_strbuf_t b;

  assert_true(n > 0);
  flt_strbuf_init(&b, 0);
  for (int i = 0; i < n; i++)
    flt_strbuf_append(&b, iov[i].iov_base, iov[i].iov_len);
  return b.data;
}

/* Numbers print as cJSON prints them (the files used to be cJSON's). */
static void test_json_numbers(void **state) {
  static const double nums[] = {0, -1, 1, 42, 2147483647.0, -2147483648.0, 3e9, 1e15, 1e17,
                                0.001, 0.5, 1.5, 2.25, 123.456, 34.001, 0.1 + 0.2, 1.0 / 3,
                                -0.25, 1e-7, 999999999.999, 1e12 + 0.5, 4294967296.0,
                                (double)1700000000123456ull / 1000.0, 0.05 + 0.123 + 0.2,
                                1.001 + 2.002 + 0.3 + 25.017, 0.1 + 0.7, 999999999.998 + 0.001};
  (void)state;

  for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
    tr_jw_t w;
    cJSON *n = cJSON_CreateNumber(nums[i]);
    char *want = cJSON_PrintUnformatted(n);
    tr_jw_init(&w);
    tr_jw_num(&w, NULL, nums[i]);
    char *got = jw_text(&w);
    if (strcmp(got, want) != 0) fail_msg("%.17g: %s, cJSON %s", nums[i], got, want);
    free(got);
    free(want);
    cJSON_Delete(n);
    tr_jw_free(&w);
  }
  /* Every microsecond count as milliseconds, in a range, and sums of them
   * (a flow's total time). */
  for (uint64_t us = 0; us < 200000; us += 7) {
    char got[40], want[40];
    tr_jw_t w;
    double d = (double)us / 1000.0;
    if (us % 2) d += (double)(us / 3) / 1000.0 + (double)(us % 1000) / 1000.0;
    tr_jw_init(&w);
    tr_jw_num(&w, NULL, d);
    char *t = jw_text(&w);
    snprintf(got, sizeof(got), "%s", t);
    free(t);
    tr_jw_free(&w);
    cJSON *n = cJSON_CreateNumber(d);
    t = cJSON_PrintUnformatted(n);
    snprintf(want, sizeof(want), "%s", t);
    free(t);
    cJSON_Delete(n);
    assert_string_equal(got, want);
  }
}

/* Strings: escaped as cJSON escapes, made valid UTF-8 (invalid bytes as
 * ISO-8859-1, NUL as U+FFFD); commas; bodies in holes read as inline. */
static void test_json_writer(void **state) {
  static const char in[] = "a\"b\\c\b\f\n\r\t\x01\x1f\x7f \xc3\xa9 \xff\xfe \xe2\x9c";
  static const char want_val[] =
      "a\"b\\c\b\f\n\r\t\x01\x1f\x7f \xc3\xa9 \xc3\xbf\xc3\xbe \xc3\xa2\xc2\x9c\xef\xbf\xbd";
  char big[TR_JW_INLINE_MAX + 100];
  tr_jw_t w;
  (void)state;

  tr_jw_init(&w);
  tr_jw_open(&w, NULL, '{');
  tr_jw_bytes(&w, "s", in, sizeof(in)); /* with its NUL */
  tr_jw_open(&w, "a", '[');
  tr_jw_num(&w, NULL, 1);
  tr_jw_lit(&w, NULL, "null");
  tr_jw_bool(&w, NULL, 0);
  tr_jw_close(&w, ']');
  tr_jw_open(&w, "e", '{');
  tr_jw_close(&w, '}');
  memset(big, 'x', sizeof(big));
  tr_body_t small = {.json = "tiny", .json_len = 4};
  tr_body_t large = {.json = big, .json_len = sizeof(big)};
  tr_jw_body(&w, "b1", &large);
  tr_jw_body(&w, "b2", &small);
  tr_jw_close(&w, '}');
  tr_jw_raw(&w, "\n", 1);
  tr_jw_open(&w, NULL, '[');
  tr_jw_close(&w, ']');
  assert_false(w.oom);
  assert_int_equal(w.n_holes, 1);
  char *text = jw_text(&w);
  char *nl = strchr(text, '\n');
  assert_non_null(nl);
  assert_string_equal(nl, "\n[]");
  *nl = '\0';
  cJSON *o = cJSON_Parse(text);
  assert_non_null(o);
  char *again = cJSON_PrintUnformatted(o);
  assert_string_equal(again, text);
  const cJSON *s = cJSON_GetObjectItem(o, "s");
  assert_int_equal(strlen(s->valuestring), sizeof(want_val) - 1);
  assert_memory_equal(s->valuestring, want_val, sizeof(want_val) - 1);
  assert_int_equal(strlen(cJSON_GetObjectItem(o, "b1")->valuestring), sizeof(big));
  assert_string_equal(cJSON_GetObjectItem(o, "b2")->valuestring, "tiny");
  free(again);
  free(text);
  cJSON_Delete(o);
  tr_jw_free(&w);
}

/* ---- crash safety ---------------------------------------------------------- */

/* The promise: once a flow's entry is written, a SIGKILL leaves a valid
 * HAR behind. The child records three flows and kills itself. */
static void test_har_survives_sigkill(void **state) {
  char path[128];
  int status;
  (void)state;

  make_bodies();
  path_in(path, sizeof(path), "kill.har");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char err[512];
    flt_chain_t ch = {0};
    flt_conn_t c;
    sent_t sent;
    void *har = flt_har_new(path, 1 << 20, "9.9-test", err, sizeof(err));
    if (har == NULL) _exit(2);
    flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
    init_conn(&c, 1, "127.0.0.1:40000", "93.184.216.34:80", 0);
    memset(&sent, 0, sizeof(sent));
    for (int i = 0; i < 3; i++)
      run_flow(&ch, &c, &sent, (uint64_t)i + 1, &flows[i == 1 ? 2 : i]);
    flt_emit_shutdown(&ch); /* each entry is in the kernel */
    kill(getpid(), SIGKILL);
    _exit(3);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  cJSON *doc = load_har(path, 3);
  check_har_entry(entry_at(doc, 0), 0);
  check_har_entry(entry_at(doc, 2), 2);
  cJSON_Delete(doc);
}

/* ---- HAR and JSON lines sharing their records ------------------------------- */

/* Text that takes every kind of escape a JSON string has: quote,
 * backslash, the named control characters and \u00XX for the others,
 * next to multi-byte UTF-8, which goes through unescaped. */
static char escape_body[256];
static size_t escape_len;

static void make_escape_body(void) {
  static const char tail[] = "\"quoted\" back\\slash \xc3\xa9 \xe2\x9c\x93 \x7f end";
  escape_len = 0;
  for (int c = 1; c < 0x20; c++)
    escape_body[escape_len++] = (char)c;
  memcpy(escape_body + escape_len, tail, sizeof(tail) - 1);
  escape_len += sizeof(tail) - 1;
}

/* Closes the connection, shuts the chain down (the files are complete
 * after it) and frees what a run of record_run's kind made. */
static void end_run(flt_chain_t *ch, flt_conn_t *c, void *har, void *jl, sent_t *sent) {
  flt_emit_conn_close(ch, c);
  flt_emit_shutdown(ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_chain_free(ch);
  flt_strbuf_free(&sent->bytes[0]);
  flt_strbuf_free(&sent->bytes[1]);
}

/* The sample flows and one with escape_body both ways, into
 * <tag>.har and <tag>.jsonl; with `share`, the two files share their
 * records; with `filters`, HAR leaves out /bin and JSONL leaves out POSTs. */
static void record_run(const char *tag, int share, int filters, char *har_path,
                       char *jl_path) {
  static const flt_header_t esc_h[] = {H("Content-Type", "text/plain")};
  char name[64], err[512];
  flt_chain_t ch = {0};
  flt_conn_t c;
  sent_t sent;
  test_flow_t esc = {.method = "POST",
                     .url = "http://example.test/esc",
                     .target = "/esc",
                     .req_h = esc_h,
                     .n_req_h = 1,
                     .req_body = escape_body,
                     .req_len = escape_len,
                     .status = 200,
                     .reason = "OK",
                     .resp_h = esc_h,
                     .n_resp_h = 1,
                     .resp_body = escape_body,
                     .resp_len = escape_len,
                     .chunk = 7};

  snprintf(name, sizeof(name), "%s.har", tag);
  path_in(har_path, 128, name);
  snprintf(name, sizeof(name), "%s.jsonl", tag);
  path_in(jl_path, 128, name);
  void *har = flt_har_new(har_path, 1 << 20, "9.9-test", err, sizeof(err));
  void *jl = flt_jsonl_new(jl_path, 1 << 20, err, sizeof(err));
  assert_true(har && jl);
  int har_slot = flt_chain_add(&ch, &flt_har_ops, har);
  int jl_slot = flt_chain_add(&ch, &flt_jsonl_ops, jl);
  flt_har_set_slot(har, har_slot);
  flt_jsonl_set_slot(jl, jl_slot);
  if (filters) {
    flt_chain_set_expr(&ch, har_slot, flt_expr_compile("!~u /bin", 0, err, sizeof(err)), 0);
    flt_chain_set_expr(&ch, jl_slot, flt_expr_compile("!~m POST", 0, err, sizeof(err)), 0);
  }
  if (share) flt_har_jsonl_share(har, jl);
  init_conn(&c, 1, "127.0.0.1:40000", "93.184.216.34:80", 0);
  memset(&sent, 0, sizeof(sent));
  flt_emit_conn_open(&ch, &c);
  for (int i = 0; i <= N_FLOWS; i++) {
    test_flow_t t = i < N_FLOWS ? flows[i] : esc;
    if (i == 1) t.resp_len = gz_len;
    t.connect_to = NULL;
    run_flow(&ch, &c, &sent, (uint64_t)i + 1, &t);
  }
  end_run(&ch, &c, har, jl, &sent);
}

static void assert_same_file(const char *a, const char *b) {
  size_t la, lb;
  char *ta = slurp(a, &la), *tb = slurp(b, &lb);
  assert_int_equal(la, lb);
  assert_memory_equal(ta, tb, la);
  free(ta);
  free(tb);
}

/* Each line is exactly what cJSON prints for what it parses to: the body
 * splice escapes as cJSON does. Returns the number of lines. */
static int check_jsonl_reprints(const char *path) {
  char *text = slurp(path, NULL), *line = text;
  int n = 0;

  for (char *end; (end = strchr(line, '\n')) != NULL; line = end + 1, n++) {
    *end = '\0';
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    char *again = cJSON_PrintUnformatted(o);
    assert_string_equal(again, line);
    if (strcmp(get_str(o, "url"), "http://example.test/esc") == 0) {
      cJSON *resp = get(o, "response");
      assert_string_equal(get_str(resp, "bodyEncoding"), "utf8");
      assert_int_equal(strlen(get_str(resp, "body")), escape_len);
      assert_memory_equal(get_str(resp, "body"), escape_body, escape_len);
    }
    free(again);
    cJSON_Delete(o);
  }
  free(text);
  return n;
}

/* The same for every HAR entry (one per line between the head and the tail). */
static int check_har_reprints(const char *path) {
  char *text = slurp(path, NULL), *line = strchr(text, '\n') + 1;
  int n = 0;

  for (char *end; (end = strchr(line, '\n')) != NULL && line[0] == '{'; line = end + 1, n++) {
    *end = '\0';
    if (end[-1] == ',') end[-1] = '\0';
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    char *again = cJSON_PrintUnformatted(o);
    assert_string_equal(again, line);
    free(again);
    cJSON_Delete(o);
  }
  assert_string_equal(line, "]}}\n");
  free(text);
  return n;
}

static void test_har_jsonl_share_records(void **state) {
  char har[4][128], jl[4][128];
  (void)state;

  make_bodies();
  make_escape_body();
  record_run("solo", 0, 0, har[0], jl[0]);
  record_run("shared", 1, 0, har[1], jl[1]);
  record_run("solo-f", 0, 1, har[2], jl[2]);
  record_run("shared-f", 1, 1, har[3], jl[3]);
  /* Sharing changes nothing in either file, filtered or not. */
  assert_same_file(har[0], har[1]);
  assert_same_file(jl[0], jl[1]);
  assert_same_file(har[2], har[3]);
  assert_same_file(jl[2], jl[3]);

  assert_int_equal(check_jsonl_reprints(jl[1]), N_FLOWS + 1);
  assert_int_equal(check_jsonl_reprints(jl[3]), N_FLOWS + 1 - 2); /* two POSTs */
  assert_int_equal(check_har_reprints(har[1]), N_FLOWS + 1);
  assert_int_equal(check_har_reprints(har[3]), N_FLOWS + 1 - 1);
  cJSON *doc = load_har(har[3], N_FLOWS + 1 - 1);                /* no /bin */
  cJSON_Delete(doc);
  doc = load_har(har[1], N_FLOWS + 1);
  const cJSON *e = entry_at(doc, N_FLOWS);
  const char *text = get_str(get(get(e, "response"), "content"), "text");
  assert_int_equal(strlen(text), escape_len);
  assert_memory_equal(text, escape_body, escape_len);
  text = get_str(get(get(e, "request"), "postData"), "text");
  assert_memory_equal(text, escape_body, escape_len);
  cJSON_Delete(doc);
}

/* ---- TLS facts formatted once per connection ------------------------------ */

static int fmt_calls;
static void sni_value(tr_jw_t *w, const void *arg) {
  fmt_calls++;
  tr_jw_raw(w, "{", 1);
  tr_jw_str(w, "sni", ((const flt_conn_t *)arg)->sni);
  tr_jw_close(w, '}');
}

/* tr_jw_kcached: formatted once per snapshot, the same text every time, a
 * snapshot with other facts formatted anew, NULL formatted every time. */
static void test_tls_facts_once_per_snapshot(void **state) {
  const char *want = "{\"a\":{\"sni\":\"q\\\"t\\u0001.test\"},\"b\":{\"sni\":\"q\\\"t\\u0001.test\"},"
                     "\"c\":{\"sni\":\"q\\\"t\\u0001.test\"}}";
  tr_conn_snap_t *cache = NULL, *s1, *s2;
  flt_conn_t c;
  tr_jw_t w;
  (void)state;

  init_conn(&c, 7, "127.0.0.1:40001", "127.0.0.1:443", 1);
  snprintf(c.sni, sizeof(c.sni), "q\"t\x01.test");
  s1 = tr_conn_snap_take(&cache, &c);
  assert_non_null(s1);
  tr_jw_init(&w);
  fmt_calls = 0;
  tr_jw_raw(&w, "{", 1);
  tr_jw_kcached(&w, "a", 1, s1, TR_FRAG_HAR_TLS, sni_value, &s1->conn);
  tr_jw_kcached(&w, "b", 1, s1, TR_FRAG_HAR_TLS, sni_value, &s1->conn);
  tr_jw_kcached(&w, "c", 1, NULL, TR_FRAG_HAR_TLS, sni_value, &s1->conn);
  tr_jw_close(&w, '}');
  assert_int_equal(fmt_calls, 2);
  assert_int_equal(w.len, strlen(want));
  assert_memory_equal(w.buf, want, w.len);
  /* The other format's slot is its own. */
  tr_jw_reset(&w);
  tr_jw_kcached(&w, NULL, 0, s1, TR_FRAG_JSONL_TLS, sni_value, &s1->conn);
  assert_int_equal(fmt_calls, 3);

  /* The same facts share the snapshot; changed ones get a new one. */
  s2 = tr_conn_snap_take(&cache, &c);
  assert_ptr_equal(s2, s1);
  tr_conn_snap_release(s2);
  snprintf(c.sni, sizeof(c.sni), "other.test");
  s2 = tr_conn_snap_take(&cache, &c);
  assert_ptr_not_equal(s2, s1);
  tr_jw_reset(&w);
  tr_jw_kcached(&w, NULL, 0, s2, TR_FRAG_HAR_TLS, sni_value, &s2->conn);
  assert_int_equal(fmt_calls, 4);
  assert_int_equal(w.len, strlen("{\"sni\":\"other.test\"}"));
  assert_memory_equal(w.buf, "{\"sni\":\"other.test\"}", w.len);
  tr_conn_snap_release(s1);
  tr_conn_snap_release(s2);
  tr_conn_snap_release(cache);
  tr_jw_free(&w);
}

/* Through the files: the flows of one connection before and after its
 * upstream's TLS facts changed each list the facts of their own time, in
 * both formats, shared record or not. */
static void test_tls_facts_follow_the_connection(void **state) {
  static const flt_header_t h[] = {H("Host", "example.test")};
  test_flow_t t = {.method = "GET", .url = "https://example.test/", .target = "/", .req_h = h,
                   .n_req_h = 1, .status = 204, .reason = "No Content"};
  char err[512], hp[128], jp[128];
  (void)state;

  for (int share = 0; share < 2; share++) {
    flt_chain_t ch = {0};
    flt_conn_t c;
    sent_t sent;
    path_in(hp, sizeof(hp), share ? "tls-shared.har" : "tls.har");
    path_in(jp, sizeof(jp), share ? "tls-shared.jsonl" : "tls.jsonl");
    void *har = flt_har_new(hp, 1 << 20, "9.9-test", err, sizeof(err));
    void *jl = flt_jsonl_new(jp, 1 << 20, err, sizeof(err));
    assert_true(har && jl);
    flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
    flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
    if (share) flt_har_jsonl_share(har, jl);
    init_conn(&c, 1, "127.0.0.1:40002", "127.0.0.1:443", 1);
    snprintf(c.ja3, sizeof(c.ja3), "771,4865-4866,0-23,29,0");
    memset(&sent, 0, sizeof(sent));
    flt_emit_conn_open(&ch, &c);
    for (int i = 0; i < 4; i++) {
      if (i == 2) snprintf(c.up_cipher, sizeof(c.up_cipher), "TLS_CHACHA20_POLY1305_SHA256");
      run_flow(&ch, &c, &sent, (uint64_t)i + 1, &t);
    }
    end_run(&ch, &c, har, jl, &sent);

    assert_int_equal(check_har_reprints(hp), 4);
    assert_int_equal(check_jsonl_reprints(jp), 4);
    cJSON *doc = load_har(hp, 4);
    char *text = slurp(jp, NULL), *line = text;
    for (int i = 0; i < 4; i++) {
      const char *want = i < 2 ? "" : "TLS_CHACHA20_POLY1305_SHA256";
      const cJSON *tls = get(entry_at(doc, i), "_tls");
      assert_string_equal(get_str(tls, "ja3"), "771,4865-4866,0-23,29,0");
      assert_string_equal(get_str(get(tls, "upstream"), "cipher"), want);
      char *end = strchr(line, '\n');
      assert_non_null(end);
      *end = '\0';
      cJSON *o = cJSON_Parse(line);
      assert_string_equal(get_str(get(get(o, "tls"), "upstream"), "cipher"), want);
      assert_string_equal(get_str(get(o, "tls"), "ja3"), "771,4865-4866,0-23,29,0");
      cJSON_Delete(o);
      line = end + 1;
    }
    free(text);
    cJSON_Delete(doc);
  }
}

/* ---- body cap -------------------------------------------------------------- */

static void test_body_cap(void **state) {
  char har_path[128], jl_path[128], err[512];
  flt_chain_t ch = {0};
  flt_conn_t c;
  sent_t sent;
  (void)state;

  make_bodies();
  path_in(har_path, sizeof(har_path), "cap.har");
  path_in(jl_path, sizeof(jl_path), "cap.jsonl");
  void *har = flt_har_new(har_path, 100, "9.9-test", err, sizeof(err));
  void *jl = flt_jsonl_new(jl_path, 100, err, sizeof(err));
  assert_true(har && jl);
  flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
  flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
  init_conn(&c, 9, "127.0.0.1:40009", "93.184.216.34:80", 0);
  memset(&sent, 0, sizeof(sent));
  test_flow_t t = flows[1]; /* gzip */
  t.resp_len = gz_len;
  run_flow(&ch, &c, &sent, 1, &t);
  t = flows[4]; /* identity, in 1000-byte events */
  run_flow(&ch, &c, &sent, 2, &t);
  flt_emit_conn_close(&ch, &c);
  flt_emit_shutdown(&ch);

  cJSON *doc = load_har(har_path, 2);
  for (int i = 0; i < 2; i++) {
    const cJSON *rs = get(entry_at(doc, i), "response");
    assert_true(cJSON_IsTrue(get(rs, "_bodyTruncated")));
    assert_int_equal(strlen(get_str(get(rs, "content"), "text")), 100);
    assert_memory_equal(get_str(get(rs, "content"), "text"), long_text, 100);
  }
  /* Identity: the size is the real one even though the text is cut. */
  assert_int_equal((int)get_num(get(get(entry_at(doc, 1), "response"), "content"), "size"),
                   strlen(long_text));
  cJSON_Delete(doc);
  char *text = slurp(jl_path, NULL);
  cJSON *o = cJSON_Parse(text); /* the first line */
  assert_non_null(o);
  assert_true(cJSON_IsTrue(get(get(o, "response"), "bodyTruncated")));
  cJSON_Delete(o);
  free(text);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_strbuf_free(&sent.bytes[0]);
  flt_strbuf_free(&sent.bytes[1]);
}

/* ---- key log --------------------------------------------------------------- */

static void test_keylog(void **state) {
  char path[128], err[512];
  struct stat st;
  flt_conn_t c;
  (void)state;

  path_in(path, sizeof(path), "keys.log");
  memset(&c, 0, sizeof(c));
  for (int round = 0; round < 2; round++) {
    void *kl = flt_keylog_new(path, err, sizeof(err));
    assert_non_null(kl);
    flt_keylog_ops.on_keylog(kl, &c, round ? "CLIENT_RANDOM 02 03" : "CLIENT_RANDOM 00 01");
    if (round == 0) flt_keylog_ops.on_keylog(kl, &c, "SERVER_TRAFFIC_SECRET_0 aa bb");
    flt_keylog_ops.on_shutdown(kl);
    flt_keylog_free(kl);
  }
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *text = slurp(path, NULL);
  assert_string_equal(text,
                      "CLIENT_RANDOM 00 01\nSERVER_TRAFFIC_SECRET_0 aa bb\nCLIENT_RANDOM 02 03\n");
  free(text);

  /* An existing file others can read is made 0600, and that is reported. */
  chmod(path, 0644);
  int saved = stderr_begin();
  void *kl = flt_keylog_new(path, err, sizeof(err));
  char *out = stderr_end(saved);
  assert_non_null(kl);
  assert_int_equal(count_lines_with(out, path, "made it 0600"), 1);
  free(out);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  flt_keylog_free(kl);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_open_errors(void **state) {
  const char *bad = "/nonexistent-dir/x.out";
  char err[512];
  (void)state;

  assert_null(flt_har_new(bad, 10, "1", err, sizeof(err)));
  assert_non_null(strstr(err, bad));
  assert_non_null(strstr(err, strerror(ENOENT)));
  assert_null(flt_jsonl_new(bad, 10, err, sizeof(err)));
  assert_non_null(strstr(err, bad));
  assert_null(flt_pcap_new(bad, err, sizeof(err)));
  assert_non_null(strstr(err, strerror(ENOENT)));
  assert_null(flt_keylog_new(bad, err, sizeof(err)));
  assert_non_null(strstr(err, bad));
  /* HAR writes its head at once: a full disk shows at start-up. */
  assert_null(flt_har_new("/dev/full", 10, "1", err, sizeof(err)));
  assert_non_null(strstr(err, strerror(ENOSPC)));
  assert_null(flt_pcap_new("/dev/full", err, sizeof(err)));
}

static void test_write_errors(void **state) {
  char err[512];
  flt_chain_t ch = {0};
  flt_conn_t c;
  sent_t sent;
  (void)state;

  make_bodies();
  int saved = stderr_begin();
  void *jl = flt_jsonl_new("/dev/full", 1000, err, sizeof(err));
  void *kl = flt_keylog_new("/dev/full", err, sizeof(err));
  assert_true(jl && kl);
  flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
  flt_chain_add(&ch, &flt_keylog_ops, kl);
  init_conn(&c, 5, "127.0.0.1:40005", "93.184.216.34:80", 0);
  memset(&sent, 0, sizeof(sent));
  for (int i = 0; i < 3; i++) {
    flt_emit_keylog(&ch, &c, "CLIENT_RANDOM 00 01");
    run_flow(&ch, &c, &sent, (uint64_t)i + 1, &flows[0]);
    flt_emit_shutdown(&ch);
  }
  flt_emit_conn_close(&ch, &c);
  flt_jsonl_free(jl);
  flt_keylog_free(kl);
  char *out = stderr_end(saved);
  assert_int_equal(count_lines_with(out, "JSONL file /dev/full", strerror(ENOSPC)), 1);
  assert_int_equal(count_lines_with(out, "key log /dev/full", strerror(ENOSPC)), 1);
  assert_int_equal(count_lines_with(out, "/dev/full", NULL), 2);
  free(out);
  flt_strbuf_free(&sent.bytes[0]);
  flt_strbuf_free(&sent.bytes[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_and_utf8),
      cmocka_unit_test(test_json_numbers),
      cmocka_unit_test(test_json_writer),
      cmocka_unit_test(test_har_survives_sigkill),
      cmocka_unit_test(test_har_jsonl_share_records),
      cmocka_unit_test(test_tls_facts_once_per_snapshot),
      cmocka_unit_test(test_tls_facts_follow_the_connection),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_keylog),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_write_errors),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
