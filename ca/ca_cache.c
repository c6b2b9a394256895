/* ca_cache.c — the minter: one leaf key for the process and a bounded LRU
 * cache of minted certificates, shared by all worker threads.
 *
 * The cache is a hash table (chained) over a doubly linked recency list, so
 * lookup, touch, insert and evict are O(1). One mutex guards both; it is
 * never held while signing, so a slow signature (RSA) never stalls other
 * threads' cache hits. Two threads missing the same key at once both sign;
 * the second to insert adopts the first one's certificate, so every caller
 * sees one certificate per key. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "ca/ca_internal.h"

/* Largest cache we allocate a table for; far more hosts than one debugging
 * session meets, and keeps a typo in --cert-cache from eating memory. */
#define CACHE_MAX_ENTRIES ((size_t)1 << 22)
#define CACHE_KEY_LEN 32 /* SHA-256 */

typedef struct cache_entry {
  unsigned char key[CACHE_KEY_LEN];
  X509 *cert;                /* one reference owned by the cache */
  struct cache_entry *chain; /* next in the same bucket */
  struct cache_entry *newer; /* recency list, towards m->newest */
  struct cache_entry *older;
} cache_entry_t;

struct ca_minter {
  ca_t *ca;
  EVP_PKEY *key;
  EVP_MD *sha256; /* fetched once: implicit fetches take a global lock */
  pthread_mutex_t lock;
  cache_entry_t **buckets;
  size_t nbuckets; /* power of two */
  size_t capacity;
  cache_entry_t *newest;
  cache_entry_t *oldest;
  ca_minter_stats_t stats; /* .entries is the live count */
};

int ca_minter_new(ca_t *ca, ca_key_type_t leaf_key, size_t cache_size, ca_minter_t **out, char *err,
                  size_t errlen) {
  ca_minter_t *m = NULL;
  int rc = 0;

  *out = NULL;
  if (ca == NULL) return ca_err(err, errlen, CA_EINVAL, "ca_minter_new: no CA");
  if (cache_size == 0 || cache_size > CACHE_MAX_ENTRIES)
    return ca_err(err, errlen, CA_EINVAL, "certificate cache size must be 1..%zu",
                  CACHE_MAX_ENTRIES);
  m = calloc(1, sizeof(*m));
  if (m == NULL) return ca_err(err, errlen, CA_EIO, "out of memory");
  if (pthread_mutex_init(&m->lock, NULL) != 0) {
    free(m);
    return ca_err(err, errlen, CA_EIO, "cannot create a mutex");
  }
  m->ca = ca;
  m->capacity = cache_size;
  /* Load factor <= 1 at capacity keeps chains short. */
  for (m->nbuckets = 16; m->nbuckets < cache_size;)
    m->nbuckets <<= 1;
  m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
  m->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (m->buckets == NULL || m->sha256 == NULL) {
    rc = ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot set up the minter");
    goto Exit;
  }
  m->key = ca_key_generate(leaf_key, err, errlen);
  if (m->key == NULL) {
    rc = CA_ECRYPTO;
    goto Exit;
  }
  *out = m;
  m = NULL;
Exit:
  ca_minter_free(m);
  return rc;
}

