#include "filters/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int log_level = FLT_LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug",
                                          "trace"};

void flt_log_set_level(int level) { atomic_store(&log_level, level); }

int flt_log_level(void) { return atomic_load(&log_level); }

void flt_log(int level, const char *fmt, ...) {
  char line[2048];
  int n;
  va_list ap;

  if (level > flt_log_level()) return;
  if (level < 0) level = 0;
  if (level > FLT_LOG_TRACE) level = FLT_LOG_TRACE;
  n = snprintf(line, sizeof(line), "tlspeek: %s: ", level_names[level]);
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2; /* cut, keep \n */
  line[n++] = '\n';
  /* One write per line: atomic with respect to other threads' lines. */
  if (write(STDERR_FILENO, line, (size_t)n) < 0) {
    /* stderr is gone; nothing sensible is left to do. */
  }
}
