/* test_expr.c — the match-expression language (filters/expr/expr.h): every term
 * and operator against synthetic flows, quoting, precedence, and the exact
 * text of syntax errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"

#define JA3 "e7d705a3286e19ea42f587b344ee6865"
#define JA4 "t13d1516h2_8daaf6152771_e5627efa2ab1"

#define HDR(n, v) \
  { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }

/* One HTTPS flow: GET https://www.example.com/static/app.js?v=2 answered by
 * 200 with JavaScript, over an intercepted TLS 1.3 connection. */
typedef struct fixture {
  flt_conn_t conn;
  flt_header_t req_h[4];
  flt_header_t resp_h[3];
  flt_flow_t flow;
  char url[128];
} fixture_t;

static void fixture_init(fixture_t *fx) {
  static const flt_header_t req_h[] = {
      HDR("Host", "www.example.com:443"),
      HDR("User-Agent", "curl/8.0.1"),
      HDR("Accept", "*/*"),
      HDR("Content-Type", "application/x-www-form-urlencoded"),
  };
  static const flt_header_t resp_h[] = {
      HDR("Content-Type", "application/javascript; charset=utf-8"),
      HDR("Cache-Control", "max-age=60"),
      HDR("Server", "nginx"),
  };

  memset(fx, 0, sizeof(*fx));
  memcpy(fx->req_h, req_h, sizeof(req_h));
  memcpy(fx->resp_h, resp_h, sizeof(resp_h));
  strcpy(fx->url, "https://www.example.com/static/app.js?v=2");

  flt_conn_t *c = &fx->conn;
  strcpy(c->client, "127.0.0.1:51000");
  strcpy(c->server_host, "www.example.com");
  c->server_port = 443;
  strcpy(c->server_addr, "93.184.216.34:443");
  c->kind = FLT_CONN_HTTPS;
  c->client_tls = 1;
  c->upstream_tls = 1;
  strcpy(c->sni, "www.example.com");
  strcpy(c->tls_version, "TLSv1.3");
  strcpy(c->alpn, "http/1.1");
  strcpy(c->ja3, JA3);
  strcpy(c->ja4, JA4);

  flt_flow_t *f = &fx->flow;
  f->conn = c;
  strcpy(f->scheme, "https");
  f->url = fx->url;
  f->req.http_major = f->req.http_minor = 1;
  f->req.method = "GET";
  f->req.url = "/static/app.js?v=2";
  f->req.headers = fx->req_h;
  f->req.n_headers = 4;
  f->resp.http_major = f->resp.http_minor = 1;
  f->resp.status = 200;
  f->resp.reason = "OK";
  f->resp.headers = fx->resp_h;
  f->resp.n_headers = 3;
  f->has_response = 1;
}

static flt_expr_t *compile_ok(const char *text, int allowed) {
  char err[512] = "";
  flt_expr_t *e = flt_expr_compile(text, allowed, err, sizeof(err));
  if (e == NULL) fail_msg("'%s' did not compile:\n%s", text, err);
  return e;
}

/* Compiles, matches one flow, frees. */
static int match_b(const char *text, const fixture_t *fx, const flt_expr_bodies_t *b) {
  flt_expr_t *e = compile_ok(text, FLT_EXPR_ALL_TERMS);
  int hit = flt_expr_match_flow(e, &fx->flow, b);
  flt_expr_free(e);
  return hit;
}

static int match(const char *text, const fixture_t *fx) {
  return match_b(text, fx, NULL);
}

static int match_conn(const char *text, int allowed, const flt_conn_t *c) {
  flt_expr_t *e = compile_ok(text, allowed);
  int hit = flt_expr_match_conn(e, c);
  flt_expr_free(e);
  return hit;
}

#define YES(text) assert_true(match((text), &fx))
#define NO(text) assert_false(match((text), &fx))

/* ---- HTTP terms ------------------------------------------------------- */

