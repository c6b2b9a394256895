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

/* A socket bound to a port of its own on 127.0.0.1 (UDP: nothing listens). */
static int bound(void) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

/* The table grows past its first size and shrinks back as hundreds of
 * upstream sockets come and go: a loop is still found among them, and an
 * entry removed while the others move is gone. */
#define MANY 600
static void test_loop_found_while_the_table_grows_and_shrinks(void **state) {
  struct sockaddr_in upstream_addr, our_addr;
  int others[MANY];
  (void)state;

  px_loopguard_enable();
  int upstream = listener(&upstream_addr);
  int ours = listener(&our_addr);
  for (int i = 0; i < MANY / 2; i++) {
    others[i] = bound();
    px_loopguard_add(others[i], (const struct sockaddr *)&upstream_addr);
  }
  int loop = connected(&our_addr, NULL);
  px_loopguard_add(loop, (const struct sockaddr *)&our_addr);
  for (int i = MANY / 2; i < MANY; i++) {
    others[i] = bound();
    px_loopguard_add(others[i], (const struct sockaddr *)&upstream_addr);
  }
  int l = accepted(ours);
  assert_int_equal(px_loopguard_is_ours(l), 1);
  for (int i = 0; i < MANY - 3; i++) {
    px_loopguard_remove(others[i]);
    close(others[i]);
  }
  assert_int_equal(px_loopguard_is_ours(l), 1);
  px_loopguard_remove(loop);
  assert_int_equal(px_loopguard_is_ours(l), 0);
  for (int i = MANY - 3; i < MANY; i++) {
    px_loopguard_remove(others[i]);
    close(others[i]);
  }
  close(loop); /* first: the TIME_WAIT is the client side's, bound with SO_REUSEADDR */
  close(l);
  close(ours);
  close(upstream);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_local_port_other_destination_is_not_ours),
      cmocka_unit_test(test_loop_found_while_the_table_grows_and_shrinks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
