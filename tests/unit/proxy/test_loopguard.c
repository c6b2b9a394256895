/* Unit tests for the accept-side loop check (proxy/loopguard.c): a new
 * client is one of tlspeek's own upstream sockets only when both ends of
 * the connection match, not when it merely shares a local port with one
 * (Linux hands out the same ephemeral port for different destinations). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/loopguard.h"

static int listener(struct sockaddr_in *addr) {
  socklen_t len = sizeof(*addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(addr, 0, sizeof(*addr));
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
  assert_int_equal(listen(fd, 8), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
  return fd;
}

/* A socket connected to `to`; from `from` when it is not NULL. SO_REUSEADDR
 * lets two connected sockets share one local port, as connect()'s own port
 * choice does for different destinations. */
static int connected(const struct sockaddr_in *to, const struct sockaddr_in *from) {
  int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  if (from) assert_int_equal(bind(fd, (const struct sockaddr *)from, sizeof(*from)), 0);
  assert_int_equal(connect(fd, (const struct sockaddr *)to, sizeof(*to)), 0);
  return fd;
}

static int accepted(int lfd) {
  int fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  return fd;
}

static void test_same_local_port_other_destination_is_not_ours(void **state) {
  struct sockaddr_in upstream_addr, our_addr, shared;
  socklen_t len = sizeof(shared);
  (void)state;

  px_loopguard_enable();
  int upstream = listener(&upstream_addr); /* a server tlspeek talks to */
  int ours = listener(&our_addr);          /* tlspeek's own listener */
  int up = connected(&upstream_addr, NULL); /* tlspeek's upstream socket */
  px_loopguard_add(up, (const struct sockaddr *)&upstream_addr);
  assert_int_equal(getsockname(up, (struct sockaddr *)&shared, &len), 0);

  /* A client from the very same local address and port, to tlspeek. */
  int client = connected(&our_addr, &shared);
  int c = accepted(ours);
  assert_int_equal(px_loopguard_is_ours(c), 0);

  /* tlspeek's own socket connecting to its listener is a loop. */
  int loop = connected(&our_addr, NULL);
  px_loopguard_add(loop, (const struct sockaddr *)&our_addr);
  int l = accepted(ours);
  assert_int_equal(px_loopguard_is_ours(l), 1);

  /* Gone from the table once removed. */
  px_loopguard_remove(loop);
  assert_int_equal(px_loopguard_is_ours(l), 0);
  px_loopguard_remove(up);
  close(l);
  close(loop);
  close(c);
  close(client);
  close(up);
  close(ours);
  close(upstream);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_local_port_other_destination_is_not_ours),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
