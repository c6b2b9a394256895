/* tls_options.c — the TLS version options of the table in options.c. What
 * the versions mean to OpenSSL is decided in proxy/tlsopts.c. */
#include "proxy/cli/tls_options.h"

#include <unistd.h>

#include "proxy/tlsopts.h"

void px_opt_set_tls_version(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val) {
  int v = px_tlsopts_version_parse(val);
  if (v == 0) px_usage_error("bad %s '%s' (use 1.0, 1.1, 1.2 or 1.3)", name, val);
  for (int leg = 0; leg < 2; leg++) {
    if (!(o->lo & (1 << leg))) continue;
    if (o->hi == 0)
      cfg->tls_min[leg] = v;
    else
      cfg->tls_max[leg] = v;
  }
}

void px_opt_set_upstream_ca(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val) {
  (void)o;
  (void)name;
  if (access(val, R_OK) != 0) px_usage_error("cannot read --upstream-ca file '%s'", val);
  cfg->upstream_ca = val;
}
