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
/* Our upstream socket `fd` is connecting to `dst` (its local address is
 * chosen) / is about to close. */
void px_loopguard_add(int fd, const struct sockaddr *dst);
void px_loopguard_remove(int fd);
/* 1 when the accepted connection `fd` is one of our upstream sockets come
 * back: its peer is our socket's local address, and its local address (or,
 * after a REDIRECT rule, its original destination) is where our socket
 * connects to. A client that merely shares a local port with one of our
 * sockets (Linux reuses ephemeral ports across destinations) is not. */
int px_loopguard_is_ours(int fd);

#endif
