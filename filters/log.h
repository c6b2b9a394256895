/* log.h — the one diagnostics API. Lines go to stderr, each written with a
 * single write(2) so lines from different threads never mix. The traffic
 * view goes to stdout through the console filter, never through here. */
#ifndef TLSPEEK_LOG_H
#define TLSPEEK_LOG_H

enum {
  FLT_LOG_ERROR = 0,
  FLT_LOG_WARN = 1,
  FLT_LOG_INFO = 2,
  FLT_LOG_DEBUG = 3,
  FLT_LOG_TRACE = 4
};

/* Messages above `level` are dropped. Default: FLT_LOG_INFO. */
void flt_log_set_level(int level);
int flt_log_level(void);

/* Writes "tlspeek: <level>: <message>\n" to stderr. */
void flt_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
