/* options.h — tlspeek's command-line options as one table.
 *
 * Every option is one row of px_options: its names, its value's
 * metavariable, its help text and the setter that stores it into a
 * px_config_t. Parsing and the `--help` text are both driven by that table,
 * so an option cannot be accepted without being documented or the reverse. */
#ifndef TLSPEEK_OPTIONS_H
#define TLSPEEK_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "proxy/config.h"

typedef struct px_option px_option_t;

/* Stores one option. `name` is the spelling the user wrote (for messages);
 * `val` is its value, or NULL for an option without one (for a repeated
 * short flag such as -vvv, the letters after the dash). A bad value ends the
 * process through px_usage_error(). */
typedef void (*px_opt_set_fn)(px_config_t *cfg, const px_option_t *o, const char *name,
                              const char *val);

enum {
  PX_OPT_GLOBAL = 1 << 0,  /* also valid after `ca` (shared with the CA command) */
  PX_OPT_HIDDEN = 1 << 1,  /* accepted, not shown in --help */
  PX_OPT_JOIN = 1 << 2,    /* help: listed on one line with the next rows, sharing
                              the help text of the first row that is not JOIN */
  PX_OPT_ZERO_OK = 1 << 3, /* seconds: "0" is allowed (it means "never") */
  PX_OPT_REPEAT = 1 << 4   /* short flag that may be repeated in one word: -vvv */
};

struct px_option {
  const char *lng;   /* "--mode", or NULL for a short-only option */
  char shrt;         /* 'm', or 0 */
  const char *meta;  /* "MODE"; NULL: the option takes no value */
  const char *help;  /* lines separated by '\n'; for a text row (set == NULL)
                        the text printed as it is */
  px_opt_set_fn set; /* NULL: a text row of the help (section header, notes) */
  size_t off;        /* typed setters: offsetof(px_config_t, field) */
  long lo, hi;       /* typed setters: allowed range (see each setter) */
  const char *err;   /* typed setters: message for a bad value */
  unsigned flags;    /* PX_OPT_* */
  int col;           /* help column of the text when not the usual one */
};

/* The table, in --help order; *n receives the number of rows. */
const px_option_t *px_options(size_t *n);

/* help.c: writes the --help text, generated from `options` (the table of
 * px_options(), `n` rows), to `out`. */
void px_opt_write_help(FILE *out, const px_option_t *options, size_t n);

/* help.c: --version: tlspeek's, OpenSSL's and libuv's versions; exits 0. */
void px_opt_show_version(px_config_t *cfg, const px_option_t *o, const char *name,
                         const char *val);

/* The defaults every option starts from. */
void px_config_defaults(px_config_t *cfg);

/* Parses argv[1..argc-1] into cfg. Options may stand anywhere; the first
 * bare word "ca" selects the CA subcommand: the words after it that are not
 * PX_OPT_GLOBAL options go to rest[] (which must hold argc pointers) and
 * *nrest. Returns 1 for the CA subcommand, 0 for the proxy. Bad usage
 * (unknown option, missing or bad value, stray word) ends the process with
 * status 2; --help and --version end it with status 0. */
int px_opt_parse(int argc, char **argv, px_config_t *cfg, char **rest, int *nrest);
/* Does the option word `arg` ("-x" or "--name", not "--name=VALUE") take
 * the next word as its value? Asked of the table; an unknown option does
 * not (px_opt_parse refuses it). */
int px_opt_takes_next(const char *arg);

/* opt_intercept.c: the setters of --intercept and --intercept-timeout
 * (px_opt_set_fn), and the check that needs every option: --intercept
 * without --web exits 2. */
void px_opt_set_intercept(px_config_t *cfg, const px_option_t *o, const char *name,
                          const char *val);
void px_opt_set_intercept_timeout(px_config_t *cfg, const px_option_t *o, const char *name,
                                  const char *val);
void px_opt_check_intercept(const px_config_t *cfg);
#define PX_OPT_INTERCEPT_HELP                                 \
  "hold matching requests (EXPR is the whole value; with\n" \
  "~s, responses) until resumed, edited or killed in the\n" \
  "flow browser (needs --web; repeatable)"
#define PX_OPT_INTERCEPT_TIMEOUT_HELP                          \
  "then ACT: kill (default) or resume, after S seconds\n"    \
  "(default 300; 5m, 1h; 0 waits forever)"


/* help.c: prints "tlspeek: error: ..." and the --help hint to stderr;
 * exits 2. */
void px_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
