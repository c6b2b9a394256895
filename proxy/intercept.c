/* intercept.c — the registry of held flows (intercept.h): a list under one
 * mutex, between the worker threads that hold flows and the web thread
 * that decides them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/intercept.h"

struct px_icpt_entry {
  uint64_t flow_id;
  int response;
  uint64_t since_ms; /* wall clock */
  char origin[300];
  char *head, *body; /* what the page shows */
  size_t body_len;
  px_icpt_body_t body_state;
  uv_async_t *wake;
  px_icpt_decision_t decision; /* verdict PX_ICPT_WAITING until decided */
  struct px_icpt_entry *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static px_icpt_entry_t *entries;
static atomic_ullong generation;
static void (*notify_fn)(void *);
static void *notify_ud;

void px_icpt_decision_free(px_icpt_decision_t *d) {
  if (d == NULL) return;
  free(d->method);
  free(d->url);
  for (size_t i = 0; i < d->n_headers; i++) {
    free(d->names[i]);
    free(d->values[i]);
  }
  free(d->names);
  free(d->values);
  free(d->body);
  memset(d, 0, sizeof(*d));
}

/* Under the lock, so that px_icpt_set_notify(NULL) returns only once no
 * call to the old one runs (the web server closes its handle after it). */
static void changed(void) {
  atomic_fetch_add(&generation, 1);
  pthread_mutex_lock(&mu);
  if (notify_fn) notify_fn(notify_ud);
  pthread_mutex_unlock(&mu);
}

px_icpt_entry_t *px_icpt_publish(uint64_t flow_id, int response, const char *origin,
                                 size_t origin_len, uv_async_t *wake) {
  px_icpt_entry_t *e = calloc(1, sizeof(*e));
  uv_timeval64_t now;
  if (e == NULL) return NULL;
  uv_gettimeofday(&now);
  e->flow_id = flow_id;
  e->response = response;
  e->since_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
  snprintf(e->origin, sizeof(e->origin), "%.*s", (int)origin_len, origin);
  e->wake = wake;
  pthread_mutex_lock(&mu);
  e->next = entries;
  entries = e;
  pthread_mutex_unlock(&mu);
  changed();
  return e;
}

static px_icpt_entry_t *find(uint64_t flow_id) {
  for (px_icpt_entry_t *e = entries; e; e = e->next)
    if (e->flow_id == flow_id) return e;
  return NULL;
}

static char *copy(const char *p, size_t n) {
  char *c = p ? malloc(n + 1) : NULL;
  if (c) {
    memcpy(c, p, n);
    c[n] = '\0';
  }
  return c;
}

void px_icpt_set_message(px_icpt_entry_t *e, const char *head, size_t head_len, const char *body,
                         size_t body_len, px_icpt_body_t state) {
  char *h = copy(head, head_len), *b = copy(body, body_len);
  pthread_mutex_lock(&mu);
  free(e->head);
  free(e->body);
  e->head = h;
  e->body = b;
  e->body_len = b ? body_len : 0;
  e->body_state = state;
  pthread_mutex_unlock(&mu);
}

