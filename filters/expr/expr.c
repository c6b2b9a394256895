/* expr.c — compiles a match expression into an array of nodes.
 *
 * Recursive descent over the tokens of expr_lex.c:
 *   or    := and ( '|' and )*
 *   and   := unary ( ['&'] unary )*      adjacency is &
 *   unary := '!' unary | '(' or ')' | ~term [argument] | bare-regex
 * Recursion happens only through '!' and '(', both counted against
 * FLT_EXPR_MAX_DEPTH, so no input can exhaust the stack; runs of & and | become
 * one n-ary node instead of a deep chain, which keeps evaluation shallow too.
 *
 * Every error is detected in one place and written once, with the column. */
#include "filters/expr/expr_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const expr_term_def_t term_defs[] = {
    {"a", EXPR_T_ASSET, EXPR_ARG_NONE, 0},
    {"all", EXPR_T_ALL, EXPR_ARG_NONE, 0},
    {"b", EXPR_T_BODY, EXPR_ARG_REGEX, EXPR_TERM_BODY},
    {"bq", EXPR_T_BODY_REQ, EXPR_ARG_REGEX, EXPR_TERM_BODY},
    {"bs", EXPR_T_BODY_RESP, EXPR_ARG_REGEX, EXPR_TERM_BODY},
    {"c", EXPR_T_CODE, EXPR_ARG_CODE, 0},
    {"d", EXPR_T_DOMAIN, EXPR_ARG_REGEX, EXPR_TERM_HOST},
    {"dst", EXPR_T_DST, EXPR_ARG_REGEX, EXPR_TERM_HOST},
    {"e", EXPR_T_ERROR, EXPR_ARG_NONE, 0},
    {"h", EXPR_T_HEAD, EXPR_ARG_REGEX, 0},
    {"hq", EXPR_T_HEAD_REQ, EXPR_ARG_REGEX, 0},
    {"hs", EXPR_T_HEAD_RESP, EXPR_ARG_REGEX, 0},
    {"http", EXPR_T_HTTP, EXPR_ARG_NONE, 0},
    {"m", EXPR_T_METHOD, EXPR_ARG_REGEX, 0},
    {"q", EXPR_T_NO_RESP, EXPR_ARG_NONE, 0},
    {"s", EXPR_T_RESP, EXPR_ARG_NONE, 0},
    {"src", EXPR_T_SRC, EXPR_ARG_REGEX, 0},
    {"t", EXPR_T_TYPE, EXPR_ARG_REGEX, 0},
    {"tq", EXPR_T_TYPE_REQ, EXPR_ARG_REGEX, 0},
    {"ts", EXPR_T_TYPE_RESP, EXPR_ARG_REGEX, 0},
    {"u", EXPR_T_URL, EXPR_ARG_REGEX, 0},
    {"websocket", EXPR_T_WEBSOCKET, EXPR_ARG_NONE, 0},
    {"tcp", EXPR_T_TCP, EXPR_ARG_NONE, 0},
    {"sni", EXPR_T_SNI, EXPR_ARG_REGEX, EXPR_TERM_HOST},
    {"tls", EXPR_T_TLS, EXPR_ARG_TLS, 0},
    {"alpn", EXPR_T_ALPN, EXPR_ARG_REGEX, 0},
    {"ja3", EXPR_T_JA3, EXPR_ARG_JA3, 0},
    {"ja4", EXPR_T_JA4, EXPR_ARG_JA4, 0},
    {"intercepted", EXPR_T_INTERCEPTED, EXPR_ARG_NONE, 0},
    {"passthrough", EXPR_T_PASSTHROUGH, EXPR_ARG_NONE, 0},
};

const expr_term_def_t *expr_term_find(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof(term_defs) / sizeof(term_defs[0]); i++) {
    if (strlen(term_defs[i].name) == len && memcmp(term_defs[i].name, name, len) == 0)
      return &term_defs[i];
  }
  return NULL;
}

const expr_term_def_t *expr_term_url(void) {
  return expr_term_find("u", 1);
}

