/* throttle.h — --throttle: a matching flow's bytes move at RATE bytes per
 * second each way, and its response's first byte comes LATENCY after its
 * request head at the earliest.
 *
 * No byte is held by tlspeek for it: each leg's reads are rationed (a read
 * budget on the leg, leg.h) and a timer of the session's own, allocated
 * only while a throttled flow is in progress, tops the budgets up (a token
 * bucket that starts empty, so RATE holds from the first byte; the wire
 * bytes of each leg are counted, TLS records included). The client leg
 * carries the request, the upstream leg the response; what waits, waits in
 * the kernel's socket buffers and the peer's TCP window. On HTTP/1 a leg
 * carries one exchange at a time, so the legs are rationed while at least
 * one throttled flow is in progress, at the rate of the newest. Latency
 * keeps the upstream leg's budget empty from the request head on.
 */
#ifndef TLSPEEK_THROTTLE_H
#define TLSPEEK_THROTTLE_H

#include "filters/filter.h"

struct px_session;

/* At a flow's request head (before its event): when a --throttle rule
 * matches `f`, the session's legs are rationed from now on and the flow
 * gets its "throttled" action line. Returns 1 when it did (call
 * px_throttle_flow_end at the flow's end), else 0. */
int px_throttle_flow_start(struct px_session *s, flt_flow_t *f);
/* A throttled flow ended; after the last one the legs read freely again
 * and the timer goes. */
void px_throttle_flow_end(struct px_session *s);
/* Closes the timer (counted in handles_open; when the session is closing,
 * its close callback calls px_session_close again). A closing session's
 * flows all end (px_session_http_fail_flows), the throttled ones with
 * px_throttle_flow_end, which calls it. */
void px_throttle_close(struct px_session *s);

#endif