static void test_request_terms(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  YES("~all");
  YES("~http");
  NO("~tcp");
  YES("~m GET");
  YES("~m ^get$"); /* case-insensitive */
  NO("~m POST");
  YES("~u /static/app\\.js");
  NO("~u /other");
  YES("~d ^www\\.example\\.com$");
  NO("~d example\\.org");
  YES("~h \"^user-agent: curl/\""); /* one header as "name: value" */
  YES("~hq 'accept: \\*/\\*'");
  NO("~hq server");
  YES("~hs '^server: nginx$'");
  NO("~hs user-agent");
  YES("~h cache-control");
  YES("~tq form-urlencoded");
  NO("~tq javascript");
  YES("~ts javascript");
  YES("~t javascript");
  YES("~t urlencoded");
  NO("~t text/html");
  YES("~src ^127\\.0\\.0\\.1:");
  NO("~src 10\\.");
  YES("~dst :443$");
  NO("~dst :80$");
}

static void test_response_terms(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  YES("~c 200");
  NO("~c 404");
  YES("~s");
  NO("~q");
  NO("~e");
  YES("~a");

  fx.flow.has_response = 0; /* still waiting */
  NO("~s");
  YES("~q");
  NO("~c 200");
  NO("~a");
  NO("~hs server");
  NO("~ts javascript");
  YES("~t urlencoded"); /* the request's type still counts */
  YES("~h user-agent");
  NO("~h server");

  fx.flow.error = "upstream reset the connection";
  YES("~e");
}

static void test_domain_sources(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  /* ~d looks at the connection's host, the Host header and the URL host,
   * each without its port. */
  strcpy(fx.conn.server_host, "proxy.internal");
  YES("~d ^www\\.example\\.com$");
  fx.req_h[0] = (flt_header_t)HDR("Host", "host.example:8080");
  YES("~d ^host\\.example$");
  YES("~d ^www\\.example\\.com$"); /* from the URL */
  strcpy(fx.url, "http://user:pw@[2001:db8::1]:8080/x");
  YES("~d ^2001:db8::1$");
  NO("~d 8080");
  YES("~d ^proxy\\.internal$");
  fx.flow.conn = NULL; /* a flow without its connection: no conn facts */
  NO("~d ^proxy\\.internal$");
  NO("~sni .");
  YES("~http");
}

static void test_asset(void **state) {
  static const char *const assets[] = {"text/css",
                                       "image/png",
                                       "font/woff2",
                                       "text/javascript",
                                       "application/x-javascript",
                                       "application/font-woff",
                                       "IMAGE/SVG+XML"};
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
    fx.resp_h[0].value = assets[i];
    fx.resp_h[0].value_len = strlen(assets[i]);
    assert_true(match("~a", &fx));
  }
  fx.resp_h[0] = (flt_header_t)HDR("Content-Type", "text/html");
  NO("~a");
  fx.flow.resp.n_headers = 0;
  NO("~a");
  NO("~ts .");
}

static void test_websocket(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  NO("~websocket");
  fx.req_h[2] = (flt_header_t)HDR("Upgrade", "WebSocket");
  YES("~websocket");
  fx.req_h[2] = (flt_header_t)HDR("Upgrade", "h2c");
  NO("~websocket");
  fx.flow.resp.status = 101;
  fx.resp_h[2] = (flt_header_t)HDR("Upgrade", "websocket");
  YES("~websocket");
  fx.flow.resp.status = 200; /* a 200 with Upgrade is no switch */
  NO("~websocket");
}

