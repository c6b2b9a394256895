/* fsm.h — a state variable that changes only along a table.
 *
 * Each concern of a session (the session itself, its end, the upstream
 * side, the SOCKS5 set-up) keeps one state enum and changes it through its
 * own setter, which asks px_fsm_check() first: the transition is traced at
 * --log-level trace ("session N: upstream: connecting -> tls"), and one the
 * table does not allow is refused with an error line naming it, the state
 * left as it was. Built with -DPX_FSM_STRICT, a refusal aborts instead (for
 * test runs that must not pass over one).
 */
#ifndef TLSPEEK_FSM_H
#define TLSPEEK_FSM_H

#include <stdint.h>

#define PX_FSM_MAX_STATES 32

typedef struct px_fsm {
  const char *what;         /* "session", "upstream", ... */
  const char *const *names; /* names[state], for the log */
  int n;                    /* number of states, at most PX_FSM_MAX_STATES */
  const uint32_t *allowed;  /* allowed[from] has bit `to` set when from -> to is allowed */
} px_fsm_t;

#define PX_FSM_BIT(state) (1u << (state))

/* 1 when the table allows `from` -> `to` (a state to itself is never a
 * transition: 0 unless listed). */
int px_fsm_allowed(const px_fsm_t *m, int from, int to);
/* 0 when `from` -> `to` is allowed (traced), -1 when refused (logged as an
 * error with the session `id`). */
int px_fsm_check(const px_fsm_t *m, unsigned long long id, int from, int to);
/* The name of `state`, "?" when out of range. */
const char *px_fsm_name(const px_fsm_t *m, int state);

#endif
