/* opt_intercept.c — --intercept EXPR and --intercept-timeout S[:kill|:resume]
 * (options.h), apart from options.c's table, which names these setters. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"
#include "proxy/cli/options.h"
#include "proxy/config.h"

/* "~s" as a term (not the start of ~src, ~sni, ...): the rule holds responses. */
static int uses_response_term(const char *expr) {
  for (const char *p = strstr(expr, "~s"); p; p = strstr(p + 2, "~s"))
    if (!((p[2] | 0x20) >= 'a' && (p[2] | 0x20) <= 'z')) return 1;
  return 0;
}

void px_opt_set_intercept(px_config_t *cfg, const px_option_t *o, const char *name,
                          const char *val) {
  char err[2048];
  (void)o;
  if (cfg->n_intercepts == PX_MAX_ACTIONS) px_usage_error("at most %d %s", PX_MAX_ACTIONS, name);
  struct flt_expr *e = flt_expr_compile(val, FLT_EXPR_ALL_TERMS, err, sizeof(err));
  if (e == NULL) px_usage_error("bad expression in %s: %s", name, err);
  cfg->intercept_response[cfg->n_intercepts] = uses_response_term(val);
  cfg->intercepts[cfg->n_intercepts++] = e;
}

/* "300", "90s", "5m", "1h", "0.5" (seconds); 0 waits forever. */
static int parse_duration(const char *s, size_t len, uint64_t *ms) {
  char buf[32], *end;
  double v, unit = 1000;
  if (len == 0 || len >= sizeof(buf)) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  v = strtod(buf, &end);
  if (errno || end == buf || v < 0) return -1;
  if (*end == 's') unit = 1000, end++;
  else if (*end == 'm') unit = 60000, end++;
  else if (*end == 'h') unit = 3600000, end++;
  if (*end != '\0' || v * unit > 86400.0 * 365 * 1000) return -1;
  *ms = v == 0 ? UINT64_MAX : (uint64_t)(v * unit + 0.5);
  return *ms == 0 ? -1 : 0;
}

void px_opt_set_intercept_timeout(px_config_t *cfg, const px_option_t *o, const char *name,
                                  const char *val) {
  const char *colon = strchr(val, ':');
  size_t n = colon ? (size_t)(colon - val) : strlen(val);
  (void)o;
  cfg->intercept_timeout_resume = 0;
  if (colon && strcmp(colon + 1, "resume") == 0) cfg->intercept_timeout_resume = 1;
  else if (colon && strcmp(colon + 1, "kill") != 0) n = 0;
  if (parse_duration(val, n, &cfg->intercept_timeout_ms) != 0)
    px_usage_error("bad %s '%s': use SECONDS[:kill|:resume], e.g. 300, 5m:resume or 0 "
                   "(wait forever)", name, val);
}

void px_opt_check_intercept(const px_config_t *cfg) {
  if (cfg->n_intercepts > 0 && cfg->web == NULL)
    px_usage_error("--intercept needs --web [HOST:]PORT: held flows are resumed, edited or "
                   "killed in the flow browser");
}
