/* http1_check.c — the RFC 9112 rules tlspeek enforces on requests on top of
 * http-parser, and the hop-by-hop field rules of RFC 9110 §7.6.1.
 *
 * Why by hand: http-parser 2.9 is lenient where a proxy must not be. It
 * takes bare LF line ends, obs-fold, "Transfer-Encoding : chunked" (as
 * chunked!), chunk data not followed by CRLF, and several spaces between
 * the parts of the request line. The server behind tlspeek may frame such a
 * request differently, which is how requests get smuggled past --block and
 * the transcripts. These checks reject what the RFC says to reject, before
 * the head is passed on. They read the head through a bounded cursor.
 *
 * What http-parser already refuses is left to it: Content-Length with
 * Transfer-Encoding, repeated Content-Length, a sign or hex digits in it,
 * chunk sizes past 2^64, control characters in names and values. For
 * Content-Length with Transfer-Encoding RFC 9112 §6.3 lets a proxy either
 * drop Content-Length and close after the message, or reject: tlspeek
 * rejects (400, then close), since no real client sends both.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/codec/http1.h"

/* ---- a bounded reader over the head ---------------------------------------- */

typedef struct cur {
  const char *p;
  size_t len, pos;
} cur_t;

/* The next line without its line end; 0, or -1 when there is no LF left. */
static int cur_line(cur_t *c, const char **line, size_t *n, int *bare_lf) {
  const char *lf = c->pos < c->len ? memchr(c->p + c->pos, '\n', c->len - c->pos) : NULL;
  if (lf == NULL) return -1;
  size_t end = (size_t)(lf - c->p);
  *line = c->p + c->pos;
  *n = end - c->pos;
  *bare_lf = *n == 0 || (*line)[*n - 1] != '\r';
  if (!*bare_lf) (*n)--;
  c->pos = end + 1;
  return 0;
}

int px_http_is_tchar(int ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int name_is(const char *name, size_t len, const char *want) {
  return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Counts the "chunked" members of a Transfer-Encoding value; *last_chunked
 * tells whether its last member is chunked (unchanged when it has none). */
static int chunked_count(const char *v, size_t n, int *last_chunked) {
  int count = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t start = i;
    while (i < n && v[i] != ',' && v[i] != ';') i++;
    size_t end = i;
    while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
    if (end > start) {
      *last_chunked = name_is(v + start, end - start, "chunked");
      count += *last_chunked;
    }
    while (i < n && v[i] != ',') i++; /* transfer parameters */
  }
  return count;
}

static int reject(char *err, size_t errlen, const char *why) {
  snprintf(err, errlen, "%s", why);
  return -1;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3) */
static int check_request_line(const char *l, size_t n, char *err, size_t errlen) {
  const char *sp1 = memchr(l, ' ', n);
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
  if (sp1 == NULL || sp2 == NULL || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - l)) ||
      memchr(l, '\t', n) || (size_t)(l + n - (sp2 + 1)) != 8)
    return reject(err, errlen,
                  "request line must be METHOD SP TARGET SP HTTP/x.y with single spaces");
  return 0;
}

int px_http_check_request_head(const char *raw, size_t len, char *err, size_t errlen) {
  cur_t c = {raw, len, 0};
  const char *l;
  size_t n;
  int bare_lf, hosts = 0, chunked = 0, te = 0, last_chunked = 0;

  if (cur_line(&c, &l, &n, &bare_lf) != 0) return reject(err, errlen, "incomplete head");
  if (bare_lf) return reject(err, errlen, "line ends with a bare LF; HTTP needs CRLF");
  if (check_request_line(l, n, err, errlen) != 0) return -1;
  while (cur_line(&c, &l, &n, &bare_lf) == 0) {
    if (bare_lf) return reject(err, errlen, "line ends with a bare LF; HTTP needs CRLF");
    if (n == 0) { /* the empty line that ends the head */
      /* RFC 9112 §6.3: a request whose final coding is not chunked has no
       * reliable length. http-parser finds that only after the head was
       * handed over; it must not go upstream at all. */
      if (te && !last_chunked)
        return reject(err, errlen, "Transfer-Encoding whose final coding is not chunked");
      return 0;
    }
    if (l[0] == ' ' || l[0] == '\t')
      return reject(err, errlen, "obsolete line folding (a header line starting with whitespace)");
    const char *colon = memchr(l, ':', n);
    if (colon == NULL) return reject(err, errlen, "header line without a colon");
    size_t nl = (size_t)(colon - l);
    if (nl == 0 || l[nl - 1] == ' ' || l[nl - 1] == '\t')
      return reject(err, errlen, "whitespace between a header name and its colon");
    const char *v = colon + 1;
    size_t vn = n - nl - 1;
    if (name_is(l, nl, "host") && ++hosts > 1)
      return reject(err, errlen, "more than one Host header");
    if (name_is(l, nl, "transfer-encoding")) {
      te = 1;
      chunked += chunked_count(v, vn, &last_chunked);
    }
    if (chunked > 1) return reject(err, errlen, "chunked transfer coding applied more than once");
  }
  return reject(err, errlen, "incomplete head");
}