static const char *arg_what(expr_arg_t arg) {
  switch (arg) {
    case EXPR_ARG_REGEX:
      return "a regular expression";
    case EXPR_ARG_CODE:
      return "a status code (100-999)";
    case EXPR_ARG_TLS:
      return "a TLS version (1.0, 1.1, 1.2 or 1.3)";
    case EXPR_ARG_JA3:
      return "a JA3 hash (32 hex digits)";
    case EXPR_ARG_JA4:
      return "a JA4 fingerprint";
    case EXPR_ARG_NONE:
      break;
  }
  return "nothing";
}

#define HOST_ONLY_HINT "--ignore-hosts accepts only ~d, ~sni and ~dst"

typedef struct expr_parser {
  expr_cursor_t cur;
  expr_token_t tok; /* the current token; cur is just past it */
  flt_expr_t *e;
  int allowed;
  int depth;
  char *err;
  size_t errlen;
} expr_parser_t;

/* ---- errors -------------------------------------------------------------- */

/* 1-based column of byte `pos`, counting UTF-8 characters rather than bytes
 * so that the caret lands under the right character in a terminal. */
static size_t column_of(const char *text, size_t pos) {
  size_t col = 1;
  for (size_t i = 0; i < pos; i++) {
    if (((unsigned char)text[i] & 0xC0) != 0x80) col++;
  }
  return col;
}

/* Writes "column N: <msg>\n  <expression>\n  <caret>" into p->err. Control
 * characters of the expression are echoed as spaces: a tab or newline would
 * otherwise break the caret's alignment or the three-line shape. */
static int parse_error(expr_parser_t *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int parse_error(expr_parser_t *p, size_t pos, const char *fmt, ...) {
  size_t col = column_of(p->cur.ptr, pos), used = 0;
  va_list ap;
  int n;

  if (p->err == NULL || p->errlen == 0) return -1;
  n = snprintf(p->err, p->errlen, "column %zu: ", col);
  used = n > 0 ? (size_t)n : 0;
  if (used < p->errlen) {
    va_start(ap, fmt);
    n = vsnprintf(p->err + used, p->errlen - used, fmt, ap);
    va_end(ap);
    used += n > 0 ? (size_t)n : 0;
  }
  if (used < p->errlen) {
    n = snprintf(p->err + used, p->errlen - used, "\n  ");
    used += n > 0 ? (size_t)n : 0;
  }
  for (size_t i = 0; i < p->cur.len && used + 1 < p->errlen; i++) {
    unsigned char ch = (unsigned char)p->cur.ptr[i];
    p->err[used++] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
  }
  if (used + 3 < p->errlen) {
    memcpy(p->err + used, "\n  ", 3);
    used += 3;
  }
  for (size_t i = 1; i < col && used + 1 < p->errlen; i++)
    p->err[used++] = ' ';
  if (used + 1 < p->errlen) p->err[used++] = '^';
  p->err[used < p->errlen ? used : p->errlen - 1] = '\0';
  return -1;
}

/* ---- nodes ----------------------------------------------------------------- */

static int node_new(expr_parser_t *p, expr_node_kind_t kind) {
  flt_expr_t *e = p->e;
  expr_node_t *n;

  if (e->n_nodes == e->cap_nodes) {
    size_t cap = e->cap_nodes ? e->cap_nodes * 2 : 16;
    expr_node_t *grown = realloc(e->nodes, cap * sizeof(*grown));
    if (grown == NULL) return parse_error(p, p->tok.pos, "out of memory");
    e->nodes = grown;
    e->cap_nodes = cap;
  }
  n = &e->nodes[e->n_nodes];
  memset(n, 0, sizeof(*n));
  n->kind = kind;
  n->first_child = -1;
  n->next_sibling = -1;
  return (int)e->n_nodes++;
}

static int advance(expr_parser_t *p) {
  if (expr_lex_token(&p->cur, &p->tok) == 0) return 0;
  return parse_error(p, p->cur.len, "expected %c to close the quote at column %zu",
                     p->cur.ptr[p->tok.pos], column_of(p->cur.ptr, p->tok.pos));
}

/* ---- term arguments -------------------------------------------------------- */

static int set_regex(expr_parser_t *p, int idx, const expr_token_t *arg, const char *name) {
  const uint32_t base = PCRE2_CASELESS | PCRE2_NEVER_BACKSLASH_C;
  size_t len, erroff = 0;
  int errcode = 0;
  char *pat = expr_tok_value(p->cur.ptr, arg, &len);
  pcre2_code *re;

  if (pat == NULL) return parse_error(p, arg->pos, "out of memory");
  /* UTF where the pattern is valid UTF-8; MATCH_INVALID_UTF keeps matching
   * safe (and useful) on subjects that are not, such as binary bodies. */
  re = pcre2_compile((PCRE2_SPTR)pat, len, base | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode,
                     &erroff, NULL);
  if (re == NULL && errcode < 0) /* the pattern itself is not UTF-8: bytes */
    re = pcre2_compile((PCRE2_SPTR)pat, len, base, &errcode, &erroff, NULL);
  free(pat);
  if (re == NULL) {
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0) strcpy((char *)msg, "error");
    return parse_error(p, expr_tok_text_pos(p->cur.ptr, arg, erroff),
                       "invalid regular expression for ~%s: %s (at offset %zu)", name,
                       (const char *)msg, erroff);
  }
  /* JIT is an optimisation: when unavailable the interpreter matches. */
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
  p->e->nodes[idx].re = re;
  return 0;
}

