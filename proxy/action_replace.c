/* action_replace.c — the --replace rule: its argument split into
 * expression, regex, replacement and flags, compiled once at start-up, and
 * applied to a decoded body with pcre2_substitute (action_replace.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "proxy/action_replace.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"

/* A regex that backtracks without end must not stall a worker: past these
 * (the expression language's limits) the rule is not applied, with a
 * warning naming PCRE2's reason. */
#define REPLACE_MATCH_LIMIT 10000000u
#define REPLACE_HEAP_LIMIT_KIB 20000u

/* Splits "REGEX<sep>REPLACEMENT<sep>FLAGS" (what follows the first
 * separator). A backslash before the separator keeps it as a character:
 * dropped in the replacement, kept in the regex (where "\/" means "/"
 * anyway, and "\|" a literal '|'). Returns 0, or -1 when a part is
 * missing. `re` and `rep` receive malloc'd copies. */
static int split_parts(const char *p, char sep, char **re, char **rep, const char **flags) {
  char *part[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    size_t n = strlen(p), o = 0, i = 0;
    part[k] = malloc(n + 1);
    if (part[k] == NULL) goto Fail;
    for (; p[i] != '\0' && p[i] != sep; i++) {
      if (p[i] == '\\' && p[i + 1] == sep) {
        if (k == 0) part[k][o++] = '\\';
        part[k][o++] = sep;
        i++;
      } else if (p[i] == '\\' && p[i + 1] != '\0') {
        part[k][o++] = p[i++];
        part[k][o++] = p[i];
      } else {
        part[k][o++] = p[i];
      }
    }
    if (p[i] != sep) goto Fail;
    part[k][o] = '\0';
    p += i + 1;
  }
  *re = part[0];
  *rep = part[1];
  *flags = p;
  return 0;
Fail:
  free(part[0]);
  free(part[1]);
  return -1;
}

/* "~q" as a term (not part of a longer word) puts the rule on the request. */
static int has_request_term(const char *expr) {
  for (const char *q = strstr(expr, "~q"); q; q = strstr(q + 2, "~q"))
    if (!((q[2] | 0x20) >= 'a' && (q[2] | 0x20) <= 'z')) return 1;
  return 0;
}

static int parse_flags(const char *flags, uint32_t *opts, int *first_only) {
  for (const char *f = flags; *f; f++) {
    switch (*f) {
      case 'i': *opts |= PCRE2_CASELESS; break;
      case 'm': *opts |= PCRE2_MULTILINE; break;
      case 's': *opts |= PCRE2_DOTALL; break;
      case 'x': *opts |= PCRE2_EXTENDED; break;
      case 'g': break; /* every match: the default */
      case '1': *first_only = 1; break;
      default: return -1;
    }
  }
  return 0;
}

/* Compiles the regex (UTF where it is valid UTF-8, bytes otherwise, as
 * the expression language does); NULL with PCRE2's message in err. */
static pcre2_code *compile_regex(const char *re, uint32_t opts, char *err, size_t errlen) {
  int errcode = 0;
  PCRE2_SIZE off = 0;
  opts |= PCRE2_NEVER_BACKSLASH_C;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                   opts | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &off, NULL);
  if (code == NULL && errcode < 0)
    code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &errcode, &off, NULL);
  if (code == NULL) {
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0) snprintf((char *)msg, 8, "error");
    snprintf(err, errlen, "bad regular expression /%s/: %s (at offset %zu)", re,
             (const char *)msg, (size_t)off);
    return NULL;
  }
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

/* A replacement naming a group the regex lacks would fail on every body:
 * refused at start-up instead. PCRE2's syntax: $$, $N, ${N}, ${NAME}. */
static int check_replacement(const px_replace_t *r, char *err, size_t errlen) {
  uint32_t groups = 0;
  pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups);
  for (const char *p = r->replacement; (p = strchr(p, '$')) != NULL;) {
    const char *ref = p + 1, *end;
    if (*ref == '$') {
      p = ref + 1;
      continue;
    }
    int braced = *ref == '{';
    if (braced) ref++;
    end = ref;
    if (*ref >= '0' && *ref <= '9') /* a number: its digits only ($1ter is $1, "ter") */
      while (*end >= '0' && *end <= '9') end++;
    else
      while ((*end >= '0' && *end <= '9') || *end == '_' ||
             ((*end | 0x20) >= 'a' && (*end | 0x20) <= 'z'))
        end++;
    if (end == ref || (braced && *end != '}')) {
      snprintf(err, errlen, "bad replacement '%s': '$' at offset %zu must be followed by a "
               "group number, {NAME} or another '$'", r->replacement, (size_t)(p - r->replacement));
      return -1;
    }
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(end - ref), ref);
    int digits = strspn(name, "0123456789") == strlen(name);
    if ((digits && strtoul(name, NULL, 10) > groups) ||
        (!digits && pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)name) < 0)) {
      snprintf(err, errlen, "bad replacement '%s': the regular expression has no group %s",
               r->replacement, name);
      return -1;
    }
    p = braced ? end + 1 : end;
  }
  return 0;
}

/* One candidate split: `expr` before the ':' at `colon`. Returns the
 * rule, NULL with err set when this split cannot be the one (*fatal set
 * when it is the one but the regex or flags are wrong). */
