#include "proxy/loopguard.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our upstream sockets, as an open-addressing set keyed by local address.
 * A local address alone does not name a connection: Linux gives the same
 * ephemeral port to connections to different destinations, so a client of
 * ours may well come from 127.0.0.1:41514 while our own upstream socket to
 * nginx uses 127.0.0.1:41514 too. An entry therefore also holds where the
 * socket connects to, and a new client is ours only when both ends match.
 * A full table only means that a loop is caught one connection later (by
 * the redirected connection's own upstream), never a wrong refusal.
 *
 * The table follows the number of open upstream sockets: it doubles when
 * half full and halves when less than an eighth is used, between MIN_SLOTS
 * and MAX_SLOTS. A fixed table of the largest size would keep every page
 * that hashing ever spread an entry on resident: up to the whole 1.5 MiB
 * once a few thousand upstream connections have come and gone, whatever
 * few are open now. */
#define MIN_SLOTS 256
#define MAX_SLOTS 32768
#define MAX_SAME_LOCAL 8 /* our sockets sharing one local address, compared */

/* An address as the table keeps it: family, port and IP only, 20 bytes
 * instead of a 128-byte sockaddr_storage. Zeroed before it is filled, so
 * that memcmp compares two. */
typedef struct lg_addr {
  uint8_t family; /* AF_INET or AF_INET6 */
  uint8_t pad;
  uint16_t port;  /* network order */
  uint8_t ip[16]; /* the IPv4 address in its first 4 bytes */
} lg_addr_t;

typedef struct entry {
  int used;
  int fd;           /* tells apart entries with the same local address */
  lg_addr_t addr;   /* local */
  lg_addr_t remote; /* the destination connect() was given */
} entry_t;

static atomic_int enabled;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *table; /* `slots` entries (a power of two), NULL until the first add */
static size_t slots, entries;

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

static void pack(const struct sockaddr *a, lg_addr_t *out) {
  memset(out, 0, sizeof(*out));
  out->family = (uint8_t)a->sa_family;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a;
    out->port = x->sin_port;
    memcpy(out->ip, &x->sin_addr, 4);
  } else if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a;
    out->port = x->sin6_port;
    memcpy(out->ip, &x->sin6_addr, 16);
  }
}

static int packed_same(const lg_addr_t *a, const lg_addr_t *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

/* The first slot to probe for `a` in a table of `n` slots. */
static size_t hash(const lg_addr_t *a, size_t n) {
  uint32_t h = 2166136261u;
  const uint8_t *p = (const uint8_t *)&a->port;
  size_t len = a->family == AF_INET ? 4 : 16;
  for (size_t i = 0; i < 2; i++) h = (h ^ p[i]) * 16777619u; /* port then address */
  for (size_t i = 0; i < len; i++) h = (h ^ a->ip[i]) * 16777619u;
  return h & (n - 1);
}

/* Moves every entry into a fresh table of `n` slots; keeps the old one when
 * out of memory (a fuller table still works, only its probes are longer). */
static void resize(size_t n) {
  entry_t *t = calloc(n, sizeof(*t));
  if (t == NULL) return;
  for (size_t i = 0; i < slots; i++) {
    if (!table[i].used) continue;
    size_t k = hash(&table[i].addr, n);
    while (t[k].used) k = (k + 1) & (n - 1);
    t[k] = table[i];
  }
  free(table);
  table = t;
  slots = n;
}

static int local_addr(int fd, struct sockaddr_storage *out) {
  socklen_t len = sizeof(*out);
  memset(out, 0, sizeof(*out));
  return getsockname(fd, (struct sockaddr *)out, &len);
}

static int local_packed(int fd, lg_addr_t *out) {
  struct sockaddr_storage a;
  if (local_addr(fd, &a) != 0) return -1;
  pack((const struct sockaddr *)&a, out);
  return 0;
}

void px_loopguard_add(int fd, const struct sockaddr *dst) {
  lg_addr_t a;
  if (!atomic_load(&enabled) || local_packed(fd, &a) != 0) return;
  pthread_mutex_lock(&lock);
  if (table == NULL) {
    table = calloc(MIN_SLOTS, sizeof(*table));
    slots = table ? MIN_SLOTS : 0;
  } else if ((entries + 1) * 2 > slots && slots < MAX_SLOTS) {
    resize(slots * 2);
  }
  for (size_t i = 0, h = table ? hash(&a, slots) : 0; i < slots / 8; i++, h = (h + 1) & (slots - 1)) {
    if (!table[h].used) {
      table[h].used = 1;
      table[h].fd = fd;
      table[h].addr = a;
      pack(dst, &table[h].remote);
      entries++;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
}

/* Empties slot `h` and re-inserts the rest of its probe run, so that
 * lookups stay correct. */
static void take_out(size_t h) {
  table[h].used = 0;
  entries--;
  for (size_t j = (h + 1) & (slots - 1); table[j].used; j = (j + 1) & (slots - 1)) {
    entry_t e = table[j];
    table[j].used = 0;
    size_t k = hash(&e.addr, slots);
    while (table[k].used) k = (k + 1) & (slots - 1);
    table[k] = e;
  }
}

void px_loopguard_remove(int fd) {
  lg_addr_t a;
  if (!atomic_load(&enabled) || local_packed(fd, &a) != 0) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0, h = table ? hash(&a, slots) : 0; i < slots && table[h].used;
       i++, h = (h + 1) & (slots - 1)) {
    if (table[h].fd == fd && packed_same(&table[h].addr, &a)) {
      take_out(h);
      if (entries * 8 < slots && slots > MIN_SLOTS) resize(slots / 2);
      break;
    }
  }
  pthread_mutex_unlock(&lock);
}

/* Where the accepted connection `fd` was headed before a REDIRECT rule
 * sent it to us; 0 when it was not redirected (or the rule is unknown). */
static int original_dst(int fd, int family, struct sockaddr_storage *out) {
  socklen_t len = sizeof(*out);
  memset(out, 0, sizeof(*out));
  if (family == AF_INET6) return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len) == 0;
  return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) == 0;
}

