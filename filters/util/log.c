#include "filters/util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filters/util/strbuf.h"

#define MSG_MAX 2048        /* a message before escaping */
#define REPEAT_TEXT_MAX 240 /* of a message, quoted in its "suppressed" line */

static atomic_int log_level = FLT_LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug",
                                          "trace"};

/* One text seen in the current window of the repeat limiter. */
typedef struct repeat_slot {
  uint64_t hash; /* of level and escaped message; 0: slot free */
  int level;
  int64_t window_start_ms;
  unsigned long suppressed;
  char text[REPEAT_TEXT_MAX];
} repeat_slot_t;

static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static repeat_slot_t repeat_slots[FLT_LOG_REPEAT_SLOTS];
static int64_t (*repeat_clock)(void);

/* The budget of distinct lines (FLT_LOG_BURST_LINES per window). Repeats
 * alone cannot bound a flood: most lines about a client name its session
 * and address, so every one of them is a new text. */
static int64_t burst_start_ms;
static unsigned burst_lines;
static unsigned long burst_dropped;

void flt_log_set_level(int level) { atomic_store(&log_level, level); }

int flt_log_level(void) { return atomic_load(&log_level); }

void flt_log_set_clock(int64_t (*now_ms)(void)) {
  pthread_mutex_lock(&repeat_lock);
  repeat_clock = now_ms;
  pthread_mutex_unlock(&repeat_lock);
}

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t put_escape(char *out, size_t room, uint8_t c) {
  static const char hex[] = "0123456789abcdef";
  char e[4] = {'\\', 0, 0, 0};
  size_t n = 2;
  switch (c) {
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    default:
      e[1] = 'x';
      e[2] = hex[c >> 4];
      e[3] = hex[c & 15];
      n = 4;
  }
  if (n > room) return 0;
  memcpy(out, e, n);
  return n;
}

size_t flt_log_escape(char *out, size_t outlen, const char *in, size_t len) {
  const uint8_t *p = (const uint8_t *)in;
  size_t o = 0, i = 0;

  if (outlen == 0) return 0;
  while (i < len) {
    size_t n = flt_utf8_seq_len(p + i, len - i);
    /* Not C0 or DEL, nor U+0080..U+009F (C1), which some terminals obey
     * as escapes; n == 0: not UTF-8. */
    int pass = n == 1 ? p[i] >= 0x20 && p[i] != 0x7f
                      : n > 1 && !(n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0);
    if (pass) {
      if (n > outlen - 1 - o) break;
      memcpy(out + o, p + i, n);
      o += n;
      i += n;
      continue;
    }
    if (n == 0) n = 1;
    for (size_t k = 0; k < n; k++) {
      size_t w = put_escape(out + o, outlen - 1 - o, p[i + k]);
      if (w == 0) goto Done;
      o += w;
    }
    i += n;
  }
Done:
  out[o] = '\0';
  return o;
}

static void write_line(const char *line, size_t len) {
  /* One write per line: atomic with respect to other threads' lines. */
  if (write(STDERR_FILENO, line, len) < 0) {
    /* stderr is gone; nothing sensible is left to do. */
  }
}

static void write_message(int level, const char *msg) {
  char line[FLT_LOG_LINE_MAX + 32];
  int n = snprintf(line, sizeof(line), "tlspeek: %s: %s", level_names[level], msg);
  if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2; /* cut, keep \n */
  line[n++] = '\n';
  write_line(line, (size_t)n);
}

/* Writes the count of the repeats a slot held back, and empties it. */
static void write_suppressed(repeat_slot_t *slot) {
  if (slot->hash != 0 && slot->suppressed > 0) {
    char msg[REPEAT_TEXT_MAX + 64];
    snprintf(msg, sizeof(msg), "suppressed %lu repeat%s of: %s", slot->suppressed,
             slot->suppressed == 1 ? "" : "s", slot->text);
    write_message(slot->level, msg);
  }
  slot->hash = 0;
  slot->suppressed = 0;
}