static void test_body_terms(void **state) {
  static const uint8_t binary[] = {0x89, 'P', 'N', 'G', 0xff, 0xfe, 0x00,
                                   's',  'e', 'c', 'r', 'e',  't',  0xc3};
  fixture_t fx;
  flt_expr_bodies_t b = {(const uint8_t *)"user=alice&pass=hunter2", 23, binary, sizeof(binary)};
  (void)state;
  fixture_init(&fx);

  assert_true(match_b("~b hunter2", &fx, &b));
  assert_true(match_b("~bq ^user=ALICE", &fx, &b));
  assert_false(match_b("~bs hunter2", &fx, &b));
  /* Invalid UTF-8 in a body is searched safely, the valid parts still match. */
  assert_true(match_b("~bs png", &fx, &b));
  assert_true(match_b("~bs secret", &fx, &b));
  assert_true(match_b("~b secret", &fx, &b));
  assert_false(match_b("~bq secret", &fx, &b));
  assert_true(match_b("~bs '\\x00secret'", &fx, &b));
  /* No bodies, or empty ones: body terms never match. */
  assert_false(match_b("~b .", &fx, NULL));
  assert_true(match_b("!~b .", &fx, NULL));
  b.req_len = 0;
  assert_false(match_b("~bq ''", &fx, &b));

  flt_expr_t *e = compile_ok("~m POST & ~bq token", FLT_EXPR_ALL_TERMS);
  assert_true(flt_expr_needs_body(e));
  flt_expr_free(e);
  e = compile_ok("~m POST ~h token", FLT_EXPR_ALL_TERMS);
  assert_false(flt_expr_needs_body(e));
  flt_expr_free(e);
}

/* ---- TLS and connection terms -------------------------------------------- */

static void test_tls_terms(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  YES("~sni ^www\\.example\\.com$");
  NO("~sni example\\.org");
  YES("~tls 1.3");
  YES("~tls TLSv1.3");
  NO("~tls 1.2");
  strcpy(fx.conn.tls_version, "TLSv1");
  YES("~tls 1.0");
  NO("~tls 1.1");
  YES("~alpn ^http/1\\.1$");
  NO("~alpn h2");
  YES("~ja3 " JA3);
  YES("~ja3 E7D705A3286E19EA42F587B344EE6865"); /* hex in any case */
  NO("~ja3 00000000000000000000000000000000");
  YES("~ja4 " JA4);
  NO("~ja4 t13d1516h2_8daaf6152771_000000000000");
  NO("~ja4 t13d1516h2"); /* exact, not a prefix */
  YES("~intercepted");
  NO("~passthrough");
  fx.conn.passthrough = 1;
  NO("~intercepted");
  YES("~passthrough");
}

static void test_match_conn(void **state) {
  fixture_t fx;
  flt_conn_t *c = &fx.conn;
  (void)state;
  fixture_init(&fx);

  assert_true(match_conn("~d example\\.com", FLT_EXPR_HOST_TERMS, c));
  assert_true(match_conn("~sni ^www\\. & ~dst :443$", FLT_EXPR_HOST_TERMS, c));
  assert_false(match_conn("!~d example\\.com", FLT_EXPR_HOST_TERMS, c));
  assert_true(match_conn("~d nope | ~dst 93\\.184", FLT_EXPR_HOST_TERMS, c));
  /* Full-language expressions: connection facts work, flow terms are false. */
  assert_true(match_conn("~tls 1.3 ~alpn http ~src 127\\. ~intercepted ~http", 0, c));
  assert_false(match_conn("~m GET", FLT_EXPR_ALL_TERMS, c));
  assert_true(match_conn("!~c 200", FLT_EXPR_ALL_TERMS, c));
  assert_false(match_conn("~tcp", FLT_EXPR_ALL_TERMS, c));
  c->kind = FLT_CONN_RAW_TLS;
  assert_true(match_conn("~tcp", FLT_EXPR_ALL_TERMS, c));
  assert_false(match_conn("~http", FLT_EXPR_ALL_TERMS, c));
  c->kind = FLT_CONN_RAW;
  assert_true(match_conn("~tcp & ~ja3 " JA3, FLT_EXPR_ALL_TERMS, c));
}

/* ---- operators, quoting, case ------------------------------------------------ */

