/* passthrough.c — which connections are relayed without interception:
 * hosts matching --ignore-hosts, and hosts whose clients refused our
 * certificate once (pinned apps: --auto-passthrough, on by default).
 * Shared by every worker: the regexes are read-only after start-up, the
 * remembered hosts sit behind one mutex (touched once per TLS handshake). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "proxy/passthrough.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr.h"
#include "filters/log.h"

#define PX_MAX_REMEMBERED 4096 /* hosts remembered for auto-passthrough */

static pcre2_code *ignore_re[16];
static const char *ignore_text[16];
static int n_ignore;
static const px_config_t *config;

static pthread_mutex_t remembered_lock = PTHREAD_MUTEX_INITIALIZER;
static char *remembered[PX_MAX_REMEMBERED];
static int n_remembered;

int px_passthrough_init(const px_config_t *cfg) {
  config = cfg;
  for (int i = 0; i < cfg->n_ignore_hosts; i++) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)cfg->ignore_hosts[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_CASELESS, &code, &off, NULL);
    if (re == NULL) {
      PCRE2_UCHAR msg[200];
      pcre2_get_error_message(code, msg, sizeof(msg));
      flt_log_error("--ignore-hosts '%s': %s at offset %zu", cfg->ignore_hosts[i], (char *)msg,
                    (size_t)off);
      return -1;
    }
    ignore_re[n_ignore] = re;
    ignore_text[n_ignore++] = cfg->ignore_hosts[i];
  }
  return 0;
}

void px_passthrough_free(void) {
  for (int i = 0; i < n_ignore; i++) pcre2_code_free(ignore_re[i]);
  n_ignore = 0;
  pthread_mutex_lock(&remembered_lock);
  for (int i = 0; i < n_remembered; i++) free(remembered[i]);
  n_remembered = 0;
  pthread_mutex_unlock(&remembered_lock);
}

static int re_match(pcre2_code *re, const char *text) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = md ? pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL) : -1;
  pcre2_match_data_free(md);
  return rc >= 0;
}

const char *px_passthrough_ignored(const flt_conn_t *c, const char *host, uint16_t port,
                                   const char *sni) {
  char hp[300];
  for (int i = 0; config && i < config->n_ignore_exprs; i++)
    if (flt_expr_match_conn(config->ignore_exprs[i], c)) return "an expression";
  snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
  for (int i = 0; i < n_ignore; i++) {
    if (re_match(ignore_re[i], hp) || (sni && sni[0] && re_match(ignore_re[i], sni)))
      return ignore_text[i];
  }
  return NULL;
}

int px_passthrough_remembered(const char *name) {
  int found = 0;
  pthread_mutex_lock(&remembered_lock);
  for (int i = 0; i < n_remembered && !found; i++) found = strcasecmp(remembered[i], name) == 0;
  pthread_mutex_unlock(&remembered_lock);
  return found;
}

int px_passthrough_remember(const char *name) {
  int added = 0;
  pthread_mutex_lock(&remembered_lock);
  int known = 0;
  for (int i = 0; i < n_remembered && !known; i++) known = strcasecmp(remembered[i], name) == 0;
  if (!known) {
    if (n_remembered == PX_MAX_REMEMBERED) { /* forget the oldest */
      free(remembered[0]);
      memmove(remembered, remembered + 1, sizeof(remembered[0]) * (PX_MAX_REMEMBERED - 1));
      n_remembered--;
    }
    remembered[n_remembered] = strdup(name);
    if (remembered[n_remembered]) {
      n_remembered++;
      added = 1;
    }
  }
  pthread_mutex_unlock(&remembered_lock);
  return added;
}
