/* expr_eval.c — evaluates a compiled expression against a flow or a
 * connection. Nothing here writes to the expression: the only mutable state
 * of a match is the evaluation context on the caller's stack, which is what
 * lets worker threads share one compiled expression. */
#include "filters/expr/expr_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct expr_eval_ctx {
  const flt_expr_t *e;
  const flt_flow_t *f; /* NULL when matching a connection */
  const flt_conn_t *c; /* may be NULL (a flow without its connection) */
  const flt_expr_bodies_t *bodies;
  pcre2_match_data *md; /* created at the first regex search of this call */
} expr_eval_ctx_t;

/* Room for "name: value" on the stack; longer header lines go to the heap. */
#define EXPR_HEADER_LINE_STACK 512

/* ---- small searches ----------------------------------------------------- */

static int re_search(expr_eval_ctx_t *x, const pcre2_code *re, const void *s, size_t len) {
  int rc;

  if (s == NULL) return 0;
  if (x->md == NULL && (x->md = pcre2_match_data_create(1, NULL)) == NULL) return 0;
  /* A limit hit or any other PCRE2 error counts as "no match". An ovector
   * too small (rc 0) is still a match: only the yes/no is used. */
  rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, x->md, x->e->mctx);
  return rc >= 0;
}

/* For the NUL-terminated fixed-size fields of flt_conn_t. */
#define FIELD_LEN(field) strnlen((field), sizeof(field))

static int re_cstr(expr_eval_ctx_t *x, const pcre2_code *re, const char *s) {
  return s != NULL && re_search(x, re, s, strlen(s));
}

static int ci_contains(const char *hay, size_t hay_len, const char *needle) {
  size_t n = strlen(needle);

  for (size_t i = 0; n <= hay_len && i <= hay_len - n; i++) {
    if (strncasecmp(hay + i, needle, n) == 0) return 1;
  }
  return 0;
}

static int name_is(const flt_header_t *h, const char *name) {
  return h->name != NULL && h->name_len == strlen(name) &&
         strncasecmp(h->name, name, h->name_len) == 0;
}

/* ---- headers --------------------------------------------------------------- */

/* One header as the line "name: value", the subject of ~h. */
static int header_line_matches(expr_eval_ctx_t *x, const pcre2_code *re, const flt_header_t *h) {
  char stack[EXPR_HEADER_LINE_STACK];
  size_t len = h->name_len + 2 + h->value_len;
  char *line = len <= sizeof(stack) ? stack : malloc(len);
  int hit;

  if (line == NULL) return 0;
  if (h->name_len > 0) memcpy(line, h->name, h->name_len);
  memcpy(line + h->name_len, ": ", 2);
  if (h->value_len > 0) memcpy(line + h->name_len + 2, h->value, h->value_len);
  hit = re_search(x, re, line, len);
  if (line != stack) free(line);
  return hit;
}

static int any_header_matches(expr_eval_ctx_t *x, const pcre2_code *re, const flt_head_t *head) {
  if (head->headers == NULL) return 0;
  for (size_t i = 0; i < head->n_headers; i++) {
    if (header_line_matches(x, re, &head->headers[i])) return 1;
  }
  return 0;
}

/* mitmproxy searches every Content-Type field, not only the first. */
static int content_type_matches(expr_eval_ctx_t *x, const pcre2_code *re, const flt_head_t *head) {
  if (head->headers == NULL) return 0;
  for (size_t i = 0; i < head->n_headers; i++) {
    const flt_header_t *h = &head->headers[i];
    if (name_is(h, "content-type") && h->value != NULL && re_search(x, re, h->value, h->value_len))
      return 1;
  }
  return 0;
}

static int header_contains(const flt_head_t *head, const char *name, const char *needle) {
  if (head->headers == NULL) return 0;
  for (size_t i = 0; i < head->n_headers; i++) {
    const flt_header_t *h = &head->headers[i];
    if (name_is(h, name) && h->value != NULL && ci_contains(h->value, h->value_len, needle))
      return 1;
  }
  return 0;
}

/* mitmproxy's ~a: a response whose Content-Type is one of these. Its
 * patterns are unanchored searches ("image/.*"), hence substring tests;
 * media types are case-insensitive, so the tests are too. */