static void test_operators(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  YES("!~m POST");
  NO("!~m GET");
  YES("!!~m GET");
  YES("~m GET & ~c 200");
  NO("~m GET & ~c 404");
  YES("~m POST | ~c 200");
  NO("~m POST | ~c 404");
  YES("~m GET ~c 200"); /* adjacency is & */
  NO("~m GET ~c 404");
  YES("(~m POST | ~m GET) & ~c 200");
  YES("!(~m POST | ~c 404)");
  NO("!(~m POST | ~c 200)");
  YES("((((~m GET))))");
  YES("~q|~s"); /* after a term without argument, | is an operator */
  YES("!~q&~s");
}

static void test_precedence(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  /* & binds tighter than |: GET | (POST & 404). */
  YES("~m GET | ~m POST & ~c 404");
  NO("(~m GET | ~m POST) & ~c 404");
  /* ! binds tighter than &: (!POST) & 200. */
  YES("!~m POST & ~c 200");
  NO("!(~m GET & ~c 200)");
  /* Adjacency sits at &'s level too: POST | (GET & 200). */
  YES("~m POST | ~m GET ~c 200");
  NO("~m POST | ~m GET ~c 404");
  /* ! > & > | together: (!GET & 200) | (GET & !404). */
  YES("!~m GET & ~c 200 | ~m GET & !~c 404");
  NO("!~m GET & ~c 200 | ~m GET & !~c 200");
}

static void test_quoting(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  fx.req_h[1] = (flt_header_t)HDR("User-Agent", "Mozilla/5.0 (X11; \"quoted\" 'single')");
  YES("~h \"Mozilla/5.0 \\(X11\"");      /* spaces inside double quotes */
  YES("~h 'Mozilla/5.0 \\(X11'");        /* and single quotes */
  YES("~h '\"quoted\" \\'single\\''");   /* the other quote needs no escape */
  YES("~h \"\\\"quoted\\\" 'single'\""); /* escaped double quotes */
  NO("~h 'Mozilla/4'");
  YES("~h \"x11;\\s+\\\"\"");            /* regex escapes survive */
  YES("\"app\\.js\\?v=2$\"");            /* a quoted bare regex is ~u */
  YES("~m 'GET' ~c \"200\" ~tls '1.3'"); /* quoted non-regex arguments */
  YES("~u \"\"");                        /* an empty regex matches */
  /* As in mitmproxy, an unquoted regex runs up to a blank: | and & inside it
   * are regex text. "~m POST|GET" is one regex; "~m GET&~c 200" is the regex
   * "GET&" and ~c 200. Quotes or blanks separate them. */
  YES("~m POST|GET");
  NO("~m GET&~c 200");
  YES("~m GET & ~c 200");
  NO("~m 'POST'|'nothing'"); /* quotes end the words: ~m POST | ~u nothing */
  YES("~m 'POST'|'static'");
  YES("~c 200&~m GET"); /* a status code is no regex: & ends it */
  YES("~tls 1.3|~m POST");
}

static void test_bare_regex_and_case(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  YES("app\\.js");
  YES("APP\\.JS");
  NO("index\\.html");
  YES("example static"); /* two bare regexes: both ~u, joined by & */
  NO("example nothing");
  YES("nothing | static");
  YES("!nothing");
  YES("~d WWW\\.EXAMPLE");
  YES("~sni EXAMPLE\\.COM$");
  YES("~h USER-AGENT");
  YES("~m get");
  /* Caseless beyond ASCII: the pattern is UTF-8, so ü and Ü are one letter. */
  fx.req_h[2] = (flt_header_t)HDR("X-Greeting", "Gr\xc3\xbc\xc3\x9f Gott");
  YES("~h 'x-greeting: GR\xc3\x9c\xc3\x9f'");
  YES("~hq 'gr.\xc3\x9f'"); /* . is one character, not one byte */
  /* A header value that is not UTF-8 (Latin-1) is searched safely. */
  fx.req_h[2] = (flt_header_t)HDR("X-Latin1", "caf\xe9 au lait");
  YES("~h 'au lait'");
  NO("~h 'caf\xc3\xa9'");
}

