/* count_hosts.c — an example tlspeek plugin: counts requests per host and
 * prints a table when tlspeek exits.
 *
 *   make examples
 *   ./tlspeek --load build/examples/count_hosts.so
 *
 * Flows arrive on several worker threads at once, so the table is guarded
 * by a mutex. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

#define MAX_HOSTS 1024

typedef struct host_count {
  char host[256];
  unsigned long requests;
} host_count_t;

typedef struct counter {
  pthread_mutex_t lock;
  host_count_t hosts[MAX_HOSTS];
  int n;
  unsigned long other; /* requests of hosts beyond MAX_HOSTS */
} counter_t;

static void on_request_head(void *self, flt_flow_t *f) {
  counter_t *c = self;
  const flt_header_t *h = flt_head_find(&f->req, "host");
  char host[256];
  if (h && h->value_len < sizeof(host)) {
    memcpy(host, h->value, h->value_len);
    host[h->value_len] = '\0';
  } else {
    snprintf(host, sizeof(host), "%s", f->conn->server_host);
  }
  pthread_mutex_lock(&c->lock);
  int i = 0;
  while (i < c->n && strcmp(c->hosts[i].host, host) != 0) i++;
  if (i == c->n && c->n < MAX_HOSTS) snprintf(c->hosts[c->n++].host, sizeof(c->hosts[0].host), "%s", host);
  if (i < c->n)
    c->hosts[i].requests++;
  else
    c->other++;
  pthread_mutex_unlock(&c->lock);
}

static int by_count(const void *a, const void *b) {
  const host_count_t *x = a, *y = b;
  if (x->requests != y->requests) return x->requests < y->requests ? 1 : -1;
  return strcmp(x->host, y->host);
}

static void on_shutdown(void *self) {
  counter_t *c = self;
  qsort(c->hosts, (size_t)c->n, sizeof(c->hosts[0]), by_count);
  printf("requests  host\n");
  for (int i = 0; i < c->n; i++) printf("%8lu  %s\n", c->hosts[i].requests, c->hosts[i].host);
  if (c->other) printf("%8lu  (other hosts)\n", c->other);
  fflush(stdout);
}

static const flt_ops_t ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "count_hosts",
    .on_request_head = on_request_head,
    .on_shutdown = on_shutdown,
};

static void *create(const char *arg, int slot, char *err, size_t errlen) {
  (void)arg;
  (void)slot;
  counter_t *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&c->lock, NULL);
  return c;
}

static void destroy(void *self) {
  counter_t *c = self;
  pthread_mutex_destroy(&c->lock);
  free(c);
}

const flt_plugin_t tlspeek_plugin = {
    .abi_version = FLT_ABI_VERSION,
    .name = "count_hosts",
    .description = "counts requests per host and prints a table on exit",
    .ops = &ops,
    .create = create,
    .destroy = destroy,
};