static uint64_t text_hash(int level, const char *s) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)level; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h ? h : 1;
}

/* Under repeat_lock. Counts a new line of `level` against the window's
 * budget; returns 1 when it is over and the line is to be dropped. Debug
 * and trace lines, asked for with -v, are not counted. */
static void report_dropped(int64_t now) {
  if (burst_dropped > 0) {
    char msg[200];
    snprintf(msg, sizeof(msg), "%lu more line%s dropped in the last %.1f s: over %d lines per %.1f s",
             burst_dropped, burst_dropped == 1 ? " was" : "s were",
             (double)(now - burst_start_ms) / 1000.0, FLT_LOG_BURST_LINES,
             (double)FLT_LOG_REPEAT_WINDOW_MS / 1000.0);
    write_message(FLT_LOG_WARN, msg);
  }
  burst_dropped = 0;
}

static int over_budget(int level, int64_t now) {
  if (level > FLT_LOG_INFO) return 0;
  if (now - burst_start_ms >= FLT_LOG_REPEAT_WINDOW_MS || now < burst_start_ms) {
    report_dropped(now);
    burst_start_ms = now;
    burst_lines = 0;
  }
  if (burst_lines < FLT_LOG_BURST_LINES) {
    burst_lines++;
    return 0;
  }
  burst_dropped++;
  return 1;
}

/* Under repeat_lock. Returns 1 when `msg` is a repeat to hold back, or a
 * new line over the budget (over_budget). */
static int repeat_hold_back(int level, const char *msg) {
  int64_t now = repeat_clock ? repeat_clock() : monotonic_ms();
  uint64_t h = text_hash(level, msg);
  repeat_slot_t *slot = NULL;

  /* Windows that are over report what they held back; the table is small
   * enough to scan whole. */
  for (int i = 0; i < FLT_LOG_REPEAT_SLOTS; i++) {
    repeat_slot_t *r = &repeat_slots[i];
    if (r->hash != 0 && now - r->window_start_ms >= FLT_LOG_REPEAT_WINDOW_MS) write_suppressed(r);
    if (r->hash == h) {
      r->suppressed++;
      return 1;
    }
    if (slot == NULL ||
        (slot->hash != 0 && (r->hash == 0 || r->window_start_ms < slot->window_start_ms)))
      slot = r; /* a free slot, else the oldest */
  }
  if (over_budget(level, now)) return 1;
  write_suppressed(slot); /* all slots busy: the oldest text reports early */
  slot->hash = h;
  slot->level = level;
  slot->window_start_ms = now;
  flt_log_escape(slot->text, sizeof(slot->text), msg, strlen(msg));
  return 0;
}

void flt_log(int level, const char *fmt, ...) {
  char raw[MSG_MAX], msg[FLT_LOG_LINE_MAX];
  va_list ap;
  int n;

  if (level > flt_log_level()) return;
  if (level < 0) level = 0;
  if (level > FLT_LOG_TRACE) level = FLT_LOG_TRACE;
  va_start(ap, fmt);
  n = vsnprintf(raw, sizeof(raw), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n >= (int)sizeof(raw)) n = (int)sizeof(raw) - 1;
  flt_log_escape(msg, sizeof(msg), raw, (size_t)n);

  pthread_mutex_lock(&repeat_lock);
  if (!repeat_hold_back(level, msg)) write_message(level, msg);
  pthread_mutex_unlock(&repeat_lock);
}

void flt_log_flush(void) {
  pthread_mutex_lock(&repeat_lock);
  report_dropped(repeat_clock ? repeat_clock() : monotonic_ms());
  burst_lines = 0;
  for (int i = 0; i < FLT_LOG_REPEAT_SLOTS; i++) write_suppressed(&repeat_slots[i]);
  pthread_mutex_unlock(&repeat_lock);
}