/* ---- syntax errors ------------------------------------------------------------ */

typedef struct bad_case {
  const char *text;
  int allowed;
  const char *err;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"~m GET ~d", 0,
     "column 8: expected a regular expression after ~d\n"
     "  ~m GET ~d\n"
     "         ^"},
    {"~m GET & ~zz", 0,
     "column 10: unknown term ~zz\n"
     "  ~m GET & ~zz\n"
     "           ^"},
    {"~", 0,
     "column 1: expected a term name after ~\n"
     "  ~\n"
     "  ^"},
    {"~m GET &", 0,
     "column 9: expected an expression after &\n"
     "  ~m GET &\n"
     "          ^"},
    {"~d a | & ~d b", 0,
     "column 8: expected an expression after |\n"
     "  ~d a | & ~d b\n"
     "         ^"},
    {"~s & !", 0,
     "column 7: expected an expression after !\n"
     "  ~s & !\n"
     "        ^"},
    {"| ~s", 0,
     "column 1: expected an expression before |\n"
     "  | ~s\n"
     "  ^"},
    {"(~m GET | ~m POST", 0,
     "column 18: expected ) to close ( at column 1\n"
     "  (~m GET | ~m POST\n"
     "                   ^"},
    {"~q (~s)) ~e", 0,
     "column 8: unexpected ) without a matching (\n"
     "  ~q (~s)) ~e\n"
     "         ^"},
    {"~s ()", 0,
     "column 5: expected an expression after (\n"
     "  ~s ()\n"
     "      ^"},
    {"~h \"content-type: text", 0,
     "column 23: expected \" to close the quote at column 4\n"
     "  ~h \"content-type: text\n"
     "                        ^"},
    {"~u 'it\\'s", 0,
     "column 10: expected ' to close the quote at column 4\n"
     "  ~u 'it\\'s\n"
     "           ^"},
    {"", 0,
     "column 1: empty expression\n"
     "  \n"
     "  ^"},
    {"  ", 0,
     "column 3: empty expression\n"
     "    \n"
     "    ^"},
    {"~u '(js|css'", 0,
     "column 12: invalid regular expression for ~u: missing closing parenthesis (at offset 7)\n"
     "  ~u '(js|css'\n"
     "             ^"},
    {"~h a[", 0,
     "column 6: invalid regular expression for ~h: missing terminating ] for character class "
     "(at offset 2)\n"
     "  ~h a[\n"
     "       ^"},
    {"~d *.example.com", 0,
     "column 4: invalid regular expression for ~d: quantifier does not follow a repeatable item "
     "(at offset 0)\n"
     "  ~d *.example.com\n"
     "     ^"},
    {"~u (js|css)$", 0,
     "column 1: expected a regular expression after ~u (quote one that starts with a "
     "parenthesis)\n"
     "  ~u (js|css)$\n"
     "  ^"},
    {"~c OK", 0,
     "column 4: expected a status code (100-999) after ~c\n"
     "  ~c OK\n"
     "     ^"},
    {"~c 20", 0,
     "column 4: expected a status code (100-999) after ~c\n"
     "  ~c 20\n"
     "     ^"},
    {"~c", 0,
     "column 1: expected a status code (100-999) after ~c\n"
     "  ~c\n"
     "  ^"},
    {"~tls 1.4", 0,
     "column 6: expected a TLS version (1.0, 1.1, 1.2 or 1.3) after ~tls\n"
     "  ~tls 1.4\n"
     "       ^"},
    {"~tls SSLv3", 0,
     "column 6: expected a TLS version (1.0, 1.1, 1.2 or 1.3) after ~tls\n"
     "  ~tls SSLv3\n"
     "       ^"},
    {"~ja3 e7d705a3", 0,
     "column 6: expected a JA3 hash (32 hex digits) after ~ja3\n"
     "  ~ja3 e7d705a3\n"
     "       ^"},
    {"~ja4 t13d-1516", 0,
     "column 6: expected a JA4 fingerprint after ~ja4\n"
     "  ~ja4 t13d-1516\n"
     "       ^"},
    {"~m", FLT_EXPR_HOST_TERMS,
     "column 1: ~m cannot be used here: --ignore-hosts accepts only ~d, ~sni and ~dst\n"
     "  ~m\n"
     "  ^"},
    {"~d a | ~sni b | ~tls 1.3", FLT_EXPR_HOST_TERMS,
     "column 17: ~tls cannot be used here: --ignore-hosts accepts only ~d, ~sni and ~dst\n"
     "  ~d a | ~sni b | ~tls 1.3\n"
     "                  ^"},
    {"example.com", FLT_EXPR_HOST_TERMS,
     "column 1: a bare regular expression (~u) cannot be used here: --ignore-hosts accepts only "
     "~d, ~sni and ~dst\n"
     "  example.com\n"
     "  ^"},
    /* Columns count characters, so the caret sits under the right one after
     * UTF-8 text; a tab is echoed as a space to keep the alignment. */
    {"~u caf\xc3\xa9 ~zz", 0,
     "column 9: unknown term ~zz\n"
     "  ~u caf\xc3\xa9 ~zz\n"
     "          ^"},
    {"~q\t~x", 0,
     "column 4: unknown term ~x\n"
     "  ~q ~x\n"
     "     ^"},
};