int px_icpt_message(uint64_t flow_id, char **head, char **body, size_t *body_len,
                    px_icpt_body_t *state, char *origin) {
  int rc = -1;
  *head = *body = NULL;
  *body_len = 0;
  pthread_mutex_lock(&mu);
  px_icpt_entry_t *e = find(flow_id);
  if (e && e->decision.verdict == PX_ICPT_WAITING) {
    *head = copy(e->head ? e->head : "", e->head ? strlen(e->head) : 0);
    *body = copy(e->body, e->body_len);
    *body_len = *body ? e->body_len : 0;
    *state = e->body_state;
    memcpy(origin, e->origin, sizeof(e->origin));
    rc = 0;
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

int px_icpt_take(px_icpt_entry_t *e, px_icpt_decision_t *out) {
  int taken = 0;
  pthread_mutex_lock(&mu);
  if (e->decision.verdict != PX_ICPT_WAITING) {
    *out = e->decision;
    memset(&e->decision, 0, sizeof(e->decision));
    taken = 1;
  }
  pthread_mutex_unlock(&mu);
  return taken;
}

void px_icpt_withdraw(px_icpt_entry_t *e) {
  if (e == NULL) return;
  pthread_mutex_lock(&mu);
  for (px_icpt_entry_t **p = &entries; *p; p = &(*p)->next) {
    if (*p == e) {
      *p = e->next;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  px_icpt_decision_free(&e->decision);
  free(e->head);
  free(e->body);
  free(e);
  changed();
}


static int same_origin(const char *url, const char *origin) {
  size_t n = strlen(origin);
  return n > 0 && strncasecmp(url, origin, n) == 0 && strchr("/?", url[n]) != NULL;
}

int px_icpt_decide(uint64_t flow_id, px_icpt_decision_t *d, char *err, size_t errlen) {
  int rc = 0;
  pthread_mutex_lock(&mu);
  px_icpt_entry_t *e = find(flow_id);
  if (e == NULL || e->decision.verdict != PX_ICPT_WAITING) {
    snprintf(err, errlen, "flow %llu is not waiting%s", (unsigned long long)flow_id,
             e ? ": it was decided already" : " (not intercepted, or already resumed or killed)");
    rc = -1;
  } else if (e->response && (d->method || d->url)) {
    snprintf(err, errlen, "flow %llu waits with its response: give status, headers or body "
             "(method and url are the request's, already sent)", (unsigned long long)flow_id);
    rc = -2;
  } else if (!e->response && d->status) {
    snprintf(err, errlen, "flow %llu waits with its request: status is for a held response",
             (unsigned long long)flow_id);
    rc = -2;
  } else if (d->url && !same_origin(d->url, e->origin)) {
    snprintf(err, errlen, "url: keep the origin %s (only the path and query can change)",
             e->origin);
    rc = -2;
  } else {
    e->decision = *d;
    memset(d, 0, sizeof(*d));
    uv_async_send(e->wake);
  }
  pthread_mutex_unlock(&mu);
  px_icpt_decision_free(d);
  return rc;
}

int px_icpt_waiting(uint64_t flow_id) {
  pthread_mutex_lock(&mu);
  px_icpt_entry_t *e = find(flow_id);
  int waiting = e && e->decision.verdict == PX_ICPT_WAITING;
  pthread_mutex_unlock(&mu);
  return waiting;
}

/* The origin is from the flow's URL, which the client chose. */
static void json_string(flt_strbuf_t *b, const char *s) {
  flt_strbuf_append(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') flt_strbuf_appendf(b, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f) flt_strbuf_appendf(b, "\\u%04x", c);
    else flt_strbuf_append(b, s, 1);
  }
  flt_strbuf_append(b, "\"", 1);
}

size_t px_icpt_json(flt_strbuf_t *out, uint64_t (*map)(void *ud, uint64_t flow_id), void *ud) {
  enum { MAX_LISTED = 1000 };
  struct { uint64_t flow, since; int response; char origin[300]; } *list = calloc(MAX_LISTED, sizeof(*list));
  size_t n = 0, written = 0;
  if (list == NULL) return 0;
  pthread_mutex_lock(&mu); /* copied out: `map` may take other locks */
  for (px_icpt_entry_t *e = entries; e && n < MAX_LISTED; e = e->next) {
    if (e->decision.verdict != PX_ICPT_WAITING) continue;
    list[n].flow = e->flow_id;
    list[n].since = e->since_ms;
    list[n].response = e->response;
    memcpy(list[n++].origin, e->origin, sizeof(e->origin));
  }
  pthread_mutex_unlock(&mu);
  for (size_t i = n; i-- > 0;) { /* oldest first */
    uint64_t id = map ? map(ud, list[i].flow) : list[i].flow;
    if (id == 0) continue;
    flt_strbuf_appendf(out, "%s{\"id\":%llu,\"flow\":%llu,\"side\":\"%s\",\"since\":%llu,"
                       "\"origin\":", written ? "," : "", (unsigned long long)id,
                       (unsigned long long)list[i].flow, list[i].response ? "response" : "request",
                       (unsigned long long)list[i].since);
    json_string(out, list[i].origin);
    flt_strbuf_append(out, "}", 1);
    written++;
  }
  free(list);
  return written;
}

uint64_t px_icpt_generation(void) { return atomic_load(&generation); }

void px_icpt_set_notify(void (*notify)(void *), void *ud) {
  pthread_mutex_lock(&mu);
  notify_fn = notify;
  notify_ud = ud;
  pthread_mutex_unlock(&mu);
}
