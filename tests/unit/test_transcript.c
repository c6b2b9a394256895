/* test_transcript.c — the recording filters (filters/transcript.h): HAR,
 * JSON lines, PCAP and the key log, driven through a real chain with
 * synthetic connections and flows, and their files read back (cJSON,
 * libpcap, and tshark when it is installed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "filters/expr.h"
#include "filters/strbuf.h"
#include "filters/transcript.h"
#include "filters/transcript_internal.h"

#define BASE_US 1700000000123000ull

/* ---- files and stderr -------------------------------------------------- */

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/tlspeek-tr-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
  char cmd[128];
  (void)state;
  if (getenv("TLSPEEK_TEST_KEEP")) { /* to look at the files by hand */
    printf("files kept in %s\n", tmpdir);
    return 0;
  }
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tmpdir, name);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  flt_strbuf_t b;
  char chunk[65536];
  size_t n;

  assert_non_null(f);
  flt_strbuf_init(&b, 0);
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    flt_strbuf_append(&b, chunk, n);
  fclose(f);
  return flt_strbuf_detach(&b, len);
}

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

static int count_lines_with(const char *text, const char *a, const char *b) {
  int n = 0;
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (memmem(line, len, a, strlen(a)) && (!b || memmem(line, len, b, strlen(b)))) n++;
    line = end ? end + 1 : NULL;
  }
  return n;
}

/* ---- base64 and gzip ------------------------------------------------------ */

static size_t b64_decode(const char *s, uint8_t *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t v = 0;
  int bits = 0;
  size_t n = 0;

  for (; *s && *s != '='; s++) {
    const char *p = strchr(tab, *s);
    assert_non_null(p);
    v = v << 6 | (uint32_t)(p - tab);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(v >> bits);
    }
  }
  return n;
}

static size_t gzip_bytes(const void *in, size_t len, uint8_t *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  deflateEnd(&z);
  return cap - z.avail_out;
}

