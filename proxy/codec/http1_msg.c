/* http1_msg.c — helpers on HTTP/1 messages that need no framer: a flow's
 * absolute URL, the host and port of an authority, redaction of a head
 * copy, and the authentication schemes that bind a connection. No I/O, no
 * sessions (declared in http1.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/codec/http1.h"

/* The flow's absolute URL: as sent in absolute-form, else scheme + Host
 * (or the upstream's name) + target. */
char *px_http_absolute_url(const flt_conn_t *c, const flt_head_t *h) {
  const char *target = h->url ? h->url : "/";
  const char *scheme = c->client_tls ? "https" : "http";
  char authority[300];
  size_t len;
  char *url;

  if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0)
    return strdup(target);
  const flt_header_t *host = flt_head_find(h, "host");
  if (host == NULL) host = flt_head_find(h, ":authority"); /* HTTP/2 */
  if (host && host->value_len > 0 && host->value_len < sizeof(authority)) {
    memcpy(authority, host->value, host->value_len);
    authority[host->value_len] = '\0';
  } else {
    unsigned port = c->server_port;
    int deflt = (c->client_tls && port == 443) || (!c->client_tls && port == 80);
    const char *hn = c->sni[0] ? c->sni : c->server_host;
    if (strchr(hn, ':'))
      snprintf(authority, sizeof(authority), deflt ? "[%s]" : "[%s]:%u", hn, port);
    else
      snprintf(authority, sizeof(authority), deflt ? "%s" : "%s:%u", hn, port);
  }
  if (strcmp(target, "*") == 0) target = "";
  len = strlen(scheme) + 3 + strlen(authority) + strlen(target) + 1;
  url = malloc(len);
  if (url) snprintf(url, len, "%s://%s%s", scheme, authority, target);
  return url;
}

/* --redact: the copy that views and transcripts see shows <redacted>. The
 * bytes on the wire are not touched. */
void px_http_redact_head(const char *const *names, int n_names, int proxy_auth, flt_head_t *h) {
  flt_header_t *hv = (flt_header_t *)h->headers;
  for (size_t i = 0; i < h->n_headers; i++) {
    /* tlspeek's own credentials (--proxyauth) are never shown. */
    if (proxy_auth && hv[i].name_len == 19 &&
        strncasecmp(hv[i].name, "Proxy-Authorization", 19) == 0) {
      hv[i].value = "<redacted>";
      hv[i].value_len = 10;
    }
    for (int k = 0; k < n_names; k++) {
      if (strlen(names[k]) == hv[i].name_len &&
          strncasecmp(names[k], hv[i].name, hv[i].name_len) == 0) {
        hv[i].value = "<redacted>";
        hv[i].value_len = 10;
      }
    }
  }
}

/* "host:port", "[v6]:port" or "host" (then `default_port`). */
int px_http_split_authority(const char *a, char *host, size_t hostlen, uint16_t *port,
                            uint16_t default_port) {
  const char *hs = a, *he, *ps = NULL;
  if (a[0] == '[') {
    he = strchr(a, ']');
    if (he == NULL) return -1;
    hs = a + 1;
    if (he[1] == ':')
      ps = he + 2;
    else if (he[1] != '\0')
      return -1;
  } else {
    he = strrchr(a, ':');
    if (he)
      ps = he + 1;
    else
      he = a + strlen(a);
  }
  size_t hl = (size_t)(he - hs);
  if (hl == 0 || hl >= hostlen) return -1;
  memcpy(host, hs, hl);
  host[hl] = '\0';
  *port = default_port;
  if (ps) {
    char *end;
    long p = strtol(ps, &end, 10);
    if (*ps == '\0' || *end != '\0' || p < 1 || p > 65535) return -1;
    *port = (uint16_t)p;
  }
  return 0;
}

/* NTLM and Negotiate authenticate the connection, not the request: such a
 * connection must keep its upstream (no --upstream-idle release). */
int px_http_binds_connection(const flt_head_t *head, const char *name) {
  for (size_t i = 0; i < head->n_headers; i++) {
    const flt_header_t *hd = &head->headers[i];
    if (hd->name_len != strlen(name) || strncasecmp(hd->name, name, hd->name_len) != 0) continue;
    if ((hd->value_len >= 4 && strncasecmp(hd->value, "NTLM", 4) == 0) ||
        (hd->value_len >= 9 && strncasecmp(hd->value, "Negotiate", 9) == 0))
      return 1;
  }
  return 0;
}

const char *px_http_split_absolute_url(const char *url, struct http_parser_url *pu,
                                       char host[256], uint16_t *pport, char *origin,
                                       size_t origin_len) {
  struct http_parser_url u;
  size_t ulen = strlen(url);

  http_parser_url_init(&u);
  if (http_parser_parse_url(url, ulen, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
    return "tlspeek is an HTTP proxy: send absolute-form requests "
           "(GET http://host/path) or CONNECT host:port";
  if (!(u.field_set & (1 << UF_SCHEMA)) || u.field_data[UF_SCHEMA].len != 4 ||
      strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0)
    return "only http:// URLs can be sent in absolute-form; use CONNECT for https://";
  size_t hl = u.field_data[UF_HOST].len;
  if (hl >= 256) return "host name too long";
  memcpy(host, url + u.field_data[UF_HOST].off, hl);
  host[hl] = '\0';
  int has_path = (u.field_set & (1 << UF_PATH)) != 0;
  size_t po = ulen, end = ulen;
  if (has_path)
    po = u.field_data[UF_PATH].off;
  else if (u.field_set & (1 << UF_QUERY))
    po = (size_t)u.field_data[UF_QUERY].off - 1; /* the '?' */
  if (u.field_set & (1 << UF_FRAGMENT)) end = (size_t)u.field_data[UF_FRAGMENT].off - 1;
  if (end < po) end = po;
  snprintf(origin, origin_len, "%s%.*s", has_path ? "" : "/", (int)(end - po), url + po);
  *pu = u;
  *pport = (u.field_set & (1 << UF_PORT)) ? u.port : 80;
  return NULL;
}
