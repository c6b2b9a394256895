/* fsm.c — table-checked state changes (fsm.h). */
#include "proxy/fsm.h"

#include <stdlib.h>

#include "filters/util/log.h"

const char *px_fsm_name(const px_fsm_t *m, int state) {
  return state >= 0 && state < m->n ? m->names[state] : "?";
}

int px_fsm_allowed(const px_fsm_t *m, int from, int to) {
  if (from < 0 || from >= m->n || to < 0 || to >= m->n) return 0;
  return (m->allowed[from] & PX_FSM_BIT(to)) != 0;
}

int px_fsm_check(const px_fsm_t *m, unsigned long long id, int from, int to) {
  if (px_fsm_allowed(m, from, to)) {
    flt_log_trace("session %llu: %s: %s -> %s", id, m->what, px_fsm_name(m, from),
                  px_fsm_name(m, to));
    return 0;
  }
  flt_log_error("session %llu: %s: refused the transition %s -> %s (not in its table)", id, m->what,
                px_fsm_name(m, from), px_fsm_name(m, to));
#ifdef PX_FSM_STRICT
  abort();
#endif
  return -1;
}
