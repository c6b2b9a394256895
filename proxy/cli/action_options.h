/* action_options.h — the values of --map-remote, --throttle and --replace: how EXPR and
 * the argument are split, what the argument may be, the option rows' help
 * texts. The rows themselves are in the one option table (options.c). */
#ifndef TLSPEEK_ACTION_OPTIONS_H
#define TLSPEEK_ACTION_OPTIONS_H

#include <stddef.h>

#include "proxy/cli/options.h"

#define PX_HELP_MAP_REMOTE                                                  \
  "send matching requests to another origin; URL is\n"                      \
  "http[s]://HOST[:PORT][/PREFIX]: scheme, host and port\n"                 \
  "replace the request's, PREFIX goes before its path\n"                    \
  "(/x -> /PREFIX/x); Host and SNI follow, the new\n"                       \
  "origin's certificate is verified as usual. EXPR ends\n"                  \
  "at the last ':' before http:// or https://"
#define PX_HELP_THROTTLE                                                    \
  "limit matching flows to RATE bytes/s\n"                                  \
  "each way (k, m: KiB, MiB; e.g. 64k) and delay the\n"                     \
  "response's first byte by LATENCY (300ms, 1.5s).\n"                       \
  "Split from the right: '~d api:64k:300ms'. For both:\n"                   \
  "repeatable, the first matching rule wins"

/* Parse one value into `out`: 0, or -1 with a message in `err` (naming
 * what is wrong, without the option's name). The expression is compiled
 * (freed by the caller, flt_expr_free). */
int px_map_remote_parse(const char *val, px_map_remote_t *out, char *err, size_t errlen);
int px_throttle_parse(const char *val, px_throttle_rule_t *out, char *err, size_t errlen);

/* The setters of the two rows: append a rule, or exit 2 with a message
 * naming the option (px_usage_error). */
void px_opt_set_map_remote(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val);
void px_opt_set_throttle(px_config_t *cfg, const px_option_t *o, const char *name,
                         const char *val);
/* --replace EXPR:/REGEX/REPLACEMENT/[FLAGS] (proxy/action_replace.h): a
 * rule appended to cfg->replaces; a bad one ends the process with a usage
 * error naming what is wrong (PCRE2's message and offset for the regex). */
void px_opt_set_replace(px_config_t *cfg, const px_option_t *o, const char *name,
                        const char *val);

#endif
