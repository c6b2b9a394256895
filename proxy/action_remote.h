/* action_remote.h — --map-remote: a matching request goes to another origin
 * (scheme, host, port, path prefix), on an upstream connection to that
 * origin. Called by session_http.c at a request head, before its flow
 * starts; works on the session and flow level (not inside a codec).
 *
 * The path: the rule's PREFIX (without its trailing '/') goes before the
 * request's path and query: /x?y with https://h:8443/v2 becomes /v2/x?y;
 * without a prefix the path stays as it is. Host (and SNI, and the name the
 * certificate is verified against) follow the new origin. The flow records
 * the URL actually fetched (flow.url, scheme), and its action line says
 * both ("map-remote: https://a.test/x -> https://127.0.0.1:8443/x").
 */
#ifndef TLSPEEK_ACTION_REMOTE_H
#define TLSPEEK_ACTION_REMOTE_H

#include <stdint.h>

#include "proxy/config.h"
#include "filters/filter.h"

struct px_session;

/* Where a mapped request goes. */
typedef struct px_remote_target {
  const px_map_remote_t *rule; /* the rule that matched */
  char *path;                  /* the new request target, origin-form (malloc'd) */
  char *url;                   /* the new absolute URL (malloc'd) */
  char authority[300];         /* the new Host value: [v6] and :port when not the default */
} px_remote_target_t;

/* The connection's own origin, kept once a request was mapped away from
 * it, so that the requests that are not mapped go back there. */
typedef struct px_remote_home {
  char host[256];
  uint16_t port;
  int tls;
} px_remote_home_t;

/* The first --map-remote rule of `cfg` matching the flow view `f` (its
 * url, req and conn are read) fills `t`: 1. None: 0. Out of memory: -1.
 * Free `t` with px_remote_target_free after 1. */
int px_remote_map(const px_config_t *cfg, const flt_flow_t *f, px_remote_target_t *t);
void px_remote_target_free(px_remote_target_t *t);

/* Points the session's upstream leg at the origin the request needs: the
 * target of `t`, or (NULL: not mapped) the connection's own origin. An
 * unconnected leg is simply aimed (the caller connects it); a leg connected
 * elsewhere is switched the way a request to another origin is (the
 * request waits, reading held, until the answers before it are in; then
 * the connection closes and the request is parsed again): PX_CODEC_HOLD is
 * returned for that. 0: go on. */
int px_remote_route(struct px_session *s, const px_remote_target_t *t);

#endif
