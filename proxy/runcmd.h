/* runcmd.h — `tlspeek run -- CMD ARGS...`: one program run with tlspeek as
 * its proxy and tlspeek's CA among the CAs it trusts.
 *
 * px_runcmd_prepare() writes a private directory (mkdtemp, 0700) holding a
 * CA bundle (the system CAs, --upstream-ca, tlspeek's CA; 0600) and a Node.js
 * preload script, and builds the command's environment: HTTP(S)_PROXY and
 * friends set to http://127.0.0.1:PORT, NO_PROXY removed, every CA-bundle
 * variable pointing at the bundle, JAVA_TOOL_OPTIONS and NODE_OPTIONS
 * extended. px_runcmd_spawn() starts the command on a loop with stdin,
 * stdout and stderr inherited; px_runcmd_free() removes the directory. */
#ifndef TLSPEEK_RUNCMD_H
#define TLSPEEK_RUNCMD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct px_runcmd px_runcmd_t;

/* Runs on the loop's thread when the command has exited. `status` is what
 * tlspeek should exit with: the command's exit code, or 128+N when signal
 * N killed it. */
typedef void (*px_runcmd_exit_cb)(void *arg, int status);

/* What the command is told about the proxy and what it should trust. */
typedef struct px_runcmd_proxy {
  uint16_t port;           /* tlspeek listens on 127.0.0.1:port */
  const char *proxyauth;   /* --proxyauth "USER:PASS", or NULL: put into the proxy
                              URLs (percent-encoded) and the Node.js preload */
  const char *ca_cert;     /* tlspeek's CA certificate (PEM file) */
  const char *upstream_ca; /* --upstream-ca, or NULL */
} px_runcmd_proxy_t;

/* Writes the bundle and the preload and builds the environment from
 * `environ`. `argv` (NULL-terminated, at least one word) is borrowed until
 * px_runcmd_free(). 0, or -1 with the reason in err. */
int px_runcmd_prepare(px_runcmd_t **out, char *const *argv, const px_runcmd_proxy_t *px,
                      char *err, size_t errlen);

/* Starts the command on `loop`. 0, or the exit status tlspeek should end
 * with (127: not found, 126: found but not executable, 1: other) with the
 * reason in err. Once started, SIGINT, SIGTERM and SIGHUP sent to tlspeek
 * are passed on to the command, except those the terminal sent to the
 * whole foreground process group: the command got those itself. */
int px_runcmd_spawn(px_runcmd_t *rc, uv_loop_t *loop, px_runcmd_exit_cb on_exit, void *arg,
                    char *err, size_t errlen);

/* The environment handed to the command (NULL-terminated "NAME=VALUE"). */
char *const *px_runcmd_env(const px_runcmd_t *rc);

/* The CA bundle's path. */
const char *px_runcmd_bundle(const px_runcmd_t *rc);

/* Stops passing signals on, closes the process handle (the loop must run
 * once more to finish closing it), removes the private directory. NULL is
 * a no-op. */
void px_runcmd_free(px_runcmd_t *rc);

#endif
