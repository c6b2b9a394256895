/* passthrough.c — which connections are relayed without interception:
 * hosts matching --ignore-hosts, and hosts whose clients refused our
 * certificate once (pinned apps: --auto-passthrough, on by default).
 * Shared by every worker: the regexes are read-only after start-up, the
 * remembered hosts sit behind one mutex (touched once per TLS handshake). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "proxy/modes/passthrough.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

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

/* ---- decisions on a session ------------------------------------------------ */

/* Relays the connection untouched: the ClientHello we held goes upstream
 * as it came, and from then on bytes flow both ways unread. */
int px_passthrough_maybe(px_session_t *s) {
  const char *name = s->conn.sni[0] ? s->conn.sni : s->up_host;
  const char *pattern = px_passthrough_ignored(&s->conn, s->up_host, s->up_port, s->conn.sni);
  char why[400];
  if (pattern)
    snprintf(why, sizeof(why), "matches --ignore-hosts '%s'", pattern);
  else if (s->w->shared->cfg->auto_passthrough && px_passthrough_remembered(name))
    snprintf(why, sizeof(why), "its client rejected tlspeek's certificate before");
  else
    return 0;
  flt_log_debug("session %llu: passing %s through: %s", (unsigned long long)s->conn.id, name, why);
  s->conn.passthrough = 1;
  s->conn.kind = FLT_CONN_RAW_TLS;
  s->up_tls_wanted = 0;
  s->conn.upstream_tls = 0;
  px_tls_free(&s->ctls);
  px_set_deadline(s, 0, NULL);
  px_session_set_state(s, PX_S_RAW);
  flt_strbuf_t hello = s->hello_raw;
  flt_strbuf_init(&s->hello_raw, 0);
  flt_emit_data(&s->w->shared->chain, &s->conn, FLT_DIR_REQUEST, (const uint8_t *)hello.data,
                hello.len);
  flt_emit_raw(&s->w->shared->chain, &s->conn, FLT_DIR_REQUEST, (const uint8_t *)hello.data,
               hello.len);
  px_send_upstream(s, hello.data, hello.len); /* held until connected */
  flt_strbuf_free(&hello);
  if (s->up == PX_UP_IDLE && s->state != PX_S_CLOSING) px_upstream_start(s);
  return 1;
}

/* The client refused our certificate (an alert about it, or a close right
 * after our ServerHello): remember the host so that its next connections
 * pass through — the app probably pins its certificates. */
void px_passthrough_note_rejection(px_session_t *s, unsigned long err, int closed) {
  int reason = ERR_GET_REASON(err);
  if (!s->leaf_set || s->state != PX_S_CLIENT_TLS || !s->w->shared->cfg->auto_passthrough) return;
  if (!closed && reason != SSL_R_TLSV1_ALERT_UNKNOWN_CA &&
      reason != SSL_R_SSLV3_ALERT_BAD_CERTIFICATE &&
      reason != SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN)
    return;
  const char *name = s->conn.sni[0] ? s->conn.sni : s->up_host;
  if (px_passthrough_remember(name))
    flt_log_warn("client %s does not trust tlspeek's CA for %s (pinned?) — passing it through",
                 s->conn.client, name);
}

