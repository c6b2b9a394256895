/* passthrough.c — which connections are relayed without interception:
 * hosts matching --ignore-hosts, and hosts whose clients refused our
 * certificate (--auto-passthrough, off by default: only for the same client
 * program, and only for --auto-passthrough-ttl). Also reports such
 * rejections — an alert about the certificate, or a close right after it —
 * as "this client does not trust tlspeek's CA", once per client program and
 * host every PX_REPORT_REPEAT_MS.
 *
 * A "client program" is the client's IP address and the JA4 fingerprint of
 * its ClientHello: curl and a Python script on the same machine differ, so
 * one that trusts the CA keeps being intercepted while another that does not
 * is passed through. Shared by every worker: the regexes are read-only after
 * start-up, the two tables sit behind one mutex. */
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
#include <time.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define PX_MAX_DECISIONS 1024        /* (client program, host) pairs passed through */
#define PX_MAX_REPORTS 1024          /* (client program, host) pairs reported */
#define PX_REPORT_REPEAT_MS 600000   /* say it again after this long, not before */
#define PX_WHO_MAX 128               /* "client 127.0.0.1 (JA4 t13d...)" */

/* One automatic passthrough: this client program, this host, until then. */
typedef struct {
  char ip[64];
  char fp[48];  /* JA4 of its ClientHello (else JA3, else "") */
  char host[256];
  char who[PX_WHO_MAX];
  char why[96];
  uint64_t until_ms;
} px_decision_t;

/* When a rejection by (client program, host) was last reported. */
typedef struct {
  char ip[64];
  char fp[48];
  char host[256];
  uint64_t at_ms;
} px_report_t;

static pcre2_code *ignore_re[16];
static const char *ignore_text[16];
static int n_ignore;
static const px_config_t *config;

/* Shared by every worker, touched once per TLS handshake at most. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static px_decision_t decisions[PX_MAX_DECISIONS];
static int n_decisions;
static px_report_t reports[PX_MAX_REPORTS];
static int n_reports;

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
  pthread_mutex_lock(&table_lock);
  n_decisions = 0;
  n_reports = 0;
  pthread_mutex_unlock(&table_lock);
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

/* ---- decisions on a session ------------------------------------------------ */


static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Who the client program is: its IP (the port changes per connection) and
 * the fingerprint of its ClientHello. */
typedef struct {
  char ip[64];
  char fp[48];
  const char *host;
  char who[PX_WHO_MAX]; /* for messages */
} px_program_t;

static void program_of(const px_session_t *s, px_program_t *p) {
  const char *c = s->conn.client, *colon = strrchr(c, ':');
  size_t n = colon ? (size_t)(colon - c) : strlen(c);
  if (n >= 2 && c[0] == '[' && c[n - 1] == ']') { /* "[v6]:port" */
    c++;
    n -= 2;
  }
  if (n >= sizeof(p->ip)) n = sizeof(p->ip) - 1;
  memcpy(p->ip, c, n);
  p->ip[n] = '\0';
  snprintf(p->fp, sizeof(p->fp), "%s", s->conn.ja4[0] ? s->conn.ja4 : s->conn.ja3);
  p->host = s->conn.sni[0] ? s->conn.sni : s->up_host;
  if (p->fp[0])
    snprintf(p->who, sizeof(p->who), "client %s (%s %s)", p->ip, s->conn.ja4[0] ? "JA4" : "JA3",
             p->fp);
  else
    snprintf(p->who, sizeof(p->who), "client %s", p->ip);
}

static int same(const px_program_t *p, const char *ip, const char *fp, const char *host) {
  return strcmp(p->ip, ip) == 0 && strcmp(p->fp, fp) == 0 && strcasecmp(p->host, host) == 0;
}

static void ttl_text(char *buf, size_t len, uint64_t ms) {
  uint64_t sec = (ms + 999) / 1000;
  if (sec >= 60 && sec % 60 == 0)
    snprintf(buf, len, "%llu min", (unsigned long long)(sec / 60));
  else
    snprintf(buf, len, "%llu s", (unsigned long long)sec);
}

/* Milliseconds left of a passthrough decided for this program and host, or
 * 0. An expired decision is dropped (and said so). Caller holds the lock. */
static uint64_t decided_locked(const px_program_t *p, uint64_t now) {
  for (int i = 0; i < n_decisions; i++) {
    px_decision_t *d = &decisions[i];
    if (!same(p, d->ip, d->fp, d->host)) continue;
    if (d->until_ms > now) return d->until_ms - now;
    flt_log_info("automatic passthrough of %s for %s expired: intercepting it again", d->host,
                 d->who);
    decisions[i] = decisions[--n_decisions];
    return 0;
  }
  return 0;
}

