#include "proxy/loopguard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* Local addresses of our upstream sockets, as an open-addressing set. A full
 * table only means that a loop is caught one connection later (by the
 * redirected connection's own upstream), never a wrong refusal. */
#define SLOTS 16384

typedef struct entry {
  int used;
  struct sockaddr_storage addr;
} entry_t;

static atomic_int enabled;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t table[SLOTS];

void px_loopguard_enable(void) { atomic_store(&enabled, 1); }

/* Compares family, address and port only (no padding, no flow info). */
static int same(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static size_t hash(const struct sockaddr_storage *a) {
  uint32_t h = 2166136261u;
  const uint8_t *p;
  size_t n;
  if (a->ss_family == AF_INET) {
    p = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_port;
    n = 6; /* port then address */
  } else {
    const struct sockaddr_in6 *x = (const void *)a;
    h = (h ^ (uint8_t)(x->sin6_port >> 8)) * 16777619u;
    h = (h ^ (uint8_t)x->sin6_port) * 16777619u;
    p = (const uint8_t *)&x->sin6_addr;
    n = 16;
  }
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h % SLOTS;
}

static int local_addr(int fd, struct sockaddr_storage *out) {
  socklen_t len = sizeof(*out);
  memset(out, 0, sizeof(*out));
  return getsockname(fd, (struct sockaddr *)out, &len);
}

void px_loopguard_add(int fd) {
  struct sockaddr_storage a;
  if (!atomic_load(&enabled) || local_addr(fd, &a) != 0) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0, h = hash(&a); i < SLOTS / 8; i++, h = (h + 1) % SLOTS) {
    if (!table[h].used) {
      table[h].used = 1;
      table[h].addr = a;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
}

void px_loopguard_remove(int fd) {
  struct sockaddr_storage a;
  if (!atomic_load(&enabled) || local_addr(fd, &a) != 0) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0, h = hash(&a); i < SLOTS / 8; i++, h = (h + 1) % SLOTS) {
    if (table[h].used && same(&table[h].addr, &a)) {
      table[h].used = 0;
      /* Re-insert the rest of the probe run so lookups stay correct. */
      for (size_t j = (h + 1) % SLOTS; table[j].used; j = (j + 1) % SLOTS) {
        entry_t e = table[j];
        table[j].used = 0;
        size_t k = hash(&e.addr);
        while (table[k].used) k = (k + 1) % SLOTS;
        table[k] = e;
      }
      break;
    }
  }
  pthread_mutex_unlock(&lock);
}

int px_loopguard_is_ours(const struct sockaddr_storage *peer) {
  int found = 0;
  if (!atomic_load(&enabled)) return 0;
  pthread_mutex_lock(&lock);
  for (size_t i = 0, h = hash(peer); i < SLOTS && table[h].used; i++, h = (h + 1) % SLOTS) {
    if (same(&table[h].addr, peer)) {
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  return found;
}