static void test_syntax_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    char err[512];
    memset(err, 'X', sizeof(err));
    flt_expr_t *e = flt_expr_compile(bad_cases[i].text, bad_cases[i].allowed, err, sizeof(err));
    if (e != NULL) fail_msg("'%s' compiled", bad_cases[i].text);
    if (strcmp(err, bad_cases[i].err) != 0)
      fail_msg("'%s':\n got: %s\nwant: %s", bad_cases[i].text, err, bad_cases[i].err);
  }
}

static void test_error_buffer_edges(void **state) {
  char small[12];
  (void)state;

  /* A short buffer gets a truncated, still terminated message. */
  assert_null(flt_expr_compile("~m GET ~d", 0, small, sizeof(small)));
  assert_string_equal(small, "column 8: e");
  /* No buffer at all is fine too. */
  assert_null(flt_expr_compile("~zz", 0, NULL, 0));
  assert_null(flt_expr_compile(NULL, 0, small, sizeof(small)));
  assert_null(flt_expr_compile("~s", 7, small, sizeof(small)));
}

/* ---- caps ------------------------------------------------------------------------ */

static void test_length_cap(void **state) {
  char *text = malloc(FLT_EXPR_MAX_LEN + 2);
  char err[256];
  (void)state;

  /* "~s ~s ~s ..." exactly at the cap compiles; one byte more does not. */
  for (size_t i = 0; i < FLT_EXPR_MAX_LEN; i++)
    text[i] = "~s "[i % 3];
  text[FLT_EXPR_MAX_LEN - 1] = ' '; /* 4096 = 3 * 1365 + 1: no dangling ~ */
  text[FLT_EXPR_MAX_LEN] = '\0';
  flt_expr_t *e = compile_ok(text, FLT_EXPR_ALL_TERMS);
  fixture_t fx;
  fixture_init(&fx);
  assert_true(flt_expr_match_flow(e, &fx.flow, NULL));
  flt_expr_free(e);

  text[FLT_EXPR_MAX_LEN] = 's';
  text[FLT_EXPR_MAX_LEN + 1] = '\0';
  assert_null(flt_expr_compile(text, 0, err, sizeof(err)));
  assert_string_equal(err, "expression is too long (the limit is 4096 bytes)");
  free(text);
}