/* Records (or renews) a decision; returns 1 when it is new. */
static int decide_locked(const px_program_t *p, const char *why, uint64_t now, uint64_t ttl) {
  int slot = -1;
  for (int i = 0; i < n_decisions && slot < 0; i++)
    if (same(p, decisions[i].ip, decisions[i].fp, decisions[i].host)) slot = i;
  int fresh = slot < 0 || decisions[slot].until_ms <= now;
  if (slot < 0) {
    if (n_decisions < PX_MAX_DECISIONS) {
      slot = n_decisions++;
    } else { /* full: take the one that ends first */
      slot = 0;
      for (int i = 1; i < n_decisions; i++)
        if (decisions[i].until_ms < decisions[slot].until_ms) slot = i;
    }
  }
  px_decision_t *d = &decisions[slot];
  snprintf(d->ip, sizeof(d->ip), "%s", p->ip);
  snprintf(d->fp, sizeof(d->fp), "%s", p->fp);
  snprintf(d->host, sizeof(d->host), "%s", p->host);
  snprintf(d->who, sizeof(d->who), "%s", p->who);
  snprintf(d->why, sizeof(d->why), "%s", why);
  d->until_ms = now + ttl;
  return fresh;
}

/* 1 when this program and host were not reported in the last
 * PX_REPORT_REPEAT_MS (and notes that they are now). */
static int report_due_locked(const px_program_t *p, uint64_t now) {
  int slot = -1;
  for (int i = 0; i < n_reports && slot < 0; i++)
    if (same(p, reports[i].ip, reports[i].fp, reports[i].host)) slot = i;
  if (slot >= 0 && now - reports[slot].at_ms < PX_REPORT_REPEAT_MS) return 0;
  if (slot < 0) {
    if (n_reports < PX_MAX_REPORTS) {
      slot = n_reports++;
    } else { /* full: forget the oldest */
      slot = 0;
      for (int i = 1; i < n_reports; i++)
        if (reports[i].at_ms < reports[slot].at_ms) slot = i;
    }
  }
  px_report_t *r = &reports[slot];
  snprintf(r->ip, sizeof(r->ip), "%s", p->ip);
  snprintf(r->fp, sizeof(r->fp), "%s", p->fp);
  snprintf(r->host, sizeof(r->host), "%s", p->host);
  r->at_ms = now;
  return 1;
}

/* The line goes to the console (stdout, default detail level) and to
 * stderr as a warning. */
static void say(px_session_t *s, const char *line) {
  flt_log_warn("%s", line);
  flt_emit_error(&s->w->shared->chain, &s->conn, line);
}

/* The client refused our certificate; `cause` says how. */
static void rejected(px_session_t *s, const char *cause) {
  const px_config_t *cfg = s->w->shared->cfg;
  px_program_t p;
  char line[1024], ttl[32];
  if (s->rejection_noted || s->conn.passthrough) return;
  s->rejection_noted = 1;
  program_of(s, &p);
  uint64_t now = now_ms();
  pthread_mutex_lock(&table_lock);
  int report = report_due_locked(&p, now);
  int fresh = cfg->auto_passthrough && decide_locked(&p, cause, now, cfg->auto_passthrough_ttl_ms);
  pthread_mutex_unlock(&table_lock);
  if (report) {
    snprintf(line, sizeof(line),
             "%s does not trust tlspeek's CA: it rejected the certificate for %s (%s); "
             "install the CA in that client (tlspeek ca info)%s",
             p.who, p.host, cause,
             cfg->auto_passthrough ? "" : " — or --ignore-hosts to pass the host through");
    say(s, line);
  }
  if (fresh) {
    ttl_text(ttl, sizeof(ttl), cfg->auto_passthrough_ttl_ms);
    snprintf(line, sizeof(line),
             "passing %s through for %s for %s because it rejected tlspeek's certificate (%s); "
             "trust the CA (tlspeek ca info) — or send SIGUSR1 to list, restart to clear",
             p.host, ttl, p.who, cause);
    say(s, line);
  }
}

