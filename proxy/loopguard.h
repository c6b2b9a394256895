/* loopguard.h — keeps tlspeek from connecting to itself.
 *
 * Two checks: before connecting, whether a resolved address is one of
 * tlspeek's own listeners (px_loopguard_targets_us); and at accept, whether
 * the new client is one of tlspeek's own upstream sockets coming back in —
 * through a REDIRECT rule that does not exempt tlspeek's traffic, or any
 * path the first check cannot see (px_loopguard_is_ours). Either way the
 * loop is refused at once instead of recursing until file descriptors run
 * out. Thread-safe once the workers run. */
#ifndef TLSPEEK_LOOPGUARD_H
#define TLSPEEK_LOOPGUARD_H

#include <sys/socket.h>

/* Turns the upstream-socket table on. */
void px_loopguard_enable(void);
/* Records the bound address of listening socket `fd`. Call from the main
 * thread before the workers start; up to PX_LOOPGUARD_MAX_LISTENERS. */
#define PX_LOOPGUARD_MAX_LISTENERS 16
void px_loopguard_add_listener(int fd);
/* 1 when connecting to `dst` would reach one of our listeners: the same
 * address and port, or any local address (loopback, 0.0.0.0, ::, an
 * interface address) at the port of a wildcard listener. IPv4-mapped IPv6
 * addresses count as the IPv4 address. When it is 1 and `listener` is
 * not NULL, it receives the listener's address as text. */
int px_loopguard_targets_us(const struct sockaddr_storage *dst, char *listener, size_t len);
/* Our upstream socket `fd` is connected / about to close. */
void px_loopguard_add(int fd);
void px_loopguard_remove(int fd);
/* 1 when `peer` (a new client's address) is one of our upstream sockets. */
int px_loopguard_is_ours(const struct sockaddr_storage *peer);

#endif