static px_replace_t *try_split(const char *arg, const char *colon, char *err, size_t errlen,
                               int *fatal) {
  char sep = colon[1], *re = NULL, *rep = NULL;
  const char *flags;
  if (sep == '\0' || sep == '\\' || sep == ' ' || (sep >= '0' && sep <= '9') ||
      ((sep | 0x20) >= 'a' && (sep | 0x20) <= 'z'))
    return NULL;
  if (split_parts(colon + 2, sep, &re, &rep, &flags) != 0) return NULL;
  px_replace_t *r = calloc(1, sizeof(*r));
  char *expr = strndup(arg, (size_t)(colon - arg));
  char xerr[2048];
  uint32_t opts = 0;
  if (r == NULL || expr == NULL) goto Fail;
  r->expr = flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, xerr, sizeof(xerr));
  if (r->expr == NULL) goto Fail; /* perhaps a later ':' */
  *fatal = 1;
  if (flt_expr_needs_body(r->expr)) {
    snprintf(err, errlen, "EXPR '%s' has a body term (~b, ~bq, ~bs): the rule is chosen at the "
             "head, before the body; match the body with REGEX instead", expr);
    goto Fail;
  }
  if (parse_flags(flags, &opts, &r->first_only) != 0) {
    snprintf(err, errlen, "unknown flag in '%s' (flags: i m s x g 1)", flags);
    goto Fail;
  }
  if (re[0] == '\0') {
    snprintf(err, errlen, "the regular expression is empty");
    goto Fail;
  }
  r->re = compile_regex(re, opts, err, errlen);
  if (r->re == NULL) goto Fail;
  r->replacement = rep;
  r->replacement_len = strlen(rep);
  rep = NULL;
  if (check_replacement(r, err, errlen) != 0) goto Fail;
  r->response_side = !has_request_term(expr);
  if (strlen(re) > PX_REPLACE_SHOWN)
    snprintf(r->shown, sizeof(r->shown), "%c%.*s...%c", sep, PX_REPLACE_SHOWN, re, sep);
  else
    snprintf(r->shown, sizeof(r->shown), "%c%s%c", sep, re, sep);
  free(expr);
  free(re);
  return r;
Fail:
  free(expr);
  free(re);
  free(rep);
  px_replace_free(r);
  return NULL;
}

px_replace_t *px_replace_parse(const char *arg, char *err, size_t errlen) {
  int fatal = 0;
  snprintf(err, errlen, "use EXPR:/REGEX/REPLACEMENT/[FLAGS] (EXPR must compile; the "
                        "separator is the character after ':')");
  for (const char *c = strchr(arg, ':'); c; c = strchr(c + 1, ':')) {
    px_replace_t *r = try_split(arg, c, err, errlen, &fatal);
    if (r || fatal) return r;
  }
  return NULL;
}

void px_replace_free(px_replace_t *r) {
  if (r == NULL) return;
  flt_expr_free(r->expr);
  pcre2_code_free(r->re);
  free(r->replacement);
  free(r);
}

int px_replace_apply(const px_replace_t *r, const char *body, size_t len, flt_strbuf_t *out,
                     char *err, size_t errlen) {
  size_t cap = out->cap ? out->cap : (size_t)-1;
  PCRE2_SIZE outlen = len + len / 4 + 256;
  if (outlen > cap) outlen = cap;
  uint32_t opts = PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_SUBSTITUTE_UNSET_EMPTY |
                  (r->first_only ? 0 : PCRE2_SUBSTITUTE_GLOBAL);
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
  pcre2_match_context *mctx = pcre2_match_context_create(NULL);
  PCRE2_UCHAR *buf = NULL;
  int rc = PCRE2_ERROR_NOMEMORY;
  flt_strbuf_reset(out);
  if (mctx) {
    pcre2_set_match_limit(mctx, REPLACE_MATCH_LIMIT);
    pcre2_set_heap_limit(mctx, REPLACE_HEAP_LIMIT_KIB);
  }
  for (int attempt = 0; md && mctx && attempt < 2 && rc == PCRE2_ERROR_NOMEMORY; attempt++) {
    if (outlen > cap) break; /* the result would pass the cap */
    free(buf);
    buf = malloc(outlen + 1);
    if (buf == NULL) break;
    PCRE2_SIZE have = outlen;
    rc = pcre2_substitute(r->re, (PCRE2_SPTR)body, len, 0, opts, md, mctx,
                          (PCRE2_SPTR)r->replacement, r->replacement_len, buf, &have);
    outlen = have; /* on NOMEMORY: the length needed */
  }
  pcre2_match_data_free(md);
  pcre2_match_context_free(mctx);
  if (rc > 0 && flt_strbuf_append(out, buf, outlen) != 0) rc = PCRE2_ERROR_NOMEMORY;
  free(buf);
  if (rc >= 0) return rc;
  PCRE2_UCHAR msg[256];
  if (rc == PCRE2_ERROR_NOMEMORY)
    snprintf((char *)msg, sizeof(msg), "the result would be larger than --body-cap");
  else if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
    snprintf((char *)msg, 8, "error");
  snprintf(err, errlen, "%s", (const char *)msg);
  flt_strbuf_reset(out);
  return -1;
}
