/* expr.h — the flow match-expression language (mitmproxy-compatible terms
 * for HTTP, plus TLS terms), compiled once and evaluated per flow.
 *
 *   ~a ~all ~b RE ~bq RE ~bs RE ~c CODE ~d RE ~dst RE ~e ~h RE ~hq RE ~hs RE
 *   ~http ~m RE ~q ~s ~src RE ~t RE ~tq RE ~ts RE ~u RE ~websocket ~tcp
 *   ~sni RE ~tls VERSION ~alpn RE ~ja3 HASH ~ja4 FP ~intercepted ~passthrough
 *   !  &  |  ( )     a bare regex means ~u; adjacency means &;
 *   precedence ! > & > |; regexes (PCRE2) are case-insensitive and may be
 *   quoted with ' or " (a backslash escapes the quote; other backslashes
 *   reach PCRE2 as written). As in mitmproxy, an unquoted regex runs until a
 *   blank or one of ( ) ~ ' ", so `~d a.com|b.com` is one regex.
 */
#ifndef TLSPEEK_EXPR_H
#define TLSPEEK_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"

typedef struct flt_expr flt_expr_t;

#define FLT_EXPR_MAX_LEN 4096 /* bytes of expression text */
#define FLT_EXPR_MAX_DEPTH 64 /* nested ( and ! */

/* Which terms an expression may use. */
enum {
  FLT_EXPR_ALL_TERMS = 0,
  FLT_EXPR_HOST_TERMS = 1 /* only ~d, ~sni, ~dst (for --ignore-hosts) */
};

/* Compiles `text`. On a syntax error returns NULL and writes into `err` a
 * message naming the column (1-based, in characters) and what was expected,
 * then the expression and a caret under the spot: a term missing its
 * argument is marked at the term, input that ends too early one past the
 * end, e.g.
 *   "column 8: expected a regular expression after ~d\n  ~m GET ~d\n         ^"
 * Text longer than FLT_EXPR_MAX_LEN is refused with a message but no caret.
 */
flt_expr_t *flt_expr_compile(const char *text, int allowed, char *err, size_t errlen);
void flt_expr_free(flt_expr_t *e);

/* 1 when the expression uses ~b/~bq/~bs (so bodies must be kept). */
int flt_expr_needs_body(const flt_expr_t *e);

/* The decoded bodies of a flow (within the body cap), for ~b terms. */
typedef struct flt_expr_bodies {
  const uint8_t *req;
  size_t req_len;
  const uint8_t *resp;
  size_t resp_len;
} flt_expr_bodies_t;

/* Evaluates against a flow (bodies may be NULL when not needed). Returns 1
 * on a match, 0 otherwise. Thread-safe (match data is per call). */
int flt_expr_match_flow(const flt_expr_t *e, const flt_flow_t *f, const flt_expr_bodies_t *bodies);
/* Evaluates host-level terms against a connection (before any flow). Every
 * term that is a fact of the connection (~d on server_host, ~sni ~dst ~src
 * ~tls ~alpn ~ja3 ~ja4 ~intercepted ~passthrough ~tcp ~http ~all) works
 * here; terms about a flow (~m ~u ~c ~h ~b ...) are false. */
int flt_expr_match_conn(const flt_expr_t *e, const flt_conn_t *c);

#endif
