/* action_replace.h — --replace EXPR:/REGEX/REPLACEMENT/[FLAGS]: PCRE2
 * substitution in the bodies of matching flows (README.md, "Change
 * traffic"). The rule is parsed and compiled here at start-up; the body is
 * held and decoded by bodyhold.c, which applies the rules to it. */
#ifndef TLSPEEK_ACTION_REPLACE_H
#define TLSPEEK_ACTION_REPLACE_H

#include <stddef.h>

#include "filters/filter.h"
#include "filters/util/strbuf.h"

struct flt_expr;

/* Bytes of the rule shown in action lines ("/REGEX/"), at most. */
#define PX_REPLACE_SHOWN 120

typedef struct px_replace {
  struct flt_expr *expr;   /* which flows */
  void *re;                /* pcre2_code * */
  char *replacement;       /* PCRE2 replacement text ($1, ${name}, $$) */
  size_t replacement_len;
  int response_side;       /* 0: the request (EXPR has ~q) */
  int first_only;          /* flag 1: the first match only (default: all) */
  char shown[PX_REPLACE_SHOWN + 8]; /* "/REGEX/" for action lines */
} px_replace_t;

/* Parses `arg` (the value of --replace): EXPR, ':', then the separator
 * (the first character after that ':', any punctuation but '\'),
 * REGEX, separator, REPLACEMENT, separator, FLAGS (i m s x: PCRE2's
 * caseless, multiline, dotall, extended; g: every match, the default;
 * 1: the first match only). EXPR may hold ':' itself: the first split
 * that leaves a compilable expression and a well-formed rule wins. In
 * REGEX and REPLACEMENT a backslash before the separator makes it a plain
 * character. The rule edits the request when EXPR has a ~q term, else the
 * response; EXPR is decided at the head, so body terms are refused. Returns a rule (free with px_replace_free), or NULL with one
 * sentence in `err` (a regex error names PCRE2's message and offset). */
px_replace_t *px_replace_parse(const char *arg, char *err, size_t errlen);
void px_replace_free(px_replace_t *r);

/* Applies `r` to `body`, writing the result to `out` (reset first; its cap
 * bounds the output). Returns the number of replacements (0: `out` is
 * left empty and `body` is unchanged), or -1 with PCRE2's reason in err
 * (the output would pass the cap, a match limit). */
int px_replace_apply(const px_replace_t *r, const char *body, size_t len, flt_strbuf_t *out,
                     char *err, size_t errlen);

#endif
