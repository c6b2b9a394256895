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
/* Auto-passthrough: hosts whose clients refused tlspeek's certificate.
 * remember() returns 1 when the host was new (say so once). */
int px_passthrough_remembered(const char *name);
int px_passthrough_remember(const char *name);

#endif