static int is_asset(const flt_flow_t *f) {
  static const char *const kinds[] = {
      "text/javascript", "application/x-javascript", "application/javascript", "text/css", "image/",
      "font/",           "application/font"};

  if (!f->has_response) return 0;
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    if (header_contains(&f->resp, "content-type", kinds[i])) return 1;
  }
  return 0;
}

/* ---- hosts ------------------------------------------------------------------- */

/* The host of an authority "user@host:port" / "[v6]:port", narrowed in
 * place to {*s, *len}, without port and brackets (as mitmproxy's host). */
static void authority_host(const char **s, size_t *len) {
  const char *p = *s;
  size_t n = *len;
  const char *at = memrchr(p, '@', n);

  if (at != NULL) {
    n -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  if (n > 0 && p[0] == '[') {
    const char *close = memchr(p, ']', n);
    *s = p + 1;
    *len = close != NULL ? (size_t)(close - p - 1) : n - 1;
    return;
  }
  const char *colon = memchr(p, ':', n);
  *s = p;
  *len = colon != NULL ? (size_t)(colon - p) : n;
}

static int url_host_matches(expr_eval_ctx_t *x, const pcre2_code *re, const char *url) {
  const char *sep, *start;
  size_t len, n;

  if (url == NULL || (sep = strstr(url, "://")) == NULL) return 0;
  start = sep + 3;
  len = strcspn(start, "/?#");
  n = len;
  authority_host(&start, &n);
  return re_search(x, re, start, n);
}

static int domain_matches(expr_eval_ctx_t *x, const pcre2_code *re) {
  if (x->c != NULL && re_search(x, re, x->c->server_host, FIELD_LEN(x->c->server_host))) return 1;
  if (x->f == NULL) return 0;
  if (x->f->req.headers != NULL) {
    for (size_t i = 0; i < x->f->req.n_headers; i++) {
      const flt_header_t *h = &x->f->req.headers[i];
      const char *host = h->value;
      size_t n = h->value_len;
      if (!name_is(h, "host") || host == NULL) continue;
      authority_host(&host, &n);
      if (re_search(x, re, host, n)) return 1;
    }
  }
  return url_host_matches(x, re, x->f->url);
}

/* OpenSSL names TLS 1.0 "TLSv1"; the others "TLSv1.N". Returns N, or -1. */
static int tls_minor(const char *v, size_t cap) {
  size_t n = strnlen(v, cap);

  if (n == 5 && memcmp(v, "TLSv1", 5) == 0) return 0;
  if (n == 7 && memcmp(v, "TLSv1.", 6) == 0 && v[6] >= '0' && v[6] <= '3') return v[6] - '0';
  return -1;
}

/* ---- terms ------------------------------------------------------------------- */

/* Terms that are facts of the connection; valid with or without a flow. */
static int conn_term(expr_eval_ctx_t *x, const expr_node_t *n) {
  const flt_conn_t *c = x->c;
  int raw = c != NULL && (c->kind == FLT_CONN_RAW || c->kind == FLT_CONN_RAW_TLS);

  switch (n->term->id) {
    case EXPR_T_ALL:
      return 1;
    case EXPR_T_DOMAIN:
      return domain_matches(x, n->re);
    case EXPR_T_HTTP:
      return c != NULL ? !raw : x->f != NULL;
    case EXPR_T_TCP:
      return raw;
    default:
      break;
  }
  if (c == NULL) return 0;
  switch (n->term->id) {
    case EXPR_T_DST:
      return re_search(x, n->re, c->server_addr, FIELD_LEN(c->server_addr));
    case EXPR_T_SRC:
      return re_search(x, n->re, c->client, FIELD_LEN(c->client));
    case EXPR_T_SNI:
      return re_search(x, n->re, c->sni, FIELD_LEN(c->sni));
    case EXPR_T_ALPN:
      return re_search(x, n->re, c->alpn, FIELD_LEN(c->alpn));
    case EXPR_T_TLS:
      return tls_minor(c->tls_version, sizeof(c->tls_version)) == n->num;
    case EXPR_T_JA3:
      return strncasecmp(c->ja3, n->lit, sizeof(c->ja3)) == 0;
    case EXPR_T_JA4:
      return strncmp(c->ja4, n->lit, sizeof(c->ja4)) == 0;
    case EXPR_T_INTERCEPTED:
      return c->client_tls && !c->passthrough;
    case EXPR_T_PASSTHROUGH:
      return c->passthrough != 0;
    default:
      return 0;
  }
}

static int body_matches(expr_eval_ctx_t *x, const pcre2_code *re, int req, int resp) {
  const flt_expr_bodies_t *b = x->bodies;

  if (b == NULL) return 0;
  /* As in mitmproxy, an empty body matches nothing, not even "". */
  if (req && b->req != NULL && b->req_len > 0 && re_search(x, re, b->req, b->req_len)) return 1;
  return resp && b->resp != NULL && b->resp_len > 0 && re_search(x, re, b->resp, b->resp_len);
}

static int is_websocket(const flt_flow_t *f) {
  if (header_contains(&f->req, "upgrade", "websocket")) return 1;
  return f->has_response && f->resp.status == 101 &&
         header_contains(&f->resp, "upgrade", "websocket");
}

static int flow_term(expr_eval_ctx_t *x, const expr_node_t *n) {
  const flt_flow_t *f = x->f;
  const pcre2_code *re = n->re;
  int resp = f->has_response;

  switch (n->term->id) {
    case EXPR_T_ASSET:
      return is_asset(f);
    case EXPR_T_BODY:
      return body_matches(x, re, 1, 1);
    case EXPR_T_BODY_REQ:
      return body_matches(x, re, 1, 0);
    case EXPR_T_BODY_RESP:
      return body_matches(x, re, 0, 1);
    case EXPR_T_CODE:
      return resp && f->resp.status == n->num;
    case EXPR_T_ERROR:
      return f->error != NULL;
    case EXPR_T_HEAD:
      return any_header_matches(x, re, &f->req) || (resp && any_header_matches(x, re, &f->resp));
    case EXPR_T_HEAD_REQ:
      return any_header_matches(x, re, &f->req);
    case EXPR_T_HEAD_RESP:
      return resp && any_header_matches(x, re, &f->resp);
    case EXPR_T_METHOD:
      return re_cstr(x, re, f->req.method);
    case EXPR_T_NO_RESP:
      return !resp;
    case EXPR_T_RESP:
      return resp;
    case EXPR_T_TYPE:
      return content_type_matches(x, re, &f->req) ||
             (resp && content_type_matches(x, re, &f->resp));
    case EXPR_T_TYPE_REQ:
      return content_type_matches(x, re, &f->req);
    case EXPR_T_TYPE_RESP:
      return resp && content_type_matches(x, re, &f->resp);
    case EXPR_T_URL:
      return re_cstr(x, re, f->url != NULL ? f->url : f->req.url);
    case EXPR_T_WEBSOCKET:
      return is_websocket(f);
    default:
      return conn_term(x, n);
  }
}

/* Recursion depth is bounded by the parser's FLT_EXPR_MAX_DEPTH: only ! and
 * ( nest, and runs of & or | are one node with siblings. */
static int eval_node(expr_eval_ctx_t *x, int idx) {
  const expr_node_t *n = &x->e->nodes[idx];

  switch (n->kind) {
    case EXPR_NODE_TERM:
      return x->f != NULL ? flow_term(x, n) : conn_term(x, n);
    case EXPR_NODE_NOT:
      return !eval_node(x, n->first_child);
    case EXPR_NODE_AND:
      for (int i = n->first_child; i >= 0; i = x->e->nodes[i].next_sibling)
        if (!eval_node(x, i)) return 0;
      return 1;
    case EXPR_NODE_OR:
      for (int i = n->first_child; i >= 0; i = x->e->nodes[i].next_sibling)
        if (eval_node(x, i)) return 1;
      return 0;
  }
  return 0;
}

int expr_eval(const flt_expr_t *e, const flt_flow_t *f, const flt_conn_t *c,
              const flt_expr_bodies_t *bodies) {
  expr_eval_ctx_t x = {e, f, c, bodies, NULL};
  int hit = eval_node(&x, e->root);

  pcre2_match_data_free(x.md);
  return hit;
}
