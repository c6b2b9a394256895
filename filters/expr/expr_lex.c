/* expr_lex.c — tokens of the match-expression language, read through the
 * bounded cursor of expr_internal.h.
 *
 * Word boundaries follow mitmproxy's filter grammar so typed habits carry
 * over: an unquoted regex runs until a blank or one of ( ) ~ ' ", which means
 * `~d foo|bar` is the regex "foo|bar". Operators ! & | are operators only
 * where a token starts. */
#include "filters/expr/expr_internal.h"

#include <stdlib.h>
#include <string.h>

static int is_blank(int ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int is_alnum(int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static int ends_word(int ch, expr_word_mode_t mode) {
  if (ch < 0 || is_blank(ch)) return 1;
  if (ch == '(' || ch == ')' || ch == '~' || ch == '\'' || ch == '"') return 1;
  return mode == EXPR_WORD_PLAIN && (ch == '!' || ch == '&' || ch == '|');
}

static void skip_blanks(expr_cursor_t *cur) {
  while (is_blank(expr_cur_peek(cur)))
    expr_cur_skip(cur, 1);
}

static void lex_word(expr_cursor_t *cur, expr_word_mode_t mode, expr_token_t *tok) {
  tok->kind = EXPR_TOK_WORD;
  tok->pos = cur->pos;
  while (!ends_word(expr_cur_peek(cur), mode))
    expr_cur_skip(cur, 1);
  tok->len = cur->pos - tok->pos;
}

/* A backslash always takes the next byte with it, so \\" is an escaped
 * backslash followed by the closing quote. */
static int lex_quoted(expr_cursor_t *cur, expr_token_t *tok) {
  int quote = expr_cur_peek(cur);

  tok->kind = EXPR_TOK_QUOTED;
  tok->pos = cur->pos;
  expr_cur_skip(cur, 1);
  for (;;) {
    int ch = expr_cur_peek(cur);
    if (ch < 0) {
      tok->len = cur->pos - tok->pos;
      return -1;
    }
    if (ch == '\\' && expr_cur_peek_at(cur, 1) >= 0) {
      expr_cur_skip(cur, 2);
      continue;
    }
    expr_cur_skip(cur, 1);
    if (ch == quote) break;
  }
  tok->len = cur->pos - tok->pos;
  return 0;
}

int expr_lex_token(expr_cursor_t *cur, expr_token_t *tok) {
  int ch;

  skip_blanks(cur);
  tok->pos = cur->pos;
  tok->len = 1;
  ch = expr_cur_peek(cur);
  switch (ch) {
    case -1:
      tok->kind = EXPR_TOK_END;
      tok->len = 0;
      return 0;
    case '!':
      tok->kind = EXPR_TOK_NOT;
      break;
    case '&':
      tok->kind = EXPR_TOK_AND;
      break;
    case '|':
      tok->kind = EXPR_TOK_OR;
      break;
    case '(':
      tok->kind = EXPR_TOK_LPAREN;
      break;
    case ')':
      tok->kind = EXPR_TOK_RPAREN;
      break;
    case '\'':
    case '"':
      return lex_quoted(cur, tok);
    case '~':
      tok->kind = EXPR_TOK_TERM;
      expr_cur_skip(cur, 1);
      while (is_alnum(expr_cur_peek(cur)))
        expr_cur_skip(cur, 1);
      tok->len = cur->pos - tok->pos;
      return 0;
    default:
      lex_word(cur, EXPR_WORD_REGEX, tok);
      return 0;
  }
  expr_cur_skip(cur, 1);
  return 0;
}

int expr_lex_arg(expr_cursor_t *cur, expr_word_mode_t mode, expr_token_t *tok) {
  int ch;

  skip_blanks(cur);
  ch = expr_cur_peek(cur);
  if (ch == '\'' || ch == '"') return lex_quoted(cur, tok);
  if (ends_word(ch, mode)) {
    tok->kind = EXPR_TOK_END;
    tok->pos = cur->pos;
    tok->len = 0;
    return 0;
  }
  lex_word(cur, mode, tok);
  return 0;
}

/* Walks the inside of a quoted token, calling back per value byte. Shared by
 * the unquoting and the offset mapping so the two cannot disagree. */
typedef struct quoted_walk {
  expr_cursor_t in; /* the text between the quotes */
  int quote;
  int literal_next; /* the previous byte was a kept backslash */
} quoted_walk_t;

static void quoted_walk_init(quoted_walk_t *w, const char *text, const expr_token_t *tok) {
  w->quote = (unsigned char)text[tok->pos];
  w->in.ptr = text + tok->pos + 1;
  /* An unterminated token has no closing quote; compile never gets here
   * with one, but stay in bounds regardless. */
  w->in.len = tok->len >= 2 ? tok->len - 2 : 0;
  w->in.pos = 0;
  w->literal_next = 0;
}

/* Returns the next value byte and advances; -1 at the end. Pairs bytes
 * exactly as lex_quoted() does: a backslash and the byte after it. */
static int quoted_walk_next(quoted_walk_t *w) {
  int ch = expr_cur_peek(&w->in);
  int escape = !w->literal_next && ch == '\\' && expr_cur_peek_at(&w->in, 1) >= 0;

  w->literal_next = 0;
  if (escape && expr_cur_peek_at(&w->in, 1) == w->quote) {
    expr_cur_skip(&w->in, 2);
    return w->quote;
  }
  if (escape) w->literal_next = 1;
  if (ch >= 0) expr_cur_skip(&w->in, 1);
  return ch;
}

char *expr_tok_value(const char *text, const expr_token_t *tok, size_t *len) {
  char *out = malloc(tok->len + 1);
  size_t n = 0;

  if (out == NULL) return NULL;
  if (tok->kind == EXPR_TOK_QUOTED) {
    quoted_walk_t w;
    int ch;
    quoted_walk_init(&w, text, tok);
    while ((ch = quoted_walk_next(&w)) >= 0)
      out[n++] = (char)ch;
  } else {
    memcpy(out, text + tok->pos, tok->len);
    n = tok->len;
  }
  out[n] = '\0';
  *len = n;
  return out;
}

size_t expr_tok_text_pos(const char *text, const expr_token_t *tok, size_t value_off) {
  quoted_walk_t w;

  if (tok->kind != EXPR_TOK_QUOTED) return tok->pos + (value_off < tok->len ? value_off : tok->len);
  quoted_walk_init(&w, text, tok);
  for (size_t i = 0; i < value_off && quoted_walk_next(&w) >= 0; i++) {
  }
  return tok->pos + 1 + w.in.pos;
}