/* The alerts by which a client says it refuses our certificate. */
static const char *cert_alert_name(unsigned long err) {
  static const struct {
    int reason;
    const char *name;
  } alerts[] = {
      {SSL_R_TLSV1_ALERT_UNKNOWN_CA, "unknown_ca"},
      {SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, "bad_certificate"},
      {SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN, "certificate_unknown"},
      {SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE, "unsupported_certificate"},
      {SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, "certificate_expired"},
      {SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED, "certificate_revoked"},
      {SSL_R_TLSV1_ALERT_DECRYPT_ERROR, "decrypt_error"},
      {SSL_R_TLSV1_ALERT_ACCESS_DENIED, "access_denied"},
  };
  if (err == 0 || ERR_GET_LIB(err) != ERR_LIB_SSL) return NULL;
  for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
    if (ERR_GET_REASON(err) == alerts[i].reason) return alerts[i].name;
  return NULL;
}

void px_passthrough_note_rejection(px_session_t *s, unsigned long err, int closed) {
  char cause[96];
  const char *alert = cert_alert_name(err);
  if (!s->leaf_set || s->state != PX_S_CLIENT_TLS) return;
  if (alert)
    snprintf(cause, sizeof(cause), "alert %s", alert);
  else if (closed)
    snprintf(cause, sizeof(cause), "it closed the connection after tlspeek's certificate");
  else
    return;
  rejected(s, cause);
}

void px_passthrough_note_early_close(px_session_t *s, unsigned long err) {
  char cause[128];
  const char *alert = cert_alert_name(err);
  if (!s->leaf_set || s->client_app_data || s->state != PX_S_HTTP || s->client.tls.ssl == NULL ||
      !SSL_is_init_finished(s->client.tls.ssl))
    return;
  if (alert)
    snprintf(cause, sizeof(cause), "alert %s after the handshake", alert);
  else
    snprintf(cause, sizeof(cause), "it closed the connection right after the handshake, "
                                   "before sending any request");
  rejected(s, cause);
}

/* Relays the connection untouched: the ClientHello we held goes upstream
 * as it came, and from then on bytes flow both ways unread. */
static void pass_through(px_session_t *s) {
  px_set_deadline(s, 0, PX_T_NONE);
  px_session_relay(s, 1);
  flt_strbuf_t hello = s->hello_raw;
  flt_strbuf_init(&s->hello_raw, 0);
  flt_emit_data(&s->w->shared->chain, &s->conn, FLT_DIR_REQUEST, (const uint8_t *)hello.data,
                hello.len);
  flt_emit_raw(&s->w->shared->chain, &s->conn, FLT_DIR_REQUEST, (const uint8_t *)hello.data,
               hello.len);
  px_send_upstream(s, hello.data, hello.len); /* held until connected */
  flt_strbuf_free(&hello);
  if (px_upstream_unconnected(s) && s->state != PX_S_CLOSING) px_upstream_start(s);
}

int px_passthrough_maybe(px_session_t *s) {
  const char *pattern = px_passthrough_ignored(&s->conn, s->up_host, s->up_port, s->conn.sni);
  char why[400], ttl[32];
  px_program_t p;
  program_of(s, &p);
  if (s->plugin_passthrough) {
    snprintf(why, sizeof(why), "a plugin asked for it (flt_conn_passthrough)");
  } else if (pattern) {
    snprintf(why, sizeof(why), "matches --ignore-hosts '%s'", pattern);
  } else if (s->w->shared->cfg->auto_passthrough) {
    pthread_mutex_lock(&table_lock);
    uint64_t left = decided_locked(&p, now_ms());
    pthread_mutex_unlock(&table_lock);
    if (left == 0) return 0;
    ttl_text(ttl, sizeof(ttl), left);
    snprintf(why, sizeof(why), "%s rejected tlspeek's certificate (--auto-passthrough, %s left)",
             p.who, ttl);
  } else {
    return 0;
  }
  px_session_log(s, FLT_LOG_INFO, "passing %s through: %s", p.host, why);
  pass_through(s);
  return 1;
}

void px_passthrough_list(int enabled) {
  char ttl[32];
  int shown = 0;
  uint64_t now = now_ms();
  pthread_mutex_lock(&table_lock);
  for (int i = 0; i < n_decisions; i++) {
    const px_decision_t *d = &decisions[i];
    if (d->until_ms <= now) continue;
    ttl_text(ttl, sizeof(ttl), d->until_ms - now);
    flt_log_warn("auto-passthrough: %s for %s, %s left (%s)", d->host, d->who, ttl, d->why);
    shown++;
  }
  pthread_mutex_unlock(&table_lock);
  if (shown == 0)
    flt_log_warn("auto-passthrough: no host is passed through%s",
                 enabled ? "" : " (--auto-passthrough is off)");
}