void ca_minter_free(ca_minter_t *m) {
  cache_entry_t *e, *next;

  if (m == NULL) return;
  for (e = m->newest; e != NULL; e = next) {
    next = e->older;
    X509_free(e->cert);
    free(e);
  }
  free(m->buckets);
  EVP_MD_free(m->sha256);
  EVP_PKEY_free(m->key);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

EVP_PKEY *ca_minter_key(const ca_minter_t *m) {
  return m->key;
}

/* The key is a digest of everything the certificate depends on. The IP
 * only matters when the SNI is not a DNS name (see plan_from_req), so a
 * host behind many addresses still gets one cache entry. A SHA-256 key also
 * means a client choosing SNIs cannot flood one bucket. */
static int cache_key(ca_minter_t *m, const ca_leaf_req_t *req, unsigned char key[CACHE_KEY_LEN]) {
  const char *sni = req->sni != NULL ? req->sni : "";
  const char *ip = req->ip != NULL ? req->ip : "";
  unsigned char up[EVP_MAX_MD_SIZE];
  unsigned int up_len = 0, len = 0;
  unsigned char has_up = req->upstream != NULL;
  EVP_MD_CTX *ctx = NULL;
  int ok;

  if (sni[0] != '\0' && !ca_name_is_ip(sni, NULL, NULL)) ip = "";
  if (has_up && !X509_digest(req->upstream, m->sha256, up, &up_len)) return -1;
  ctx = EVP_MD_CTX_new();
  /* NUL terminators separate the fields, so ("ab","c") != ("a","bc"). */
  ok = ctx != NULL && EVP_DigestInit_ex(ctx, m->sha256, NULL) &&
       EVP_DigestUpdate(ctx, sni, strlen(sni) + 1) && EVP_DigestUpdate(ctx, ip, strlen(ip) + 1) &&
       EVP_DigestUpdate(ctx, &has_up, 1) && EVP_DigestUpdate(ctx, up, up_len) &&
       EVP_DigestFinal_ex(ctx, key, &len);
  EVP_MD_CTX_free(ctx);
  return ok && len == CACHE_KEY_LEN ? 0 : -1;
}

static size_t bucket_of(const ca_minter_t *m, const unsigned char *key) {
  size_t h;

  memcpy(&h, key, sizeof(h)); /* a digest is already uniformly spread */
  return h & (m->nbuckets - 1);
}

static cache_entry_t *cache_find(const ca_minter_t *m, const unsigned char *key) {
  cache_entry_t *e;

  for (e = m->buckets[bucket_of(m, key)]; e != NULL; e = e->chain)
    if (memcmp(e->key, key, CACHE_KEY_LEN) == 0) return e;
  return NULL;
}

static void lru_unlink(ca_minter_t *m, cache_entry_t *e) {
  if (e->newer != NULL)
    e->newer->older = e->older;
  else
    m->newest = e->older;
  if (e->older != NULL)
    e->older->newer = e->newer;
  else
    m->oldest = e->newer;
  e->newer = e->older = NULL;
}

static void lru_push_newest(ca_minter_t *m, cache_entry_t *e) {
  e->older = m->newest;
  e->newer = NULL;
  if (m->newest != NULL) m->newest->newer = e;
  m->newest = e;
  if (m->oldest == NULL) m->oldest = e;
}

static void cache_unlink(ca_minter_t *m, cache_entry_t *e) {
  cache_entry_t **pp = &m->buckets[bucket_of(m, e->key)];

  while (*pp != e)
    pp = &(*pp)->chain;
  *pp = e->chain;
  lru_unlink(m, e);
  m->stats.entries--;
}

/* Under the lock: returns the cached certificate (a new reference), most
 * recently used from now on, or NULL. */
static X509 *cache_get_locked(ca_minter_t *m, const unsigned char *key) {
  cache_entry_t *e = cache_find(m, key);

  if (e == NULL) return NULL;
  lru_unlink(m, e);
  lru_push_newest(m, e);
  X509_up_ref(e->cert);
  return e->cert;
}

/* Publishes a freshly signed `cert` (reference taken over) and returns the
 * certificate callers must use for `key`: `cert`, or the one another thread
 * published first. Freeing happens after the lock is released. */
static X509 *cache_put(ca_minter_t *m, const unsigned char *key, X509 *cert) {
  cache_entry_t *e = calloc(1, sizeof(*e)), *evicted = NULL;
  X509 *result, *unused = NULL;

  pthread_mutex_lock(&m->lock);
  m->stats.signatures++;
  result = cache_get_locked(m, key);
  if (result != NULL) {
    unused = cert; /* lost a race: keep one certificate per key */
  } else if (e == NULL) {
    result = cert; /* no memory for an entry: serve it uncached */
  } else {
    memcpy(e->key, key, CACHE_KEY_LEN);
    e->cert = cert;
    e->chain = m->buckets[bucket_of(m, key)];
    m->buckets[bucket_of(m, key)] = e;
    lru_push_newest(m, e);
    m->stats.entries++;
    X509_up_ref(cert);
    result = cert;
    e = NULL;
    if (m->stats.entries > m->capacity) {
      evicted = m->oldest;
      cache_unlink(m, evicted);
      m->stats.evictions++;
    }
  }
  pthread_mutex_unlock(&m->lock);
  X509_free(unused);
  free(e);
  if (evicted != NULL) {
    X509_free(evicted->cert);
    free(evicted);
  }
  return result;
}

int ca_mint_leaf(ca_minter_t *m, const ca_leaf_req_t *req, X509 **out, char *err, size_t errlen) {
  unsigned char key[CACHE_KEY_LEN];
  X509 *cert = NULL;
  int rc;

  *out = NULL;
  if (m == NULL || req == NULL) return ca_err(err, errlen, CA_EINVAL, "ca_mint_leaf: no request");
  if (cache_key(m, req, key) != 0)
    return ca_err_ssl(err, errlen, CA_ECRYPTO, "cannot hash a leaf request");
  pthread_mutex_lock(&m->lock);
  cert = cache_get_locked(m, key);
  if (cert != NULL)
    m->stats.hits++;
  else
    m->stats.misses++;
  pthread_mutex_unlock(&m->lock);
  if (cert != NULL) {
    *out = cert;
    return 0;
  }
  rc = ca_leaf_mint(m->ca, m->key, req, &cert, err, errlen);
  if (rc < 0) return rc;
  *out = cache_put(m, key, cert);
  return 0;
}

int ca_mint_names(ca_minter_t *m, const char *const *names, size_t n, X509 **out, char *err,
                  size_t errlen) {
  int rc;

  *out = NULL;
  if (m == NULL) return ca_err(err, errlen, CA_EINVAL, "ca_mint_names: no minter");
  rc = ca_leaf_mint_names(m->ca, m->key, names, n, out, err, errlen);
  if (rc < 0) return rc;
  pthread_mutex_lock(&m->lock);
  m->stats.signatures++;
  pthread_mutex_unlock(&m->lock);
  return 0;
}

void ca_minter_stats(ca_minter_t *m, ca_minter_stats_t *out) {
  pthread_mutex_lock(&m->lock);
  *out = m->stats;
  pthread_mutex_unlock(&m->lock);
}
