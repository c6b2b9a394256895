/* dns.h — name resolution that never blocks a worker: c-ares driven on the
 * worker's own libuv loop (its sockets watched with uv_poll, its timeouts
 * with a uv_timer), one channel per worker thread.
 *
 * Numeric addresses (in every spelling inet_aton accepts: 127.1,
 * 2130706433, 0x7f000001) and the "localhost" names of RFC 6761 are
 * answered without a query (px_dns_resolve_local); other names go through
 * /etc/hosts, then DNS (c-ares' "fb" lookup order). Not thread-safe: a
 * resolver belongs to the thread that runs its loop. */
#ifndef TLSPEEK_DNS_H
#define TLSPEEK_DNS_H

#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* Addresses kept from one answer; the rest are dropped. */
#define PX_DNS_MAX_ADDRS 8

typedef struct px_dns_addrs {
  int n;
  struct sockaddr_storage a[PX_DNS_MAX_ADDRS]; /* ports already set */
} px_dns_addrs_t;

typedef struct px_dns px_dns_t;
typedef struct px_dns_query px_dns_query_t;

/* A lookup's outcome. `status` is 0 with `addrs` (valid only during the
 * call) filled, or the HTTP status that reports the failure (504 when the
 * DNS server did not answer in time, 502 otherwise) with `why` saying what
 * went wrong, naming the host. */
typedef void (*px_dns_cb)(void *arg, int status, const char *why, const px_dns_addrs_t *addrs);

/* Creates the resolver on `loop`. `servers` is NULL (use /etc/resolv.conf)
 * or "IP[:PORT][,IP[:PORT]...]"; `timeout_ms` bounds one lookup. Returns 0,
 * or -1 with `err` filled. */
int px_dns_new(px_dns_t **out, uv_loop_t *loop, const char *servers, uint64_t timeout_ms,
               char *err, size_t errlen);
/* Abandons every lookup (their callbacks never run) and closes the
 * resolver's handles; the loop must run once more to finish. */
void px_dns_free(px_dns_t *r);

/* Starts looking up `host`. The callback runs exactly once, at the latest
 * after the resolver's timeout — unless px_dns_cancel() comes first. It may
 * run before px_dns_lookup returns (an /etc/hosts answer). `*slot` holds
 * the pending query and is set to NULL just before the callback runs. */
void px_dns_lookup(px_dns_t *r, const char *host, uint16_t port, px_dns_cb cb, void *arg,
                   px_dns_query_t **slot);
/* The pending query in `*slot` (if any) is abandoned: its callback never
 * runs. `*slot` becomes NULL. */
void px_dns_cancel(px_dns_query_t **slot);

/* Answers numeric hosts and "localhost" without a query. Returns 1 with
 * `out` filled, 0 when `host` needs a lookup. */
int px_dns_resolve_local(const char *host, uint16_t port, px_dns_addrs_t *out);

/* Checks a --dns-server value; returns 0, or -1 with `err` filled. */
int px_dns_check_servers(const char *servers, char *err, size_t errlen);

#endif
