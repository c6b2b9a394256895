/* action_options.c — parsing the values of --map-remote and --throttle
 * (action_options.h). Expressions may hold spaces and ':' themselves, so
 * each option says where its EXPR ends: --map-remote at the last ':' that
 * is followed by http:// or https://, --throttle from the right. */
#include "proxy/cli/action_options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "proxy/action_replace.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* EXPR (the first `len` bytes of `val`) compiled into *out. */
static int compile_expr(const char *val, size_t len, struct flt_expr **out, char *err,
                        size_t errlen) {
  char text[4200], why[2048];
  if (len == 0) return fail(err, errlen, "EXPR is empty (e.g. '~d api.example')");
  if (len >= sizeof(text)) return fail(err, errlen, "EXPR is too long");
  memcpy(text, val, len);
  text[len] = '\0';
  *out = flt_expr_compile(text, FLT_EXPR_ALL_TERMS, why, sizeof(why));
  return *out ? 0 : fail(err, errlen, "bad expression: %s", why);
}

/* ---- --map-remote EXPR:URL ------------------------------------------------ */

/* Where URL begins: after the last ':' followed by http:// or https://. */
static const char *url_start(const char *val) {
  const char *found = NULL;
  for (const char *c = strchr(val, ':'); c; c = strchr(c + 1, ':'))
    if (strncasecmp(c + 1, "http://", 7) == 0 || strncasecmp(c + 1, "https://", 8) == 0)
      found = c + 1;
  return found;
}

/* HOST[:PORT] or [V6][:PORT], `len` bytes of `a`. */
static int parse_authority(const char *a, size_t len, px_map_remote_t *m, char *err,
                           size_t errlen) {
  const char *host = a, *port = NULL;
  size_t hl = len;
  if (len > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', len);
    if (close == NULL) return fail(err, errlen, "no ']' after the IPv6 address");
    host = a + 1;
    hl = (size_t)(close - host);
    if (close + 1 < a + len) {
      if (close[1] != ':') return fail(err, errlen, "':PORT' or nothing may follow ']'");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(a, ':', len);
    if (colon) {
      hl = (size_t)(colon - a);
      port = colon + 1;
    }
  }
  if (hl == 0) return fail(err, errlen, "no host in the URL");
  if (hl >= sizeof(m->host)) return fail(err, errlen, "the host name is too long");
  for (size_t i = 0; i < hl; i++)
    if (host[i] <= ' ' || host[i] == 0x7f || strchr("@[]/\\?#%", host[i]))
      return fail(err, errlen, "'%.*s' is not a host name or IP address", (int)hl, host);
  memcpy(m->host, host, hl);
  m->host[hl] = '\0';
  if (port) {
    size_t pl = (size_t)(a + len - port);
    char digits[8];
    if (pl == 0 || pl > 5 || strspn(port, "0123456789") < pl)
      return fail(err, errlen, "the port must be a number from 1 to 65535");
    memcpy(digits, port, pl);
    digits[pl] = '\0';
    long p = strtol(digits, NULL, 10);
    if (p < 1 || p > 65535) return fail(err, errlen, "the port must be a number from 1 to 65535");
    m->port = (uint16_t)p;
  }
  return 0;
}

static int parse_url(const char *url, px_map_remote_t *m, char *err, size_t errlen) {
  m->tls = strncasecmp(url, "https://", 8) == 0;
  const char *a = url + (m->tls ? 8 : 7);
  size_t alen = strcspn(a, "/?#");
  m->port = m->tls ? 443 : 80;
  if (parse_authority(a, alen, m, err, errlen) != 0) return -1;
  const char *path = a + alen;
  if (*path == '?' || *path == '#')
    return fail(err, errlen, "URL may have a path prefix but no query or fragment");
  size_t pl = strlen(path);
  while (pl > 0 && path[pl - 1] == '/') pl--; /* "/v2/" puts "/v2" before "/x" */
  if (pl >= sizeof(m->prefix)) return fail(err, errlen, "the path prefix is too long");
  for (size_t i = 0; i < pl; i++)
    if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f || path[i] == '?' || path[i] == '#')
      return fail(err, errlen, "the path prefix may not hold spaces, controls, '?' or '#'");
  memcpy(m->prefix, path, pl);
  m->prefix[pl] = '\0';
  return 0;
}

int px_map_remote_parse(const char *val, px_map_remote_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  const char *url = url_start(val);
  if (url == NULL)
    return fail(err, errlen, "no ':http://' or ':https://' after EXPR (use EXPR:URL, e.g. "
                "'~d api.example:https://127.0.0.1:8443')");
  if (parse_url(url, out, err, errlen) != 0) return -1;
  out->text = url;
  return compile_expr(val, (size_t)(url - 1 - val), &out->expr, err, errlen);
}

