/* loopguard.h — recognises tlspeek's own upstream connections when they
 * come back in through a transparent listener (a REDIRECT rule that does
 * not exempt tlspeek's traffic), so the loop is refused at once instead of
 * recursing until file descriptors run out. Thread-safe. */
#ifndef TLSPEEK_LOOPGUARD_H
#define TLSPEEK_LOOPGUARD_H

#include <sys/socket.h>

/* Turns the guard on (only transparent mode needs it). */
void px_loopguard_enable(void);
/* Our upstream socket `fd` is connected / about to close. */
void px_loopguard_add(int fd);
void px_loopguard_remove(int fd);
/* 1 when `peer` (a new client's address) is one of our upstream sockets. */
int px_loopguard_is_ours(const struct sockaddr_storage *peer);

#endif
