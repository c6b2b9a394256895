/* web.h — the web page's server (`--web`, `tlspeek web FILE`): an HTTP/1.1
 * server on its own thread and libuv loop that serves the page (assets
 * compiled in from filters/web/assets/) and the JSON API over the flow
 * store (filters/web/store.h). The API is documented in README.md
 * ("Flow browser") and proxy/web/README.md.
 *
 * Security: every /api/ request needs the token (32 hex digits from
 * RAND_bytes, new at each start) and every request a Host naming this
 * server (no DNS rebinding); every response carries a strict
 * Content-Security-Policy. Limits: PX_WEB_MAX_HEAD, PX_WEB_MAX_BODY,
 * PX_WEB_MAX_CLIENTS, PX_WEB_SSE_BACKLOG, PX_WEB_REQUEST_MS. */
#ifndef TLSPEEK_WEB_H
#define TLSPEEK_WEB_H

#include <stddef.h>
#include <stdint.h>

#include "filters/web/store.h"

#define PX_WEB_DEFAULT_PORT 8081
#define PX_WEB_MAX_HEAD (16u * 1024)     /* request line and headers */
#define PX_WEB_MAX_BODY (1024u * 1024)   /* a POST body */
#define PX_WEB_MAX_CLIENTS 32            /* browser connections; then 503 */
#define PX_WEB_SSE_BACKLOG (16u << 20)   /* unsent event bytes before a reader is dropped */
#define PX_WEB_REQUEST_MS 10000          /* to send a complete request; then closed */

typedef struct px_web_opts {
  char host[256]; /* where to listen: "127.0.0.1", "::1", ... */
  uint16_t port;  /* 0: the kernel picks */
  flt_web_store_t *store;
  const char *file;      /* file mode: the transcript; NULL when live */
  char proxy[300];       /* live: "127.0.0.1:8080", the explicit listener ("" none) */
  const char *ca;        /* live: the CA certificate clients trust */
  const char *proxyauth; /* live: "user:pass" the proxy asks for, or NULL */
  const char *version;
} px_web_opts_t;

typedef struct px_web px_web_t;

/* Parses "[HOST:]PORT" ("8081", "127.0.0.1:8081", "[::1]:8081") into
 * o->host / o->port. 0, or -1 with a sentence in err. */
int px_web_parse_addr(const char *spec, px_web_opts_t *o, char *err, size_t errlen);

/* Listens, prints the start line "tlspeek: web: http://HOST:PORT/?token=
 * TOKEN" on stderr (and a warning for an address other than loopback),
 * and starts the thread. NULL with a sentence in err when it cannot. */
px_web_t *px_web_start(const px_web_opts_t *o, char *err, size_t errlen);
/* Stops the thread and closes every connection. */
void px_web_stop(px_web_t *w);

#endif
