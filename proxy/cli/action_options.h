/* action_options.h — setters of the option table (options.c) for the
 * actions that change traffic (README.md, "Change traffic"). */
#ifndef TLSPEEK_ACTION_OPTIONS_H
#define TLSPEEK_ACTION_OPTIONS_H

#include "proxy/cli/options.h"

/* --replace EXPR:/REGEX/REPLACEMENT/[FLAGS] (proxy/action_replace.h): a
 * rule appended to cfg->replaces; a bad one ends the process with a usage
 * error naming what is wrong (PCRE2's message and offset for the regex). */
void px_opt_set_replace(px_config_t *cfg, const px_option_t *o, const char *name,
                        const char *val);

#endif
