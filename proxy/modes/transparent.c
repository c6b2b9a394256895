/* transparent.c — transparent mode's view of a connection: where the client
 * meant to go, and whether it is our own traffic coming back (a loop). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "filters/util/log.h"
#include "proxy/loopguard.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* Transparent mode: where the client really wanted to go. REDIRECT keeps
 * it in SO_ORIGINAL_DST; TPROXY leaves it as our local address. A
 * destination that is our own listener means nothing was redirected (or
 * our own upstream traffic was): refuse instead of connecting to
 * ourselves forever. */
int px_transparent_destination(px_session_t *s) {
  struct sockaddr_storage dst, local;
  socklen_t dl = sizeof(dst), ll = sizeof(local);
  uv_os_fd_t fd;
  char ip[INET6_ADDRSTRLEN] = "";
  int rc;

  uv_fileno((uv_handle_t *)&s->client.tcp, &fd);
  getsockname(fd, (struct sockaddr *)&local, &ll);
  if (px_loopguard_is_ours(fd)) {
    const char *msg = "transparent mode: this connection is tlspeek's own upstream connection, "
                      "redirected back into it — a redirect loop; exempt tlspeek's upstream "
                      "traffic from the rule (-m owner ! --uid-owner USER, or --mark N with "
                      "-m mark ! --mark N); refusing";
    px_session_fail(s, FLT_LOG_ERROR, NULL, msg, PX_FAIL_CLOSE);
    return -1;
  }
  if (s->w->shared->cfg->tproxy) {
    dst = local;
    rc = 0;
  } else if (local.ss_family == AF_INET6) {
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dl);
  } else {
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl);
  }
  if (rc != 0) {
    char msg[200];
    snprintf(msg, sizeof(msg), "transparent mode: no original destination (%s); was the "
             "connection redirected by iptables REDIRECT/TPROXY?", strerror(errno));
    px_session_log(s, FLT_LOG_WARN, "%s: %s", s->conn.client, msg);
    px_session_close(s, msg);
    return -1;
  }
  uint16_t port, lport;
  char lip[INET6_ADDRSTRLEN] = "";
  if (dst.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&dst, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in6 *)&dst)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&dst, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in *)&dst)->sin_port);
  }
  if (local.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&local, lip, sizeof(lip));
    lport = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&local, lip, sizeof(lip));
    lport = ntohs(((struct sockaddr_in *)&local)->sin_port);
  }
  int loopback = strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
  int tproxy = s->w->shared->cfg->tproxy; /* there, local is the destination */
  if ((!tproxy && port == lport && strcmp(ip, lip) == 0) || (port == s->lc->port && loopback)) {
    char msg[300];
    snprintf(msg, sizeof(msg), "transparent mode: the original destination %s%s%s:%u is "
             "tlspeek's own listener — a redirect loop (exempt tlspeek's upstream traffic, "
             "e.g. -m owner ! --uid-owner tlspeek, or --mark N with a matching rule); refusing",
             dst.ss_family == AF_INET6 ? "[" : "", ip, dst.ss_family == AF_INET6 ? "]" : "",
             (unsigned)port);
    px_session_fail(s, FLT_LOG_ERROR, NULL, msg, PX_FAIL_CLOSE);
    return -1;
  }
  px_session_set_target(s, ip, port);
  return 0;
}

