/* expr_internal.h — shared between the expression lexer (expr_lex.c), the
 * parser/compiler (expr.c) and the evaluator (expr_eval.c). Not a public
 * header: everything outside filters/expr/expr*.c uses filters/expr/expr.h. */
#ifndef TLSPEEK_EXPR_INTERNAL_H
#define TLSPEEK_EXPR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "filters/expr/expr.h"

/* PCRE2's own defaults, named here so the bound on one regex search (a
 * pathological pattern against a large body) is a visible decision. */
#define FLT_EXPR_MATCH_LIMIT 10000000u
#define FLT_EXPR_HEAP_LIMIT_KIB 20000u

/* ---- the bounded cursor ---------------------------------------------- */

/* Every read of the expression text goes through this: `pos` never passes
 * `len`, and peeking past the end yields -1 instead of a byte. */
typedef struct expr_cursor {
  const char *ptr;
  size_t len;
  size_t pos;
} expr_cursor_t;

static inline int expr_cur_peek(const expr_cursor_t *c) {
  return c->pos < c->len ? (unsigned char)c->ptr[c->pos] : -1;
}

static inline int expr_cur_peek_at(const expr_cursor_t *c, size_t ahead) {
  return ahead < c->len - c->pos ? (unsigned char)c->ptr[c->pos + ahead] : -1;
}

static inline void expr_cur_skip(expr_cursor_t *c, size_t n) {
  c->pos = n < c->len - c->pos ? c->pos + n : c->len;
}

/* ---- tokens ------------------------------------------------------------ */

typedef enum expr_tok_kind {
  EXPR_TOK_END = 0, /* end of input (or, from expr_lex_arg: no argument here) */
  EXPR_TOK_NOT,     /* ! */
  EXPR_TOK_AND,     /* & */
  EXPR_TOK_OR,      /* | */
  EXPR_TOK_LPAREN,  /* ( */
  EXPR_TOK_RPAREN,  /* ) */
  EXPR_TOK_TERM,    /* ~name (pos at '~', len includes it) */
  EXPR_TOK_WORD,    /* unquoted text */
  EXPR_TOK_QUOTED   /* '...' or "..." (pos/len include the quotes) */
} expr_tok_kind_t;

typedef struct expr_token {
  expr_tok_kind_t kind;
  size_t pos; /* byte offset of the first character in the text */
  size_t len; /* bytes of text the token spans */
} expr_token_t;

/* Which characters end an unquoted argument. */
typedef enum expr_word_mode {
  EXPR_WORD_REGEX, /* like mitmproxy: only space ( ) ~ ' " end a regex */
  EXPR_WORD_PLAIN  /* codes, versions, hashes: ! & | end it as well */
} expr_word_mode_t;

/* Reads the next token where an operator or an operand may start. Returns 0,
 * or -1 on an unterminated quote (tok->pos is then the opening quote). */
int expr_lex_token(expr_cursor_t *cur, expr_token_t *tok);

/* Reads the argument of a term: a word or a quoted string. When none starts
 * here (end of input, or ( ) ~ next), tok->kind is EXPR_TOK_END and nothing
 * but blanks is consumed. Returns 0, or -1 on an unterminated quote. */
int expr_lex_arg(expr_cursor_t *cur, expr_word_mode_t mode, expr_token_t *tok);

/* The value of a WORD or QUOTED token as a new NUL-terminated string (the
 * caller frees it): quotes removed, \' or \" inside the matching quotes
 * turned into the quote, every other backslash kept so that regex escapes
 * such as \d or \. reach PCRE2 intact. NULL when out of memory. */
char *expr_tok_value(const char *text, const expr_token_t *tok, size_t *len);

/* Maps a byte offset in expr_tok_value()'s result back to a text offset. */
size_t expr_tok_text_pos(const char *text, const expr_token_t *tok, size_t value_off);

/* ---- terms ------------------------------------------------------------- */

typedef enum expr_term_id {
  EXPR_T_ASSET,
  EXPR_T_ALL,
  EXPR_T_BODY,
  EXPR_T_BODY_REQ,
  EXPR_T_BODY_RESP,
  EXPR_T_CODE,
  EXPR_T_DOMAIN,
  EXPR_T_DST,
  EXPR_T_ERROR,
  EXPR_T_HEAD,
  EXPR_T_HEAD_REQ,
  EXPR_T_HEAD_RESP,
  EXPR_T_HTTP,
  EXPR_T_METHOD,
  EXPR_T_NO_RESP,
  EXPR_T_RESP,
  EXPR_T_SRC,
  EXPR_T_TYPE,
  EXPR_T_TYPE_REQ,
  EXPR_T_TYPE_RESP,
  EXPR_T_URL,
  EXPR_T_WEBSOCKET,
  EXPR_T_TCP,
  EXPR_T_SNI,
  EXPR_T_TLS,
  EXPR_T_ALPN,
  EXPR_T_JA3,
  EXPR_T_JA4,
  EXPR_T_INTERCEPTED,
  EXPR_T_PASSTHROUGH
} expr_term_id_t;

typedef enum expr_arg {
  EXPR_ARG_NONE,
  EXPR_ARG_REGEX,
  EXPR_ARG_CODE, /* HTTP status code */
  EXPR_ARG_TLS,  /* 1.0 .. 1.3 */
  EXPR_ARG_JA3,  /* 32 hex digits */
  EXPR_ARG_JA4   /* JA4 fingerprint */
} expr_arg_t;

#define EXPR_TERM_HOST 1u /* allowed with FLT_EXPR_HOST_TERMS */
#define EXPR_TERM_BODY 2u /* needs the bodies */

typedef struct expr_term_def {
  const char *name; /* without the '~' */
  expr_term_id_t id;
  expr_arg_t arg;
  unsigned flags;
} expr_term_def_t;

/* Looks a term name (without '~') up; NULL when unknown. */
const expr_term_def_t *expr_term_find(const char *name, size_t len);
/* The definition of ~u, which a bare regex stands for. */
const expr_term_def_t *expr_term_url(void);

/* ---- the compiled form ------------------------------------------------- */

typedef enum expr_node_kind {
  EXPR_NODE_TERM,
  EXPR_NODE_NOT, /* one child */
  EXPR_NODE_AND, /* two or more children */
  EXPR_NODE_OR   /* two or more children */
} expr_node_kind_t;

/* Nodes live in one array and refer to each other by index, so growing the
 * array never leaves a dangling pointer and freeing needs no recursion. */
typedef struct expr_node {
  expr_node_kind_t kind;
  const expr_term_def_t *term;              /* EXPR_NODE_TERM */
  int first_child;                          /* -1 when none */
  int next_sibling;                         /* -1 when last */
  pcre2_code *re;                           /* regex terms */
  int num;                                  /* ~c: the code; ~tls: the minor version */
  char lit[sizeof(((flt_conn_t *)0)->ja4)]; /* ~ja3 / ~ja4 literal */
} expr_node_t;

struct flt_expr {
  expr_node_t *nodes;
  size_t n_nodes;
  size_t cap_nodes;
  int root;
  int needs_body;
  pcre2_match_context *mctx; /* read-only once compiled: shared by threads */
};

/* Evaluates the expression: against flow `f` (with `c` its connection), or
 * against connection `c` alone when `f` is NULL. Returns 1 or 0. */
int expr_eval(const flt_expr_t *e, const flt_flow_t *f, const flt_conn_t *c,
              const flt_expr_bodies_t *bodies);

#endif
