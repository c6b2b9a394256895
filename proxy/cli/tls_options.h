/* tls_options.h — setters and row makers of the option table (options.c)
 * for the TLS options: --tls-min/--tls-max and their per-leg forms, the
 * lists handed to OpenSSL, --upstream-ca. */
#ifndef TLSPEEK_TLS_OPTIONS_H
#define TLSPEEK_TLS_OPTIONS_H

#include <stddef.h>

#include "proxy/cli/options.h"

/* A TLS version ("1.0" ... "1.3") into tls_min[] (o->hi == 0) or tls_max[]
 * (o->hi == 1) of the legs in o->lo (bit 0: client leg, bit 1: upstream
 * leg). A bad version ends the process with a usage error. */
void px_opt_set_tls_version(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val);

/* --upstream-ca FILE: must be readable. */
void px_opt_set_upstream_ca(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val);

/* A row for a version option; rows without help join the next one's line. */
#define PX_OPT_TLS_VERSION(opt, legs, max, text)                                        \
  {opt, 0, "V", text, px_opt_set_tls_version, 0, legs, max, NULL, (text) ? 0 : PX_OPT_JOIN}

/* A row for a list OpenSSL parses (checked at start-up by proxy/tlsopts.c),
 * stored as a string into `field` of px_config_t. The table's set_string
 * setter is passed in as `setter`. */
#define PX_OPT_TLS_LIST(opt, field, setter, text)                                      \
  {opt, 0, "LIST", text, setter, offsetof(px_config_t, field), 0, 0, "option %s needs a list"}

#endif