static void test_base64_and_utf8(void **state) {
  uint8_t in[300], out[300];
  (void)state;

  for (size_t i = 0; i < sizeof(in); i++)
    in[i] = (uint8_t)(i * 37 + 11);
  for (size_t len = 0; len < 10; len++) {
    char *b = tr_base64(in, len);
    assert_int_equal(strlen(b), (len + 2) / 3 * 4);
    assert_int_equal(b64_decode(b, out), len);
    assert_memory_equal(in, out, len);
    free(b);
  }
  char *b = tr_base64((const uint8_t *)"foobar", 6);
  assert_string_equal(b, "Zm9vYmFy");
  free(b);
  assert_true(tr_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x9c\x93", 10));
  assert_false(tr_utf8_valid((const uint8_t *)"a\0b", 3));
  assert_false(tr_utf8_valid((const uint8_t *)"\xc3(", 2));
  assert_false(tr_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
}

/* ---- the flow driver ------------------------------------------------------ */

#define MAX_HDRS 12
#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

typedef struct test_flow {
  const char *method, *url, *target;
  const flt_header_t *req_h;
  size_t n_req_h;
  const void *req_body;
  size_t req_len;
  int status; /* 0: no response (then `error`) */
  const char *reason;
  const flt_header_t *resp_h;
  size_t n_resp_h;
  const void *resp_body;
  size_t resp_len;
  size_t chunk; /* body events of this size; 0 = one event */
  const char *error;
  const char *connect_to; /* server_addr set after the request is read */
} test_flow_t;

/* What the test sent on each connection, per direction (for PCAP). */
typedef struct sent {
  flt_strbuf_t bytes[2];
  size_t events[2][64]; /* on_data sizes */
  int n_events[2];
} sent_t;

static void emit_data(const flt_chain_t *ch, flt_conn_t *c, sent_t *s, flt_dir_t dir, const void *p,
                      size_t n) {
  if (n == 0) return;
  flt_emit_data(ch, c, dir, p, n);
  flt_strbuf_append(&s->bytes[dir], p, n);
  if (s->n_events[dir] < 64) s->events[dir][s->n_events[dir]++] = n;
}

/* Copies headers and adds Content-Length; renders the head as sent. */
static void build_head(flt_head_t *h, flt_header_t *hv, char *clen, const flt_header_t *src,
                       size_t n, size_t body_len, flt_strbuf_t *wire) {
  assert_true(n < MAX_HDRS);
  if (n) memcpy(hv, src, n * sizeof(*hv));
  if (body_len > 0) {
    int k = snprintf(clen, 24, "%zu", body_len);
    hv[n++] = (flt_header_t){"Content-Length", 14, clen, (size_t)k};
  }
  h->http_major = h->http_minor = 1;
  h->headers = hv;
  h->n_headers = n;
  for (size_t i = 0; i < n; i++)
    flt_strbuf_appendf(wire, "%.*s: %.*s\r\n", (int)hv[i].name_len, hv[i].name,
                       (int)hv[i].value_len, hv[i].value);
  flt_strbuf_append(wire, "\r\n", 2);
  h->head_bytes = wire->len;
}

static void emit_body(const flt_chain_t *ch, flt_flow_t *f, sent_t *s, flt_dir_t dir,
                      const uint8_t *p, size_t len, size_t chunk) {
  for (size_t off = 0; off < len;) {
    size_t n = chunk && len - off > chunk ? chunk : len - off;
    emit_data(ch, f->conn, s, dir, p + off, n);
    if (dir == FLT_DIR_REQUEST) {
      f->req_body_bytes += n;
      flt_emit_request_body(ch, f, p + off, n);
    } else {
      f->resp_body_bytes += n;
      flt_emit_response_body(ch, f, p + off, n);
    }
    off += n;
  }
}

static void run_flow(const flt_chain_t *ch, flt_conn_t *c, sent_t *s, uint64_t id,
                     const test_flow_t *t) {
  flt_header_t req_hv[MAX_HDRS], resp_hv[MAX_HDRS];
  char clen[2][24];
  flt_strbuf_t wire;
  flt_flow_t f;

  memset(&f, 0, sizeof(f));
  f.id = id;
  f.conn = c;
  snprintf(f.scheme, sizeof(f.scheme), "%s", c->client_tls ? "https" : "http");
  f.url = (char *)(uintptr_t)t->url;
  f.t_start_us = BASE_US + id * 100000;
  f.req.method = t->method;
  f.req.url = t->target;
  flt_strbuf_init(&wire, 0);
  flt_strbuf_appendf(&wire, "%s %s HTTP/1.1\r\n", t->method, t->target);
  build_head(&f.req, req_hv, clen[0], t->req_h, t->n_req_h, t->req_len, &wire);
  emit_data(ch, c, s, FLT_DIR_REQUEST, wire.data, wire.len);
  /* Plain HTTP: the proxy connects upstream only after reading the head. */
  if (t->connect_to) snprintf(c->server_addr, sizeof(c->server_addr), "%s", t->connect_to);
  flt_emit_request_head(ch, &f);
  emit_body(ch, &f, s, FLT_DIR_REQUEST, t->req_body, t->req_len, t->chunk);
  f.t_req_end_us = f.t_start_us + 1000;
  flt_emit_request_end(ch, &f);
  if (t->status) {
    flt_strbuf_reset(&wire);
    flt_strbuf_appendf(&wire, "HTTP/1.1 %d %s\r\n", t->status, t->reason);
    f.resp.status = t->status;
    f.resp.reason = t->reason;
    build_head(&f.resp, resp_hv, clen[1], t->resp_h, t->n_resp_h, t->resp_len, &wire);
    emit_data(ch, c, s, FLT_DIR_RESPONSE, wire.data, wire.len);
    f.has_response = 1;
    f.t_resp_head_us = f.t_req_end_us + 25000;
    flt_emit_response_head(ch, &f);
    emit_body(ch, &f, s, FLT_DIR_RESPONSE, t->resp_body, t->resp_len, t->chunk);
  }
  f.error = t->error;
  f.t_end_us = f.t_start_us + 30000;
  flt_emit_flow_end(ch, &f);
  flt_strbuf_free(&wire);
}

static void init_conn(flt_conn_t *c, uint64_t id, const char *client, const char *server, int tls) {
  memset(c, 0, sizeof(*c));
  c->id = id;
  snprintf(c->client, sizeof(c->client), "%s", client);
  snprintf(c->server_addr, sizeof(c->server_addr), "%s", server);
  snprintf(c->server_host, sizeof(c->server_host), "example.test");
  c->server_port = tls ? 443 : 80;
  c->kind = tls ? FLT_CONN_HTTPS : FLT_CONN_HTTP;
  c->client_tls = c->upstream_tls = tls;
  c->dns_us = 1500;
  c->connect_us = 2500;
  c->ssl_us = tls ? 3000 : -1;
  if (tls) {
    snprintf(c->tls_version, sizeof(c->tls_version), "TLSv1.3");
    snprintf(c->cipher, sizeof(c->cipher), "TLS_AES_128_GCM_SHA256");
    snprintf(c->sni, sizeof(c->sni), "example.test");
    snprintf(c->alpn, sizeof(c->alpn), "http/1.1");
    snprintf(c->up_tls_version, sizeof(c->up_tls_version), "TLSv1.3");
  }
}

/* ---- the sample traffic --------------------------------------------------- */

static const char text_body[] = "hello \xe2\x9c\x93 world\n";
static char long_text[20000];
static uint8_t gz_body[8192];
static size_t gz_len;
static uint8_t bin_body[256];
static const char form_body[] = "name=J%C3%B6rg&x=1+2&empty=";

static const flt_header_t get_h[] = {H("Host", "example.test"), H("Cookie", "a=1; b=two"),
                                     H("Accept", "*/*")};
static const flt_header_t text_h[] = {
    H("Content-Type", "text/plain; charset=utf-8"),
    H("Set-Cookie", "sid=abc; Path=/; HttpOnly; Secure; Expires=Wed, 21 Oct 2015 07:28:00 GMT"),
    H("Set-Cookie", "lang=en")};
static const flt_header_t gz_h[] = {H("Content-Type", "text/plain"), H("Content-Encoding", "gzip")};
static const flt_header_t bin_h[] = {H("Content-Type", "application/octet-stream")};
static const flt_header_t form_h[] = {H("Host", "example.test"),
                                      H("Content-Type", "application/x-www-form-urlencoded")};
static const flt_header_t redir_h[] = {H("Location", "/next")};

static void make_bodies(void) {
  for (size_t i = 0; i < sizeof(long_text) - 1; i++)
    long_text[i] = (char)('a' + i % 26);
  long_text[sizeof(long_text) - 1] = '\0';
  gz_len = gzip_bytes(long_text, strlen(long_text), gz_body, sizeof(gz_body));
  for (size_t i = 0; i < sizeof(bin_body); i++)
    bin_body[i] = (uint8_t)i;
}

#define N_FLOWS 7
static const test_flow_t flows[N_FLOWS] = {
    {.method = "GET",
     .url = "http://example.test/search?q=hello+world&lang=en%21#frag",
     .target = "/search?q=hello+world&lang=en%21",
     .req_h = get_h,
     .n_req_h = 3,
     .status = 200,
     .reason = "OK",
     .resp_h = text_h,
     .n_resp_h = 3,
     .resp_body = text_body,
     .resp_len = sizeof(text_body) - 1,
     .connect_to = "93.184.216.34:80"},
    {.method = "GET",
     .url = "http://example.test/gz",
     .target = "/gz",
     .req_h = get_h,
     .n_req_h = 1,
     .status = 200,
     .reason = "OK",
     .resp_h = gz_h,
     .n_resp_h = 2,
     .resp_body = gz_body}, /* resp_len = gz_len, set at run time */
    {.method = "GET",
     .url = "http://example.test/bin",
     .target = "/bin",
     .req_h = get_h,
     .n_req_h = 1,
     .status = 200,
     .reason = "OK",
     .resp_h = bin_h,
     .n_resp_h = 1,
     .resp_body = bin_body,
     .resp_len = sizeof(bin_body)},
    {.method = "POST",
     .url = "http://example.test/form",
     .target = "/form",
     .req_h = form_h,
     .n_req_h = 2,
     .req_body = form_body,
     .req_len = sizeof(form_body) - 1,
     .status = 302,
     .reason = "Found",
     .resp_h = redir_h,
     .n_resp_h = 1},
    /* Content-Type only (gz_h, 1); 20 body events, several split by the MSS. */
    {.method = "GET",
     .url = "http://example.test/chunks",
     .target = "/chunks",
     .req_h = get_h,
     .n_req_h = 1,
     .status = 200,
     .reason = "OK",
     .resp_h = gz_h,
     .n_resp_h = 1,
     .resp_body = long_text,
     .resp_len = sizeof(long_text) - 1,
     .chunk = 1000},
    {.method = "GET",
     .url = "http://example.test/fail",
     .target = "/fail",
     .req_h = get_h,
     .n_req_h = 1,
     .error = "upstream closed the connection"},
    {.method = "PUT",
     .url = "https://[2001:db8::1]/v6",
     .target = "/v6",
     .req_h = get_h,
     .n_req_h = 1,
     .req_body = "x",
     .req_len = 1,
     .status = 204,
     .reason = "No Content"},
};

/* ---- HAR checks ------------------------------------------------------------ */

static cJSON *get(const cJSON *o, const char *key) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (v == NULL) fail_msg("missing \"%s\"", key);
  return v;
}

static const char *get_str(const cJSON *o, const char *key) {
  cJSON *v = get(o, key);
  assert_true(cJSON_IsString(v));
  return v->valuestring;
}

static double get_num(const cJSON *o, const char *key) {
  cJSON *v = get(o, key);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

static void check_nv_array(const cJSON *a) {
  const cJSON *it;
  assert_true(cJSON_IsArray(a));
  cJSON_ArrayForEach(it, a) {
    get_str(it, "name");
    get_str(it, "value");
  }
}

/* The value of the pair named `name` in a [{name,value}] array. */
static const char *nv(const cJSON *a, const char *name) {
  const cJSON *it;
  cJSON_ArrayForEach(it, a) if (strcmp(get_str(it, "name"), name) == 0) return get_str(it, "value");
  fail_msg("no pair named %s", name);
  return NULL;
}

/* Every field HAR 1.2 requires, with its type. */
static void check_entry_shape(const cJSON *e) {
  const char *iso = get_str(e, "startedDateTime");
  assert_int_equal(strlen(iso), 24);
  assert_true(iso[10] == 'T' && iso[19] == '.' && iso[23] == 'Z');
  assert_true(get_num(e, "time") >= 0);
  const cJSON *rq = get(e, "request"), *rs = get(e, "response");
  get_str(rq, "method");
  get_str(rq, "url");
  assert_string_equal(get_str(rq, "httpVersion"), "HTTP/1.1");
  check_nv_array(get(rq, "cookies"));
  check_nv_array(get(rq, "headers"));
  check_nv_array(get(rq, "queryString"));
  get_num(rq, "headersSize");
  assert_true(get_num(rq, "bodySize") >= 0);
  get_num(rs, "status");
  get_str(rs, "statusText");
  get_str(rs, "httpVersion");
  check_nv_array(get(rs, "cookies"));
  check_nv_array(get(rs, "headers"));
  const cJSON *content = get(rs, "content");
  get_num(content, "size");
  get_str(content, "mimeType");
  get_str(rs, "redirectURL");
  get_num(rs, "headersSize");
  get_num(rs, "bodySize");
  assert_true(cJSON_IsObject(get(e, "cache")));
  const cJSON *t = get(e, "timings");
  static const char *const keys[] = {"blocked", "dns", "connect", "ssl", "send", "wait", "receive"};
  for (size_t i = 0; i < 7; i++) {
    double v = get_num(t, keys[i]);
    assert_true(v == -1 || v >= 0);
  }
  assert_true(get_num(t, "send") >= 0 && get_num(t, "wait") >= 0 && get_num(t, "receive") >= 0);
  get_str(e, "connection");
}

static cJSON *load_har(const char *path, int n_entries) {
  char *text = slurp(path, NULL);
  cJSON *har = cJSON_Parse(text);
  if (har == NULL) fail_msg("not JSON: %s", text);
  free(text);
  const cJSON *log = get(har, "log");
  assert_string_equal(get_str(log, "version"), "1.2");
  assert_string_equal(get_str(get(log, "creator"), "name"), "tlspeek");
  assert_string_equal(get_str(get(log, "creator"), "version"), "9.9-test");
  const cJSON *entries = get(log, "entries");
  assert_int_equal(cJSON_GetArraySize(entries), n_entries);
  const cJSON *e;
  cJSON_ArrayForEach(e, entries) check_entry_shape(e);
  return har;
}

static const cJSON *entry_at(const cJSON *har, int i) {
  return cJSON_GetArrayItem(get(get(har, "log"), "entries"), i);
}

/* What is special about each sample flow. */
static void check_har_entry(const cJSON *e, int i) {
  const cJSON *rq = get(e, "request"), *rs = get(e, "response"), *c = get(rs, "content");
  const cJSON *t = get(e, "timings");
  uint8_t buf[512];

  assert_string_equal(get_str(rq, "url"), flows[i].url);
  assert_string_equal(get_str(rq, "method"), flows[i].method);
  assert_int_equal((int)get_num(rs, "status"), flows[i].status);
  switch (i) {
    case 0:
      assert_string_equal(nv(get(rq, "queryString"), "q"), "hello world");
      assert_string_equal(nv(get(rq, "queryString"), "lang"), "en!");
      assert_string_equal(nv(get(rq, "cookies"), "b"), "two");
      assert_string_equal(nv(get(rs, "headers"), "Set-Cookie"), flows[0].resp_h[1].value);
      assert_string_equal(get_str(c, "text"), text_body);
      assert_int_equal((int)get_num(c, "size"), sizeof(text_body) - 1);
      const cJSON *ck = cJSON_GetArrayItem(get(rs, "cookies"), 0);
      assert_string_equal(get_str(ck, "value"), "abc");
      assert_string_equal(get_str(ck, "path"), "/");
      assert_string_equal(get_str(ck, "expires"), "2015-10-21T07:28:00.000Z");
      assert_true(cJSON_IsTrue(get(ck, "httpOnly")) && cJSON_IsTrue(get(ck, "secure")));
      assert_string_equal(get_str(e, "serverIPAddress"), "93.184.216.34");
      assert_true(get_num(t, "dns") == 1.5 && get_num(t, "connect") == 2.5);
      assert_true(get_num(t, "wait") == 25.0);
      assert_true(get_num(rq, "headersSize") > 0);
      assert_null(cJSON_GetObjectItem(e, "_tls"));
      break;
    case 1:
      assert_string_equal(get_str(c, "text"), long_text);
      assert_int_equal((int)get_num(c, "size"), strlen(long_text));
      assert_int_equal((int)get_num(rs, "bodySize"), gz_len);
      assert_int_equal((int)get_num(c, "compression"), strlen(long_text) - gz_len);
      assert_true(get_num(t, "dns") == -1 && get_num(t, "connect") == -1);
      break;
    case 2:
      assert_string_equal(get_str(c, "encoding"), "base64");
      assert_int_equal(b64_decode(get_str(c, "text"), buf), sizeof(bin_body));
      assert_memory_equal(buf, bin_body, sizeof(bin_body));
      break;
    case 3: {
      const cJSON *pd = get(rq, "postData");
      assert_string_equal(get_str(pd, "mimeType"), "application/x-www-form-urlencoded");
      assert_string_equal(get_str(pd, "text"), form_body);
      assert_string_equal(nv(get(pd, "params"), "name"), "J\xc3\xb6rg");
      assert_string_equal(nv(get(pd, "params"), "x"), "1 2");
      assert_string_equal(nv(get(pd, "params"), "empty"), "");
      assert_string_equal(get_str(rs, "redirectURL"), "/next");
      assert_int_equal((int)get_num(rq, "bodySize"), sizeof(form_body) - 1);
      break;
    }
    case 4: /* Content-Type only (gz_h, 1): twenty body events */
      assert_string_equal(get_str(c, "text"), long_text);
      break;
    case 5:
      assert_string_equal(get_str(e, "_error"), "upstream closed the connection");
      assert_int_equal((int)get_num(rs, "bodySize"), -1);
      assert_string_equal(get_str(rs, "httpVersion"), "");
      break;
    case 6:
      assert_string_equal(get_str(e, "serverIPAddress"), "2001:db8::1");
      assert_string_equal(get_str(get(e, "_tls"), "version"), "TLSv1.3");
      assert_string_equal(get_str(get(e, "_tls"), "sni"), "example.test");
      assert_true(get_num(t, "ssl") == 3.0 && get_num(t, "connect") == 5.5);
      assert_string_equal(get_str(get(rq, "postData"), "text"), "x");
      break;
  }
}

/* ---- JSONL checks ---------------------------------------------------------- */

static void check_jsonl(const char *path, int n) {
  char *text = slurp(path, NULL), *line = text;
  int i = 0;

  for (char *end; (end = strchr(line, '\n')) != NULL; line = end + 1, i++) {
    *end = '\0';
    cJSON *o = cJSON_Parse(line);
    if (o == NULL) fail_msg("line %d is not JSON: %s", i, line);
    assert_int_equal((int)get_num(o, "id"), i + 1);
    get_num(o, "conn");
    get_str(o, "client");
    get_str(o, "server");
    get_str(o, "started");
    assert_string_equal(get_str(o, "url"), flows[i].url);
    assert_string_equal(get_str(o, "method"), flows[i].method);
    assert_int_equal((int)get_num(o, "status"), flows[i].status);
    get_str(o, "reason");
    const cJSON *rq = get(o, "request"), *rs = get(o, "response");
    check_nv_array(get(rq, "headers"));
    get_str(rq, "body");
    get_num(get(o, "timings"), "total");
    if (flows[i].error) {
      assert_true(cJSON_IsNull(rs));
      assert_string_equal(get_str(o, "error"), flows[i].error);
    } else {
      assert_true(cJSON_IsNull(get(o, "error")));
      assert_true(cJSON_IsBool(get(rs, "bodyTruncated")));
    }
    if (i == 2) assert_string_equal(get_str(rs, "bodyEncoding"), "base64");
    if (i == 1) assert_string_equal(get_str(rs, "body"), long_text);
    if (i == 6) {
      assert_string_equal(get_str(get(o, "tls"), "cipher"), "TLS_AES_128_GCM_SHA256");
      assert_string_equal(get_str(o, "client"), "[::1]:5555");
    } else {
      assert_true(cJSON_IsNull(get(o, "tls")));
    }
    cJSON_Delete(o);
  }
  assert_int_equal(i, n);
  free(text);
}

/* ---- PCAP checks ------------------------------------------------------------ */

typedef struct stream {
  char addr[2][64]; /* "ip port" of client and server, from the SYN */
  uint16_t cport;
  int v6, packets, fins;
  uint32_t next[2]; /* 0 client->server, 1 server->client */
  flt_strbuf_t bytes[2];
} stream_t;

/* TCP payload of the largest IPv4 and IPv6 packet. */
#define SEG_MAX_V4 (65535u - 20 - 20)
#define SEG_MAX_V6 (65535u - 20)

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static uint16_t sum16(uint32_t sum, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += rd16(p + i);
  if (n & 1) sum += (uint32_t)p[n - 1] << 8;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* Checks one packet and follows its stream's sequence numbers. */
static void check_packet(stream_t *streams, int *n_streams, const uint8_t *p, size_t len) {
  int v6 = rd16(p + 12) == 0x86dd;
  size_t ip_len = v6 ? 40 : 20, alen = v6 ? 16 : 4;
  const uint8_t *ip = p + 14, *tcp = ip + ip_len;
  const uint8_t *src = ip + (v6 ? 8 : 12), *dst = src + alen;
  size_t tcp_len = len - 14 - ip_len, payload = tcp_len - 20;

  assert_true(v6 || rd16(p + 12) == 0x0800);
  if (!v6) assert_int_equal(sum16(0, ip, 20), 0xffff); /* header checksum */
  assert_int_equal(v6 ? rd16(ip + 4) : rd16(ip + 2) - 20u, tcp_len);
  uint32_t pseudo = sum16(sum16(0, src, alen), dst, alen) + 6 + (uint32_t)tcp_len;
  assert_int_equal(sum16(pseudo, tcp, tcp_len), 0xffff); /* TCP checksum */
  /* As large as an IP packet allows (the IPv4 total length and the IPv6
   * payload length are 16 bits), never larger. */
  assert_true(payload <= (v6 ? SEG_MAX_V6 : SEG_MAX_V4));

  uint8_t flags = tcp[13];
  uint16_t dport = rd16(tcp + 2);
  int from_client = dport == 80 || dport == 443 || dport == 8080; /* the servers */
  uint16_t cport = from_client ? rd16(tcp) : rd16(tcp + 2);
  stream_t *s = NULL;
  for (int i = 0; i < *n_streams; i++)
    if (streams[i].cport == cport) s = &streams[i];
  if (s == NULL) { /* a new stream opens with a SYN */
    assert_int_equal(flags, 0x02);
    s = &streams[(*n_streams)++];
    memset(s, 0, sizeof(*s));
    s->cport = cport;
    s->v6 = v6;
    s->next[0] = rd32(tcp + 4);
    for (int k = 0; k < 2; k++) {
      char ipbuf[INET6_ADDRSTRLEN];
      inet_ntop(v6 ? AF_INET6 : AF_INET, k ? dst : src, ipbuf, sizeof(ipbuf));
      snprintf(s->addr[k], sizeof(s->addr[k]), "%s %u", ipbuf, rd16(tcp + 2 * k));
    }
  }
  int d = from_client ? 0 : 1;
  if (s->packets == 1) {
    assert_int_equal(flags, 0x12); /* SYN-ACK */
    s->next[1] = rd32(tcp + 4);
  }
  assert_int_equal(rd32(tcp + 4), s->next[d]);
  if (flags & 0x10) assert_int_equal(rd32(tcp + 8), s->next[!d]);
  s->next[d] += (uint32_t)payload + ((flags & 0x03) ? 1 : 0);
  if (flags & 0x01) s->fins++;
  flt_strbuf_append(&s->bytes[d], tcp + 20, payload);
  s->packets++;
}

static int expected_packets(const sent_t *s, size_t mss) {
  int n = 6; /* handshake and close */
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < s->n_events[d]; i++)
      n += (int)((s->events[d][i] + mss - 1) / mss);
  return n;
}

/* Runs a shell command; returns its stdout (NULL when it fails). */
static char *run_cmd(const char *cmd) {
  FILE *p = popen(cmd, "r");
  flt_strbuf_t b;
  char chunk[4096];
  size_t n;

  if (p == NULL) return NULL;
  flt_strbuf_init(&b, 0);
  while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
    flt_strbuf_append(&b, chunk, n);
  if (pclose(p) != 0) {
    flt_strbuf_free(&b);
    return NULL;
  }
  return flt_strbuf_detach(&b, NULL);
}

/* "tshark -z follow,tcp,raw" prints client bytes as hex lines, server
 * bytes as tab-indented hex lines. */
static void check_tshark_follow(const char *path, const sent_t *s) {
  char cmd[512];
  flt_strbuf_t got[2];
  snprintf(cmd, sizeof(cmd), "tshark -r '%s' -q -z follow,tcp,raw,0 2>/dev/null", path);
  char *out = run_cmd(cmd);
  assert_non_null(out);
  flt_strbuf_init(&got[0], 0);
  flt_strbuf_init(&got[1], 0);
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    int d = line[0] == '\t';
    char *h = line + d;
    if (strspn(h, "0123456789abcdef") != strlen(h) || strlen(h) % 2) continue;
    for (size_t i = 0; h[i]; i += 2) {
      unsigned v;
      sscanf(h + i, "%2x", &v);
      uint8_t byte = (uint8_t)v;
      flt_strbuf_append(&got[d], &byte, 1);
    }
  }
  for (int d = 0; d < 2; d++) {
    assert_int_equal(got[d].len, s->bytes[d].len);
    assert_memory_equal(got[d].data, s->bytes[d].data, got[d].len);
    flt_strbuf_free(&got[d]);
  }
  free(out);
}

static void check_tshark(const char *path, const sent_t *s0) {
  char cmd[512];
  if (system("command -v tshark >/dev/null 2>&1") != 0) {
    printf("tshark is not installed: skipping the Wireshark checks\n");
    return;
  }
  snprintf(cmd, sizeof(cmd),
           "tshark -r '%s' -Y http.request "
           "-T fields -e http.request.method -e http.request.uri 2>/dev/null",
           path);
  char *out = run_cmd(cmd);
  assert_non_null(out);
  for (int i = 0; i < N_FLOWS; i++) {
    char want[256];
    snprintf(want, sizeof(want), "%s\t%s\n", flows[i].method, flows[i].target);
    if (strstr(out, want) == NULL) fail_msg("tshark did not list %s in:\n%s", want, out);
  }
  free(out);
  check_tshark_follow(path, s0);
}

/* Reads a PCAP back: every packet checked (check_packet), then stream i
 * (the one from client port cports[i]) must carry exactly sent[i], in as
 * many packets as the MSS gives, between addrs[i] (when given), and close
 * both ways. */
static void check_streams(const char *path, int n, const uint16_t *cports, sent_t *sent,
                          const char *const (*addrs)[2]) {
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline(path, errbuf);
  struct pcap_pkthdr *h;
  const u_char *data;
  stream_t streams[8];
  int n_streams = 0, total = 0, want = 0;

  if (p == NULL) fail_msg("pcap_open_offline: %s", errbuf);
  assert_int_equal(pcap_datalink(p), DLT_EN10MB);
  while (pcap_next_ex(p, &h, &data) == 1) {
    assert_int_equal(h->caplen, h->len);
    assert_true(h->ts.tv_sec >= 1700000000);
    check_packet(streams, &n_streams, data, h->caplen);
    total++;
  }
  pcap_close(p);
  assert_int_equal(n_streams, n);
  for (int k = 0; k < n; k++) {
    stream_t *s = &streams[k];
    int i = 0;
    while (i < n && cports[i] != s->cport)
      i++;
    assert_true(i < n);
    if (addrs) {
      assert_string_equal(s->addr[0], addrs[i][0]);
      assert_string_equal(s->addr[1], addrs[i][1]);
    }
    want += expected_packets(&sent[i], s->v6 ? SEG_MAX_V6 : SEG_MAX_V4);
    assert_int_equal(s->fins, 2);
    for (int d = 0; d < 2; d++) {
      assert_int_equal(s->bytes[d].len, sent[i].bytes[d].len);
      if (s->bytes[d].len)
        assert_memory_equal(s->bytes[d].data, sent[i].bytes[d].data, s->bytes[d].len);
      flt_strbuf_free(&s->bytes[d]);
    }
  }
  assert_int_equal(total, want);
}

static void check_pcap(const char *path, sent_t sent[3]) {
  static const uint16_t cports[3] = {40000, 40001, 5555};
  static const char *const addrs[3][2] = {{"127.0.0.1 40000", "93.184.216.34 80"},
                                          {"127.0.0.1 40001", "10.9.8.7 8080"},
                                          {"::1 5555", "2001:db8::1 443"}};
  check_streams(path, 3, cports, sent, addrs);
  check_tshark(path, &sent[0]);
}

/* Chunks larger than one IP packet: split into segments of the largest
 * size, each with a valid checksum, and the streams still reassemble byte
 * for byte (libpcap, and tshark's Follow TCP stream when installed). */
static void test_pcap_large_segments(void **state) {
  static const size_t sizes[] = {1, SEG_MAX_V4 - 1, SEG_MAX_V4, SEG_MAX_V4 + 1, SEG_MAX_V6,
                                 SEG_MAX_V6 + 1, 3 * SEG_MAX_V6 + 17, 200000};
  static const uint16_t cports[2] = {40100, 5600};
  char path[128], err[512], errbuf[PCAP_ERRBUF_SIZE];
  flt_chain_t ch = {0};
  flt_conn_t conns[2];
  sent_t sent[2];
  size_t big = 3 * SEG_MAX_V6 + 17 + 200000;
  uint8_t *data = malloc(big);
  (void)state;

  assert_non_null(data);
  for (size_t i = 0; i < big; i++)
    data[i] = (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
  path_in(path, sizeof(path), "big.pcap");
  void *pc = flt_pcap_new(path, err, sizeof(err));
  assert_non_null(pc);
  flt_pcap_set_slot(pc, flt_chain_add(&ch, &flt_pcap_ops, pc));
  memset(sent, 0, sizeof(sent));
  init_conn(&conns[0], 21, "127.0.0.1:40100", "93.184.216.34:80", 0);
  init_conn(&conns[1], 22, "[::1]:5600", "[2001:db8::1]:443", 1);
  for (int c = 0; c < 2; c++) {
    size_t off = 0;
    flt_emit_conn_open(&ch, &conns[c]);
    emit_data(&ch, &conns[c], &sent[c], FLT_DIR_REQUEST, "GET /big HTTP/1.1\r\n\r\n", 21);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      flt_dir_t dir = k % 3 == 2 ? FLT_DIR_REQUEST : FLT_DIR_RESPONSE;
      emit_data(&ch, &conns[c], &sent[c], dir, data + off % 1000, sizes[k]);
      off += sizes[k];
    }
    flt_emit_conn_close(&ch, &conns[c]);
  }
  flt_emit_shutdown(&ch);
  flt_pcap_free(pc);

  /* The file header says what the frames need: a full IP packet plus its
   * Ethernet header is more than 65535 bytes. */
  pcap_t *p = pcap_open_offline(path, errbuf);
  if (p == NULL) fail_msg("pcap_open_offline: %s", errbuf);
  assert_true(pcap_snapshot(p) >= 14 + 40 + 65535);
  pcap_close(p);
  check_streams(path, 2, cports, sent, NULL);
  if (system("command -v tshark >/dev/null 2>&1") == 0)
    check_tshark_follow(path, &sent[0]);
  for (int c = 0; c < 2; c++) {
    flt_strbuf_free(&sent[c].bytes[0]);
    flt_strbuf_free(&sent[c].bytes[1]);
  }
  free(data);
}

/* ---- the scenario: all three formats at once -------------------------------- */

static void test_har_jsonl_pcap(void **state) {
  char har_path[128], jl_path[128], pc_path[128], err[512];
  flt_chain_t ch = {0};
  flt_conn_t conns[3];
  sent_t sent[3];
  (void)state;

  make_bodies();
  path_in(har_path, sizeof(har_path), "t.har");
  path_in(jl_path, sizeof(jl_path), "t.jsonl");
  path_in(pc_path, sizeof(pc_path), "t.pcap");
  void *har = flt_har_new(har_path, 1 << 20, "9.9-test", err, sizeof(err));
  void *jl = flt_jsonl_new(jl_path, 1 << 20, err, sizeof(err));
  void *pc = flt_pcap_new(pc_path, err, sizeof(err));
  assert_true(har && jl && pc);
  flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
  flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
  flt_pcap_set_slot(pc, flt_chain_add(&ch, &flt_pcap_ops, pc));

  /* An empty HAR is already valid. */
  flt_emit_shutdown(&ch);
  cJSON_Delete(load_har(har_path, 0));

  memset(sent, 0, sizeof(sent));
  init_conn(&conns[0], 1, "127.0.0.1:40000", "", 0); /* see flows[0].connect_to */
  init_conn(&conns[1], 2, "127.0.0.1:40001", "", 0); /* never connected */
  init_conn(&conns[2], 3, "[::1]:5555", "[2001:db8::1]:443", 1);
  conns[1].server_port = 8080;
  snprintf(conns[1].server_host, sizeof(conns[1].server_host), "10.9.8.7");
  for (int i = 0; i < N_FLOWS; i++) {
    test_flow_t t = flows[i];
    int c = i < 5 ? 0 : i - 4;
    if (i == 1) t.resp_len = gz_len;
    flt_emit_conn_open(&ch, &conns[c]);
    run_flow(&ch, &conns[c], &sent[c], (uint64_t)i + 1, &t);
    /* Valid HAR after every flow, without closing anything. */
    flt_emit_shutdown(&ch);
    cJSON *doc = load_har(har_path, i + 1);
    for (int k = 0; k <= i; k++)
      check_har_entry(entry_at(doc, k), k);
    cJSON_Delete(doc);
    check_jsonl(jl_path, i + 1);
  }
  for (int c = 0; c < 3; c++)
    flt_emit_conn_close(&ch, &conns[c]);
  flt_emit_shutdown(&ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_pcap_free(pc);
  check_pcap(pc_path, sent);
  for (int c = 0; c < 3; c++) {
    flt_strbuf_free(&sent[c].bytes[0]);
    flt_strbuf_free(&sent[c].bytes[1]);
  }
}

/* ---- crash safety and threads --------------------------------------------- */

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

#define N_THREADS 4
#define FLOWS_PER_THREAD 25

typedef struct worker {
  const flt_chain_t *ch;
  int index;
  flt_conn_t conn;
  sent_t sent;
} worker_t;

/* One connection per thread, as the workers of the proxy do. */
static void *worker_main(void *arg) {
  worker_t *w = arg;
  char client[32];

  snprintf(client, sizeof(client), "127.0.0.1:%d", 41000 + w->index);
  init_conn(&w->conn, 100 + (uint64_t)w->index, client, "93.184.216.34:80", 0);
  flt_emit_conn_open(w->ch, &w->conn);
  for (int i = 0; i < FLOWS_PER_THREAD; i++)
    run_flow(w->ch, &w->conn, &w->sent, (uint64_t)(w->index * 1000 + i + 1), &flows[i % 2 ? 2 : 0]);
  flt_emit_conn_close(w->ch, &w->conn);
  return NULL;
}

static void test_concurrent_connections(void **state) {
  char har_path[128], jl_path[128], pc_path[128], err[512];
  flt_chain_t ch = {0};
  worker_t w[N_THREADS];
  pthread_t th[N_THREADS];
  (void)state;

  make_bodies();
  path_in(har_path, sizeof(har_path), "mt.har");
  path_in(jl_path, sizeof(jl_path), "mt.jsonl");
  path_in(pc_path, sizeof(pc_path), "mt.pcap");
  void *har = flt_har_new(har_path, 1 << 20, "9.9-test", err, sizeof(err));
  void *jl = flt_jsonl_new(jl_path, 1 << 20, err, sizeof(err));
  void *pc = flt_pcap_new(pc_path, err, sizeof(err));
  assert_true(har && jl && pc);
  flt_har_set_slot(har, flt_chain_add(&ch, &flt_har_ops, har));
  flt_jsonl_set_slot(jl, flt_chain_add(&ch, &flt_jsonl_ops, jl));
  flt_pcap_set_slot(pc, flt_chain_add(&ch, &flt_pcap_ops, pc));
  for (int i = 0; i < N_THREADS; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    w[i].ch = &ch;
    w[i].index = i;
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(th[i], NULL);
  flt_emit_shutdown(&ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_pcap_free(pc);

  cJSON_Delete(load_har(har_path, N_THREADS * FLOWS_PER_THREAD));
  char *text = slurp(jl_path, NULL);
  assert_int_equal(count_lines_with(text, "{\"id\":", "}"), N_THREADS * FLOWS_PER_THREAD);
  free(text);

  uint16_t cports[N_THREADS];
  sent_t sent[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    cports[i] = (uint16_t)(41000 + i);
    sent[i] = w[i].sent;
  }
  check_streams(pc_path, N_THREADS, cports, sent, NULL);
  for (int i = 0; i < N_THREADS; i++) {
    flt_strbuf_free(&sent[i].bytes[0]);
    flt_strbuf_free(&sent[i].bytes[1]);
  }
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
  flt_emit_conn_close(&ch, &c);
  flt_emit_shutdown(&ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_chain_free(&ch);
  flt_strbuf_free(&sent.bytes[0]);
  flt_strbuf_free(&sent.bytes[1]);
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

/* ---- write-behind ------------------------------------------------------------ */

/* Share of the file's pages in the page cache (mincore), or -1 when the
 * file system keeps files in memory anyway (tmpfs: nothing to drop). */
static double resident_share(const char *path) {
  struct statfs sfs;
  struct stat st;
  long page = sysconf(_SC_PAGESIZE);
  int fd = open(path, O_RDONLY);
  size_t pages, in = 0;

  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  if (fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC) {
    close(fd);
    return -1;
  }
  pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  assert_true(map != MAP_FAILED);
  unsigned char *vec = malloc(pages);
  assert_non_null(vec);
  assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
  for (size_t i = 0; i < pages; i++)
    in += vec[i] & 1;
  free(vec);
  munmap(map, (size_t)st.st_size);
  close(fd);
  return (double)in / (double)pages;
}

/* Files larger than two write-behind windows (32 MiB each) are complete
 * and readable, and their beginning is no longer held in the page cache. */
static void test_write_behind(void **state) {
  enum { CHUNK = 1200000, N_CHUNKS = 66, BODY = 2 << 20, N_BODIES = 40 }; /* 64 + 2 events */
  static const flt_header_t text_only[] = {H("Content-Type", "text/plain")};
  char pc_path[128], har_path[128], err[512];
  flt_chain_t pc_ch = {0}, har_ch = {0};
  flt_conn_t c, hc;
  sent_t sent, none;
  uint8_t *data = malloc(CHUNK + 256);
  char *body = malloc(BODY);
  (void)state;

  assert_true(data && body);
  for (size_t i = 0; i < CHUNK + 256; i++)
    data[i] = (uint8_t)(i * 7 + (i >> 9));
  memset(body, 'b', BODY);
  path_in(pc_path, sizeof(pc_path), "behind.pcap");
  path_in(har_path, sizeof(har_path), "behind.har");
  void *pc = flt_pcap_new(pc_path, err, sizeof(err));
  void *har = flt_har_new(har_path, BODY, "9.9-test", err, sizeof(err));
  assert_true(pc && har);
  flt_pcap_set_slot(pc, flt_chain_add(&pc_ch, &flt_pcap_ops, pc));
  flt_har_set_slot(har, flt_chain_add(&har_ch, &flt_har_ops, har));

  init_conn(&c, 31, "127.0.0.1:40200", "93.184.216.34:80", 0);
  memset(&sent, 0, sizeof(sent));
  flt_emit_conn_open(&pc_ch, &c);
  for (int i = 0; i < N_CHUNKS; i++)
    emit_data(&pc_ch, &c, &sent, i % 33 ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST, data + i % 256,
              CHUNK);
  flt_emit_conn_close(&pc_ch, &c);

  init_conn(&hc, 32, "127.0.0.1:40201", "93.184.216.34:80", 0);
  memset(&none, 0, sizeof(none));
  flt_emit_conn_open(&har_ch, &hc);
  for (int i = 0; i < N_BODIES; i++) {
    test_flow_t t = {.method = "GET",
                     .url = "http://example.test/big",
                     .target = "/big",
                     .req_h = get_h,
                     .n_req_h = 1,
                     .status = 200,
                     .reason = "OK",
                     .resp_h = text_only,
                     .n_resp_h = 1,
                     .resp_body = body,
                     .resp_len = BODY,
                     .chunk = 65536};
    run_flow(&har_ch, &hc, &none, (uint64_t)i + 1, &t);
    flt_strbuf_reset(&none.bytes[0]);
    flt_strbuf_reset(&none.bytes[1]);
  }
  flt_emit_conn_close(&har_ch, &hc);
  flt_emit_shutdown(&pc_ch);
  flt_emit_shutdown(&har_ch);
  flt_pcap_free(pc);
  flt_har_free(har);
  flt_strbuf_free(&none.bytes[0]);
  flt_strbuf_free(&none.bytes[1]);

  /* Before reading them back, which brings their pages in again. */
  for (int k = 0; k < 2; k++) {
    double share = resident_share(k ? har_path : pc_path);
    if (share < 0) {
      printf("tmpfs: skipping the page-cache check\n");
      break;
    }
    assert_true(share < 0.8); /* at least the first window was dropped */
  }
  static const uint16_t cport = 40200;
  check_streams(pc_path, 1, &cport, &sent, NULL);
  cJSON *doc = load_har(har_path, N_BODIES);
  for (int i = 0; i < N_BODIES; i++) {
    const char *text = get_str(get(get(entry_at(doc, i), "response"), "content"), "text");
    assert_int_equal(strlen(text), BODY);
    assert_int_equal(strspn(text, "b"), BODY);
  }
  cJSON_Delete(doc);
  flt_strbuf_free(&sent.bytes[0]);
  flt_strbuf_free(&sent.bytes[1]);
  free(data);
  free(body);
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

  /* An existing file others can read is kept as it is, and reported. */
  chmod(path, 0644);
  int saved = stderr_begin();
  void *kl = flt_keylog_new(path, err, sizeof(err));
  char *out = stderr_end(saved);
  assert_non_null(kl);
  assert_int_equal(count_lines_with(out, path, "0644"), 1);
  free(out);
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
      cmocka_unit_test(test_har_jsonl_pcap),
      cmocka_unit_test(test_pcap_large_segments),
      cmocka_unit_test(test_har_survives_sigkill),
      cmocka_unit_test(test_concurrent_connections),
      cmocka_unit_test(test_har_jsonl_share_records),
      cmocka_unit_test(test_write_behind),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_keylog),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_write_errors),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