/* ---- which protocol ------------------------------------------------------ */

/* The request line is complete and ends with " HTTP/d.d". */
static int sniff_line(const char *p, size_t n) {
  const char *lf = memchr(p, '\n', n);
  if (lf == NULL) return n < PX_HTTP_SNIFF_LINE ? PX_SNIFF_MORE : PX_SNIFF_RAW;
  size_t ln = (size_t)(lf - p);
  if (ln > 0 && p[ln - 1] == '\r') ln--;
  if (ln < 9) return PX_SNIFF_RAW;
  const char *v = p + ln - 9;
  int ok = memcmp(v, " HTTP/", 6) == 0 && v[6] >= '0' && v[6] <= '9' && v[7] == '.' &&
           v[8] >= '0' && v[8] <= '9';
  return ok ? PX_SNIFF_HTTP : PX_SNIFF_RAW;
}

int px_http_sniff(const char *data, size_t len) {
  size_t i = 0, eol = 0;
  /* Counted in bytes, so that a stream of bare CRs is decided too. */
  while (i < len && (data[i] == '\r' || data[i] == '\n')) {
    if (++eol > 2 * PX_HTTP_MAX_LEADING_EOL) return PX_SNIFF_RAW;
    i++;
  }
  size_t start = i;
  int capitals = 1;
  while (i < len && px_http_is_tchar((unsigned char)data[i])) {
    if (!((data[i] >= 'A' && data[i] <= 'Z') || data[i] == '-')) capitals = 0;
    i++;
  }
  if (i == len) return i - start <= PX_HTTP_MAX_METHOD ? PX_SNIFF_MORE : PX_SNIFF_RAW;
  if (i == start || i - start > PX_HTTP_MAX_METHOD || data[i] != ' ') return PX_SNIFF_RAW;
  if (capitals) return PX_SNIFF_HTTP;
  return sniff_line(data + start, len - start);
}

/* ---- hop-by-hop fields (RFC 9110 §7.6.1) ---------------------------------- */

/* Framing and routing fields are never dropped, even when Connection names
 * them: the body is passed on as framed by the client, so removing
 * Content-Length or Transfer-Encoding would make the next hop read it
 * differently ("Connection: Content-Length" is a smuggling trick). */
static int protected_field(const char *name, size_t len) {
  return name_is(name, len, "content-length") || name_is(name, len, "transfer-encoding") ||
         name_is(name, len, "host");
}

/* Does a Connection field of `h` list `name`? */
static int connection_lists(const flt_head_t *h, const char *name, size_t len) {
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    if (!name_is(hd->name, hd->name_len, "connection")) continue;
    size_t k = 0;
    while (k < hd->value_len) {
      while (k < hd->value_len && (hd->value[k] == ' ' || hd->value[k] == '\t' || hd->value[k] == ','))
        k++;
      size_t s = k;
      while (k < hd->value_len && hd->value[k] != ',' && hd->value[k] != ' ' && hd->value[k] != '\t')
        k++;
      if (k > s && k - s == len && strncasecmp(hd->value + s, name, len) == 0) return 1;
    }
  }
  return 0;
}

static int te_is_trailers(const flt_header_t *hd) {
  size_t s = 0, e = hd->value_len;
  while (s < e && (hd->value[s] == ' ' || hd->value[s] == '\t')) s++;
  while (e > s && (hd->value[e - 1] == ' ' || hd->value[e - 1] == '\t')) e--;
  return name_is(hd->value + s, e - s, "trailers");
}

int px_hop_by_hop_drop(const flt_head_t *h, size_t i) {
  const flt_header_t *hd = &h->headers[i];
  const char *n = hd->name;
  size_t len = hd->name_len;
  if (protected_field(n, len)) return 0;
  if (name_is(n, len, "connection") || name_is(n, len, "proxy-connection") ||
      name_is(n, len, "keep-alive") || name_is(n, len, "proxy-authorization"))
    return 1;
  /* tlspeek relays a 101 upgrade, so Upgrade goes on when the client made
   * it a connection option, as RFC 9110 §7.8 requires of the sender. */
  if (name_is(n, len, "upgrade")) return !connection_lists(h, "upgrade", 7);
  /* Trailers are passed on untouched, so "TE: trailers" still holds. */
  if (name_is(n, len, "te")) return !te_is_trailers(hd);
  return connection_lists(h, n, len);
}

int px_hop_by_hop_connection(const flt_head_t *h, char *out, size_t outlen) {
  static const char *const keep[] = {"close", "keep-alive", "upgrade", "te"};
  size_t used = 0;
  out[0] = '\0';
  for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
    if (!connection_lists(h, keep[k], strlen(keep[k]))) continue;
    if (k >= 2) { /* upgrade, te: only when their field goes on */
      const flt_header_t *f = flt_head_find(h, keep[k]);
      if (f == NULL || (k == 3 && !te_is_trailers(f))) continue;
    }
    int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", keep[k]);
    if (w < 0 || (size_t)w >= outlen - used) break;
    used += (size_t)w;
  }
  return used > 0;
}
