/* log.h — the one diagnostics API. Lines go to stderr, each written with a
 * single write(2) so lines from different threads never mix. The traffic
 * view goes to stdout through the console filter, never through here.
 *
 * Every line is made safe and bounded here, so no caller has to:
 *  - control bytes in the message (C0, DEL, the C1 range U+0080..U+009F)
 *    and bytes that are not valid UTF-8 are written as escapes (\n, \r,
 *    \t, \xNN): a host name or header from the network can neither split a
 *    line nor drive the terminal. Valid UTF-8 is kept as it is.
 *  - a line repeated with the same text is written at most once per
 *    FLT_LOG_REPEAT_WINDOW_MS; the repeats in between are counted and
 *    summed up in one "suppressed N repeats" line once the window is over
 *    (at the next line logged, or at flt_log_flush).
 *  - beyond FLT_LOG_BURST_LINES distinct error, warning and info lines in
 *    one window, the rest are dropped and counted in one line when the
 *    next window opens: a flood of lines that each differ (a session
 *    number, a client port) cannot fill the disk or the terminal either. */
#ifndef TLSPEEK_LOG_H
#define TLSPEEK_LOG_H

#include <stddef.h>
#include <stdint.h>

enum {
  FLT_LOG_ERROR = 0,
  FLT_LOG_WARN = 1,
  FLT_LOG_INFO = 2,
  FLT_LOG_DEBUG = 3,
  FLT_LOG_TRACE = 4
};

#define FLT_LOG_LINE_MAX 4096          /* one line, escapes included; longer is cut */
#define FLT_LOG_REPEAT_WINDOW_MS 1000  /* one line per distinct text per window */
#define FLT_LOG_REPEAT_SLOTS 64        /* distinct texts tracked at once */
#define FLT_LOG_BURST_LINES 500        /* distinct lines (info and above) per window */

/* Messages above `level` are dropped. Default: FLT_LOG_INFO. */
void flt_log_set_level(int level);
int flt_log_level(void);

/* Writes "tlspeek: <level>: <message>\n" to stderr, escaped and rate
 * limited as described above. Thread-safe. */
void flt_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes the "suppressed N repeats" lines still pending, whatever their
 * window, and forgets every text seen. Call before exiting. */
void flt_log_flush(void);

/* Copies `in[0..len)` to `out` (NUL-terminated, at most outlen - 1 bytes)
 * with control bytes and invalid UTF-8 escaped as described above; an
 * escape or UTF-8 sequence that does not fit is left out whole. Returns
 * the length written. */
size_t flt_log_escape(char *out, size_t outlen, const char *in, size_t len);

/* Replaces the millisecond clock of the repeat limiter (NULL: the
 * monotonic clock again). For tests. */
void flt_log_set_clock(int64_t (*now_ms)(void));

#define flt_log_error(...) flt_log(FLT_LOG_ERROR, __VA_ARGS__)
#define flt_log_warn(...) flt_log(FLT_LOG_WARN, __VA_ARGS__)
#define flt_log_info(...) flt_log(FLT_LOG_INFO, __VA_ARGS__)
#define flt_log_debug(...)                                                    \
  do {                                                                        \
    if (flt_log_level() >= FLT_LOG_DEBUG) flt_log(FLT_LOG_DEBUG, __VA_ARGS__); \
  } while (0)
#define flt_log_trace(...)                                                    \
  do {                                                                        \
    if (flt_log_level() >= FLT_LOG_TRACE) flt_log(FLT_LOG_TRACE, __VA_ARGS__); \
  } while (0)

#endif
