/* passthrough.h — deciding which TLS connections are not intercepted. */
#ifndef TLSPEEK_PASSTHROUGH_H
#define TLSPEEK_PASSTHROUGH_H

#include <stdint.h>

#include "filters/filter.h"
#include "proxy/config.h"

/* Compiles --ignore-hosts; logs and returns -1 on a bad regex. */
int px_passthrough_init(const px_config_t *cfg);
void px_passthrough_free(void);
/* The --ignore-hosts pattern matching "host:port" or the SNI, else NULL. */
const char *px_passthrough_ignored(const flt_conn_t *c, const char *host, uint16_t port,
                                   const char *sni);
/* (px_passthrough_maybe and the px_passthrough_note_* calls take a
 * session: they are declared in proxy/session.h.) */

/* Writes the automatic passthroughs still running to stderr, one line each
 * with the time left (SIGUSR1). `enabled`: --auto-passthrough is on. */
void px_passthrough_list(int enabled);

#endif