static int is_hex(int ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Checks and stores a non-regex argument; returns 0, or 1 when the value is
 * not what the term expects. */
static int set_plain(expr_node_t *n, expr_arg_t kind, const char *v, size_t len) {
  switch (kind) {
    case EXPR_ARG_CODE:
      if (len != 3 || v[0] < '1' || v[0] > '9' || v[1] < '0' || v[1] > '9' || v[2] < '0' ||
          v[2] > '9')
        return 1;
      n->num = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
      return 0;
    case EXPR_ARG_TLS:
      if (len > 4 && strncasecmp(v, "tlsv", 4) == 0) v += 4, len -= 4; /* TLSv1.3 */
      if (len != 3 || v[0] != '1' || v[1] != '.' || v[2] < '0' || v[2] > '3') return 1;
      n->num = v[2] - '0';
      return 0;
    case EXPR_ARG_JA3:
      if (len != 32) return 1;
      for (size_t i = 0; i < len; i++)
        if (!is_hex((unsigned char)v[i])) return 1;
      break;
    case EXPR_ARG_JA4:
      /* Longer than flt_conn_t.ja4 can hold could never match. */
      if (len == 0 || len >= sizeof(n->lit)) return 1;
      for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!(is_hex(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'))
          return 1;
      }
      break;
    case EXPR_ARG_NONE:
    case EXPR_ARG_REGEX:
      return 1;
  }
  memcpy(n->lit, v, len);
  n->lit[len] = '\0';
  return 0;
}

/* Reads and stores the argument of the term node `idx`. A missing argument
 * is reported at the term itself, a wrong one at the argument. */
static int parse_argument(expr_parser_t *p, int idx, const expr_token_t *term) {
  const expr_term_def_t *def = p->e->nodes[idx].term;
  expr_word_mode_t mode = def->arg == EXPR_ARG_REGEX ? EXPR_WORD_REGEX : EXPR_WORD_PLAIN;
  expr_token_t arg;
  size_t len;
  char *v;
  int bad;

  if (expr_lex_arg(&p->cur, mode, &arg) != 0)
    return parse_error(p, p->cur.len, "expected %c to close the quote at column %zu",
                       p->cur.ptr[arg.pos], column_of(p->cur.ptr, arg.pos));
  if (arg.kind == EXPR_TOK_END && expr_cur_peek(&p->cur) == '(' && def->arg == EXPR_ARG_REGEX)
    return parse_error(p, term->pos,
                       "expected a regular expression after ~%s (quote one that "
                       "starts with a parenthesis)",
                       def->name);
  if (arg.kind == EXPR_TOK_END)
    return parse_error(p, term->pos, "expected %s after ~%s", arg_what(def->arg), def->name);
  if (def->arg == EXPR_ARG_REGEX) return set_regex(p, idx, &arg, def->name);
  v = expr_tok_value(p->cur.ptr, &arg, &len);
  if (v == NULL) return parse_error(p, arg.pos, "out of memory");
  bad = set_plain(&p->e->nodes[idx], def->arg, v, len);
  free(v);
  if (bad) return parse_error(p, arg.pos, "expected %s after ~%s", arg_what(def->arg), def->name);
  return 0;
}

/* ---- grammar ---------------------------------------------------------------- */

static int parse_or(expr_parser_t *p, const char *after, int *out);

static int parse_term(expr_parser_t *p, int *out) {
  expr_token_t term = p->tok;
  const expr_term_def_t *def;
  int idx;

  if (term.len == 1) return parse_error(p, term.pos, "expected a term name after ~");
  def = expr_term_find(p->cur.ptr + term.pos + 1, term.len - 1);
  if (def == NULL)
    return parse_error(p, term.pos, "unknown term %.*s", (int)term.len, p->cur.ptr + term.pos);
  if (p->allowed == FLT_EXPR_HOST_TERMS && !(def->flags & EXPR_TERM_HOST))
    return parse_error(p, term.pos, "~%s cannot be used here: " HOST_ONLY_HINT, def->name);
  if ((idx = node_new(p, EXPR_NODE_TERM)) < 0) return -1;
  p->e->nodes[idx].term = def;
  if (def->flags & EXPR_TERM_BODY) p->e->needs_body = 1;
  if (def->arg != EXPR_ARG_NONE && parse_argument(p, idx, &term) != 0) return -1;
  *out = idx;
  return advance(p);
}

static int parse_bare(expr_parser_t *p, int *out) {
  const expr_term_def_t *url = expr_term_url();
  int idx;

  if (p->allowed == FLT_EXPR_HOST_TERMS)
    return parse_error(p, p->tok.pos,
                       "a bare regular expression (~u) cannot be used here: " HOST_ONLY_HINT);
  if ((idx = node_new(p, EXPR_NODE_TERM)) < 0) return -1;
  p->e->nodes[idx].term = url;
  if (set_regex(p, idx, &p->tok, url->name) != 0) return -1;
  *out = idx;
  return advance(p);
}

static int enter(expr_parser_t *p) {
  if (++p->depth > FLT_EXPR_MAX_DEPTH)
    return parse_error(p, p->tok.pos, "nested deeper than %d levels", FLT_EXPR_MAX_DEPTH);
  return 0;
}

static int parse_group(expr_parser_t *p, int *out) {
  size_t open = p->tok.pos;

  if (enter(p) != 0 || advance(p) != 0 || parse_or(p, "(", out) != 0) return -1;
  if (p->tok.kind != EXPR_TOK_RPAREN)
    return parse_error(p, p->tok.pos, "expected ) to close ( at column %zu",
                       column_of(p->cur.ptr, open));
  p->depth--;
  return advance(p);
}

static int parse_not(expr_parser_t *p, int *out);

/* `after` names the operator just consumed, for "expected an expression
 * after &"; NULL at the very start of the expression. */
static int parse_unary(expr_parser_t *p, const char *after, int *out) {
  switch (p->tok.kind) {
    case EXPR_TOK_NOT:
      return parse_not(p, out);
    case EXPR_TOK_LPAREN:
      return parse_group(p, out);
    case EXPR_TOK_TERM:
      return parse_term(p, out);
    case EXPR_TOK_WORD:
    case EXPR_TOK_QUOTED:
      return parse_bare(p, out);
    case EXPR_TOK_END:
    case EXPR_TOK_AND:
    case EXPR_TOK_OR:
    case EXPR_TOK_RPAREN:
      break;
  }
  if (after != NULL) return parse_error(p, p->tok.pos, "expected an expression after %s", after);
  if (p->tok.kind == EXPR_TOK_END) return parse_error(p, p->tok.pos, "empty expression");
  if (p->tok.kind == EXPR_TOK_RPAREN)
    return parse_error(p, p->tok.pos, "unexpected ) without a matching (");
  return parse_error(p, p->tok.pos, "expected an expression before %c", p->cur.ptr[p->tok.pos]);
}

static int parse_not(expr_parser_t *p, int *out) {
  int idx, child;

  if (enter(p) != 0 || advance(p) != 0 || parse_unary(p, "!", &child) != 0) return -1;
  p->depth--;
  if ((idx = node_new(p, EXPR_NODE_NOT)) < 0) return -1;
  p->e->nodes[idx].first_child = child;
  *out = idx;
  return 0;
}

static int starts_operand(expr_tok_kind_t k) {
  return k == EXPR_TOK_NOT || k == EXPR_TOK_LPAREN || k == EXPR_TOK_TERM || k == EXPR_TOK_WORD ||
         k == EXPR_TOK_QUOTED;
}

/* Appends `child` to the n-ary node that `*list` is building, creating it
 * once a second operand shows up. `*last` is the last child so far. */
static int append(expr_parser_t *p, expr_node_kind_t kind, int *list, int *last, int child) {
  if (*last < 0) {
    int idx = node_new(p, kind);
    if (idx < 0) return -1;
    p->e->nodes[idx].first_child = *list;
    *last = *list;
    *list = idx;
  }
  p->e->nodes[*last].next_sibling = child;
  *last = child;
  return 0;
}

static int parse_and(expr_parser_t *p, const char *after, int *out) {
  int list, last = -1, child;

  if (parse_unary(p, after, &list) != 0) return -1;
  for (;;) {
    const char *op = NULL;
    if (p->tok.kind == EXPR_TOK_AND) {
      op = "&";
      if (advance(p) != 0) return -1;
    } else if (!starts_operand(p->tok.kind)) {
      break;
    }
    if (parse_unary(p, op, &child) != 0 || append(p, EXPR_NODE_AND, &list, &last, child) != 0)
      return -1;
  }
  *out = list;
  return 0;
}

static int parse_or(expr_parser_t *p, const char *after, int *out) {
  int list, last = -1, child;

  if (parse_and(p, after, &list) != 0) return -1;
  while (p->tok.kind == EXPR_TOK_OR) {
    if (advance(p) != 0 || parse_and(p, "|", &child) != 0 ||
        append(p, EXPR_NODE_OR, &list, &last, child) != 0)
      return -1;
  }
  *out = list;
  return 0;
}

/* ---- public API ------------------------------------------------------------- */

static flt_expr_t *expr_new(void) {
  flt_expr_t *e = calloc(1, sizeof(*e));

  if (e == NULL) return NULL;
  e->root = -1;
  e->mctx = pcre2_match_context_create(NULL);
  if (e->mctx == NULL) {
    free(e);
    return NULL;
  }
  pcre2_set_match_limit(e->mctx, FLT_EXPR_MATCH_LIMIT);
  pcre2_set_heap_limit(e->mctx, FLT_EXPR_HEAP_LIMIT_KIB);
  return e;
}

flt_expr_t *flt_expr_compile(const char *text, int allowed, char *err, size_t errlen) {
  expr_parser_t p;
  size_t len;

  if (text == NULL) text = "";
  len = strnlen(text, FLT_EXPR_MAX_LEN + 1);
  if (len > FLT_EXPR_MAX_LEN) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "expression is too long (the limit is %d bytes)", FLT_EXPR_MAX_LEN);
    return NULL;
  }
  if (allowed != FLT_EXPR_ALL_TERMS && allowed != FLT_EXPR_HOST_TERMS) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "unknown term set %d", allowed);
    return NULL;
  }
  memset(&p, 0, sizeof(p));
  p.cur.ptr = text;
  p.cur.len = len;
  p.allowed = allowed;
  p.err = err;
  p.errlen = errlen;
  if ((p.e = expr_new()) == NULL) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (advance(&p) != 0 || parse_or(&p, NULL, &p.e->root) != 0) goto fail;
  if (p.tok.kind != EXPR_TOK_END) {
    /* & | and operands are all consumed above: only a stray ) is left. */
    parse_error(&p, p.tok.pos, "unexpected ) without a matching (");
    goto fail;
  }
  return p.e;
fail:
  flt_expr_free(p.e);
  return NULL;
}

void flt_expr_free(flt_expr_t *e) {
  if (e == NULL) return;
  for (size_t i = 0; i < e->n_nodes; i++)
    pcre2_code_free(e->nodes[i].re);
  free(e->nodes);
  pcre2_match_context_free(e->mctx);
  free(e);
}

int flt_expr_needs_body(const flt_expr_t *e) {
  return e != NULL && e->needs_body;
}

int flt_expr_match_flow(const flt_expr_t *e, const flt_flow_t *f, const flt_expr_bodies_t *bodies) {
  if (e == NULL || f == NULL || e->root < 0) return 0;
  return expr_eval(e, f, f->conn, bodies);
}

int flt_expr_match_conn(const flt_expr_t *e, const flt_conn_t *c) {
  if (e == NULL || c == NULL || e->root < 0) return 0;
  return expr_eval(e, NULL, c, NULL);
}