int px_loopguard_is_ours(int fd) {
  struct sockaddr_storage peer, local, orig;
  lg_addr_t key, remotes[MAX_SAME_LOCAL], l, o;
  socklen_t pl = sizeof(peer);
  size_t n = 0;

  if (!atomic_load(&enabled)) return 0;
  memset(&peer, 0, sizeof(peer));
  if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0) return 0;
  pack((const struct sockaddr *)&peer, &key);
  pthread_mutex_lock(&lock);
  for (size_t i = 0, h = table ? hash(&key, slots) : 0; i < slots && table[h].used &&
                                                       n < MAX_SAME_LOCAL;
       i++, h = (h + 1) & (slots - 1))
    if (packed_same(&table[h].addr, &key)) remotes[n++] = table[h].remote;
  pthread_mutex_unlock(&lock);
  if (n == 0 || local_addr(fd, &local) != 0) return 0;
  /* Straight in (our socket connected to this listener), or through a
   * REDIRECT rule (it connected to where the rule caught it). */
  int redirected = original_dst(fd, local.ss_family, &orig);
  pack((const struct sockaddr *)&local, &l);
  if (redirected) pack((const struct sockaddr *)&orig, &o);
  for (size_t i = 0; i < n; i++)
    if (packed_same(&remotes[i], &l) || (redirected && packed_same(&remotes[i], &o))) return 1;
  return 0;
}

/* ---- our listeners ----------------------------------------------------------- */

static struct sockaddr_storage listeners[PX_LOOPGUARD_MAX_LISTENERS];
static int n_listeners;

/* IPv4-mapped IPv6 as IPv4, and the unspecified address as the loopback it
 * reaches when connected to (Linux sends a connect to 0.0.0.0 or :: to the
 * local host). `wildcard` keeps the unspecified address as it is. */
static void normalise(const struct sockaddr_storage *in, struct sockaddr_storage *out,
                      int wildcard) {
  *out = *in;
  if (in->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)in;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      struct sockaddr_in v4;
      memset(&v4, 0, sizeof(v4));
      v4.sin_family = AF_INET;
      v4.sin_port = a->sin6_port;
      memcpy(&v4.sin_addr, &a->sin6_addr.s6_addr[12], 4);
      memset(out, 0, sizeof(*out));
      memcpy(out, &v4, sizeof(v4));
    } else if (!wildcard && IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)) {
      ((struct sockaddr_in6 *)out)->sin6_addr = in6addr_loopback;
    }
  }
  if (out->ss_family == AF_INET && !wildcard) {
    struct sockaddr_in *a = (void *)out;
    if (a->sin_addr.s_addr == htonl(INADDR_ANY)) a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
}

static int is_unspecified(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static uint16_t port_of(const struct sockaddr_storage *a) {
  return ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                       : ((const struct sockaddr_in6 *)a)->sin6_port);
}

void px_loopguard_add_listener(int fd) {
  struct sockaddr_storage a, n;
  if (n_listeners >= PX_LOOPGUARD_MAX_LISTENERS || local_addr(fd, &a) != 0) return;
  normalise(&a, &n, 1);
  listeners[n_listeners++] = n;
}

/* Is `a` (normalised) an address of this host? Loopback ranges at once;
 * otherwise the interfaces' addresses, read when asked so that addresses
 * added later count too (only for our own ports, so rarely). */
static int is_local(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET &&
      (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127)
    return 1;
  if (a->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr))
    return 1;
  struct ifaddrs *list = NULL;
  int found = 0;
  if (getifaddrs(&list) != 0) return 0;
  for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
    if (i->ifa_addr == NULL || i->ifa_addr->sa_family != a->ss_family) continue;
    if (a->ss_family == AF_INET)
      found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
              ((const struct sockaddr_in *)a)->sin_addr.s_addr;
    else
      found = memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
                     &((const struct sockaddr_in6 *)a)->sin6_addr, 16) == 0;
  }
  freeifaddrs(list);
  return found;
}

static void addr_text(const struct sockaddr_storage *a, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
    snprintf(out, len, "[%s]:%u", ip, (unsigned)port_of(a));
  } else {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, (unsigned)port_of(a));
  }
}

int px_loopguard_targets_us(const struct sockaddr_storage *dst, char *listener, size_t len) {
  struct sockaddr_storage d;
  normalise(dst, &d, 0);
  int local = -1; /* not yet asked */
  for (int i = 0; i < n_listeners; i++) {
    const struct sockaddr_storage *l = &listeners[i];
    if (port_of(l) != port_of(&d)) continue;
    int hit;
    if (is_unspecified(l)) {
      if (local < 0) local = is_local(&d);
      hit = local;
    } else {
      struct sockaddr_storage ln = *l;
      hit = same(&ln, &d);
    }
    if (hit) {
      if (listener) addr_text(l, listener, len);
      return 1;
    }
  }
  return 0;
}