static void test_depth_cap(void **state) {
  char text[3 * FLT_EXPR_MAX_DEPTH + 16], err[1024], want[1024];
  size_t n = 0;
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  /* 63 parentheses and one ! nest exactly FLT_EXPR_MAX_DEPTH deep. */
  for (int i = 0; i < FLT_EXPR_MAX_DEPTH - 1; i++)
    text[n++] = '(';
  n += (size_t)sprintf(text + n, "!~q");
  for (int i = 0; i < FLT_EXPR_MAX_DEPTH - 1; i++)
    text[n++] = ')';
  text[n] = '\0';
  assert_true(match(text, &fx));

  /* One more level is an error at the ! that goes too deep, not a crash. */
  n = 0;
  for (int i = 0; i < FLT_EXPR_MAX_DEPTH; i++)
    text[n++] = '(';
  n += (size_t)sprintf(text + n, "!~q");
  text[n] = '\0';
  assert_null(flt_expr_compile(text, 0, err, sizeof(err)));
  snprintf(want, sizeof(want), "column 65: nested deeper than 64 levels\n  %s\n  %*s^", text, 64,
           "");
  assert_string_equal(err, want);

  /* Long runs of & and | are flat, not deep. */
  char *chain = malloc(FLT_EXPR_MAX_LEN + 1);
  n = 0;
  while (n + 7 <= FLT_EXPR_MAX_LEN)
    n += (size_t)sprintf(chain + n, "~q | ");
  sprintf(chain + n, "~s");
  assert_true(match(chain, &fx));
  free(chain);
}

/* ---- threads ------------------------------------------------------------------- */

typedef struct thread_job {
  const flt_expr_t *e;
  const fixture_t *fx;
  int hits;
} thread_job_t;

static void *run_matches(void *arg) {
  thread_job_t *job = arg;
  flt_expr_bodies_t b = {(const uint8_t *)"a=1", 3, (const uint8_t *)"var x = 1;", 10};
  for (int i = 0; i < 2000; i++)
    job->hits += flt_expr_match_flow(job->e, &job->fx->flow, &b);
  return NULL;
}

static void test_shared_between_threads(void **state) {
  fixture_t fx;
  pthread_t t[4];
  thread_job_t jobs[4];
  (void)state;
  fixture_init(&fx);

  flt_expr_t *e = compile_ok("~d example & (~bs 'var \\w+' | ~h nope) & ~ts javascript", 0);
  for (int i = 0; i < 4; i++) {
    jobs[i] = (thread_job_t){e, &fx, 0};
    assert_int_equal(pthread_create(&t[i], NULL, run_matches, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(jobs[i].hits, 2000);
  }
  flt_expr_free(e);
}

static void test_null_arguments(void **state) {
  fixture_t fx;
  (void)state;
  fixture_init(&fx);

  flt_expr_t *e = compile_ok("~all", 0);
  assert_false(flt_expr_match_flow(NULL, &fx.flow, NULL));
  assert_false(flt_expr_match_flow(e, NULL, NULL));
  assert_false(flt_expr_match_conn(e, NULL));
  assert_false(flt_expr_needs_body(NULL));
  flt_expr_free(e);
  flt_expr_free(NULL);

  /* Heads without headers or method are matched without crashing. */
  fx.flow.req.headers = NULL;
  fx.flow.resp.headers = NULL;
  fx.flow.req.method = NULL;
  fx.flow.url = NULL;
  fx.flow.req.url = NULL;
  NO("~h . | ~m . | ~u . | ~t . | ~websocket");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_terms),
      cmocka_unit_test(test_response_terms),
      cmocka_unit_test(test_domain_sources),
      cmocka_unit_test(test_asset),
      cmocka_unit_test(test_websocket),
      cmocka_unit_test(test_body_terms),
      cmocka_unit_test(test_tls_terms),
      cmocka_unit_test(test_match_conn),
      cmocka_unit_test(test_operators),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_quoting),
      cmocka_unit_test(test_bare_regex_and_case),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_error_buffer_edges),
      cmocka_unit_test(test_length_cap),
      cmocka_unit_test(test_depth_cap),
      cmocka_unit_test(test_shared_between_threads),
      cmocka_unit_test(test_null_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