void px_opt_set_map_remote(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val) {
  char err[2600];
  (void)o;
  if (cfg->n_map_remote == PX_MAX_ACTIONS) px_usage_error("at most %d %s", PX_MAX_ACTIONS, name);
  if (px_map_remote_parse(val, &cfg->map_remote[cfg->n_map_remote], err, sizeof(err)) != 0)
    px_usage_error("bad %s '%s': %s", name, val, err);
  cfg->n_map_remote++;
}

/* ---- --throttle EXPR:RATE[:LATENCY] ---------------------------------------- */

/* The number at the start of s[0..len) (a digit first) into *v, and where
 * its unit begins (in `buf`, which holds the copy); -1 when there is none. */
static int number_prefix(const char *s, size_t len, char buf[32], double *v, char **unit) {
  if (len == 0 || len >= 32) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (!(buf[0] >= '0' && buf[0] <= '9')) return -1;
  errno = 0;
  *v = strtod(buf, unit);
  return errno || *unit == buf ? -1 : 0;
}

/* RATE: bytes per second, k and m meaning KiB and MiB ("64k", "1.5m"). */
static int parse_rate(const char *s, size_t len, uint64_t *out) {
  char buf[32], *end;
  double v;
  if (number_prefix(s, len, buf, &v, &end) != 0) return -1;
  double mul = 1;
  if (*end == 'k' || *end == 'K') mul = 1024, end++;
  else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
  if (mul > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "b") == 0))
    end += strlen(end);
  if (*end != '\0') return -1;
  v *= mul;
  if (!(v >= 1) || v > 1e12) return -1;
  *out = (uint64_t)v;
  return 0;
}

/* LATENCY: "300ms", "1s", "0.5s" (a unit is required: a bare number is
 * a RATE). */
static int parse_latency(const char *s, size_t len, uint64_t *ms) {
  char buf[32], *end;
  double v;
  if (number_prefix(s, len, buf, &v, &end) != 0) return -1;
  if (strcmp(end, "s") == 0)
    v *= 1000;
  else if (strcmp(end, "ms") != 0)
    return -1;
  if (!(v >= 0) || v > 3600 * 1000) return -1;
  *ms = (uint64_t)(v + 0.5);
  return 0;
}

int px_throttle_parse(const char *val, px_throttle_rule_t *out, char *err, size_t errlen) {
  static const char usage[] = "use EXPR:RATE[:LATENCY], e.g. '~d api:64k:300ms' (RATE in "
                              "bytes/s with k or m for KiB or MiB; LATENCY in ms or s)";
  memset(out, 0, sizeof(*out));
  const char *last = strrchr(val, ':');
  if (last == NULL) return fail(err, errlen, "no ':' in it; %s", usage);
  const char *prev = NULL;
  for (const char *c = val; c < last; c++)
    if (*c == ':') prev = c;
  const char *expr_end = last;
  size_t tail = strlen(last + 1);
  if (parse_latency(last + 1, tail, &out->latency_ms) == 0) {
    if (prev == NULL || parse_rate(prev + 1, (size_t)(last - prev - 1), &out->rate) != 0)
      return fail(err, errlen, "'%.*s' before the latency '%s' is not a RATE; %s",
                  prev ? (int)(last - prev - 1) : (int)(last - val), prev ? prev + 1 : val,
                  last + 1, usage);
    expr_end = prev;
  } else if (parse_rate(last + 1, tail, &out->rate) == 0) {
    uint64_t r2;
    if (prev && parse_rate(prev + 1, (size_t)(last - prev - 1), &r2) == 0)
      return fail(err, errlen, "'%s' after the rate '%.*s' has no unit: write LATENCY as "
                  "%sms or %ss", last + 1, (int)(last - prev - 1), prev + 1, last + 1,
                  last + 1);
  } else {
    return fail(err, errlen, "'%s' is neither a RATE (a positive number of bytes/s, e.g. 512k) "
                "nor a LATENCY (e.g. 300ms); %s", last + 1, usage);
  }
  return compile_expr(val, (size_t)(expr_end - val), &out->expr, err, errlen);
}

void px_opt_set_throttle(px_config_t *cfg, const px_option_t *o, const char *name,
                         const char *val) {
  char err[2600];
  (void)o;
  if (cfg->n_throttle == PX_MAX_ACTIONS) px_usage_error("at most %d %s", PX_MAX_ACTIONS, name);
  if (px_throttle_parse(val, &cfg->throttle[cfg->n_throttle], err, sizeof(err)) != 0)
    px_usage_error("bad %s '%s': %s", name, val, err);
  cfg->n_throttle++;
}

void px_opt_set_replace(px_config_t *cfg, const px_option_t *o, const char *name,
                        const char *val) {
  char err[2048];
  (void)o, (void)name;
  if (cfg->n_replaces == PX_MAX_REPLACE) px_usage_error("at most %d --replace", PX_MAX_REPLACE);
  px_replace_t *r = px_replace_parse(val, err, sizeof(err));
  if (r == NULL) px_usage_error("bad --replace '%s': %s", val, err);
  cfg->replaces[cfg->n_replaces++] = r;
}
