/* ca_trust.c — the `tlspeek ca info` instructions: how each kind of client
 * is told to trust this CA, with the real paths of this CA directory.
 *
 * Layout of the text: one heading per client at column 0, commands indented
 * by four spaces and prefixed with "$ " (ready to paste), notes indented by
 * four spaces. tests/e2e/test_trust.py runs the "$ " lines as printed. */
#include <limits.h>
#include <string.h>

#include <openssl/x509.h>

#include "ca/ca_internal.h"

/* What `ca info` suggests as the proxy address: tlspeek's default --listen. */
#define TRUST_PROXY "127.0.0.1:8080"
/* The password Java tools expect of a truststore (the JDK's own default). */
#define TRUST_JAVA_PASS CA_P12_PASSWORD

/* Shell quoting for one word: bare when it only holds characters no shell
 * treats specially, else in single quotes ('\'' for a quote inside). */
static const char *shq(const char *in, char *buf, size_t len) {
  static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                             "_./+-:@,%=";
  size_t i, pos = 0;

  if (in[0] != '\0' && strspn(in, safe) == strlen(in)) return in;
  if (len < 3) return "''";
  buf[pos++] = '\'';
  for (i = 0; in[i] != '\0' && pos + 6 < len; i++) {
    if (in[i] == '\'') {
      memcpy(buf + pos, "'\\''", 4);
      pos += 4;
    } else
      buf[pos++] = in[i];
  }
  buf[pos++] = '\'';
  buf[pos] = '\0';
  return buf;
}

/* The path as a JSON string's contents: '"' and '\\' escaped, control
 * characters (which no sane path holds) dropped. */
static void json_path(const char *in, char *buf, size_t len) {
  size_t pos = 0;

  for (; *in != '\0' && pos + 3 < len; in++) {
    if ((unsigned char)*in < 0x20) continue;
    if (*in == '"' || *in == '\\') buf[pos++] = '\\';
    buf[pos++] = *in;
  }
  buf[pos] = '\0';
}

typedef struct trust_names {
  char cert[2 * PATH_MAX + 8];    /* the PEM certificate, shell-quoted */
  char dir[2 * PATH_MAX + 8];     /* the CA directory, shell-quoted */
  char jks[2 * PATH_MAX + 32];    /* a Java truststore beside the CA files */
  char json[2 * PATH_MAX + 8];    /* the PEM certificate, in a JSON string */
  char label[32];                 /* "tlspeek-<id>": alias, nickname, file name */
} trust_names_t;

static void trust_names_init(const ca_t *ca, trust_names_t *n) {
  char id[CA_SHORT_ID_LEN], buf[2 * PATH_MAX + 8], path[PATH_MAX + 32];

  snprintf(n->cert, sizeof(n->cert), "%s", shq(ca->cert_pem_path, buf, sizeof(buf)));
  snprintf(n->dir, sizeof(n->dir), "%s", shq(ca->dir, buf, sizeof(buf)));
  json_path(ca->cert_pem_path, n->json, sizeof(n->json));
  snprintf(path, sizeof(path), "%.*s/java-truststore", PATH_MAX - 1, ca->dir);
  snprintf(n->jks, sizeof(n->jks), "%s", shq(path, buf, sizeof(buf)));
  if (ca_key_short_id(X509_get0_pubkey(ca->cert), id, sizeof(id)) != 0) snprintf(id, sizeof(id), "ca");
  snprintf(n->label, sizeof(n->label), "tlspeek-%s", id);
}

static void help_cli(const trust_names_t *n, FILE *out) {
  fprintf(out,
          "curl\n"
          "    $ curl --cacert %s -x http://" TRUST_PROXY " https://example.com/\n"
          "wget\n"
          "    $ wget --ca-certificate=%s -e use_proxy=on"
          " -e https_proxy=http://" TRUST_PROXY " https://example.com/\n"
          "git\n"
          "    $ export GIT_SSL_CAINFO=%s\n"
          "    or for good: git config --global http.sslCAInfo %s\n"
          "    (GIT_SSL_CAINFO, when set, wins over http.sslCAInfo; git takes the\n"
          "    proxy from https_proxy or http.proxy)\n",
          n->cert, n->cert, n->cert, n->cert);
}

static void help_languages(const trust_names_t *n, FILE *out) {
  fprintf(out,
          "Python: ssl, urllib, http.client, httpx\n"
          "    $ export SSL_CERT_FILE=%s\n"
          "    (in place of the system bundle, for that shell only)\n"
          "Python: requests (reads its own variable, not SSL_CERT_FILE)\n"
          "    $ export REQUESTS_CA_BUNDLE=%s\n"
          "Node.js (added to Node's built-in roots)\n"
          "    $ export NODE_EXTRA_CA_CERTS=%s\n"
          "    Node ignores https_proxy: tunnel with an agent that sends CONNECT,\n"
          "    or run tlspeek in reverse mode in front of the server.\n"
          "Go (crypto/x509)\n"
          "    $ export SSL_CERT_FILE=%s\n"
          "    SSL_CERT_DIR works too, but name a directory that holds only the\n"
          "    certificate, not %s (it also holds the key).\n"
          "    net/http never proxies requests for localhost or loopback addresses\n"
          "    (127.x, ::1), whatever https_proxy and NO_PROXY say. Give the local\n"
          "    server another name in /etc/hosts (\"127.0.0.1 myapp.test\") and use\n"
          "    that, or set Transport.Proxy = http.ProxyURL(...), which has no such\n"
          "    exception.\n",
          n->cert, n->cert, n->cert, n->cert, n->dir);
}

static void help_java(const trust_names_t *n, FILE *out) {
  fprintf(out,
          "Java (keytool, then the truststore on the command line; Java 9+)\n"
          "    $ cp \"$(dirname \"$(readlink -f \"$(command -v java)\")\")/../lib/security/cacerts\""
          " %s\n"
          "    $ keytool -importcert -noprompt -alias %s -file %s -keystore %s"
          " -storepass " TRUST_JAVA_PASS "\n"
          "    $ java -Djavax.net.ssl.trustStore=%s"
          " -Djavax.net.ssl.trustStorePassword=" TRUST_JAVA_PASS
          " -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=8080 -Dhttp.nonProxyHosts= ...\n"
          "    The cp keeps the JDK's own roots; without it keytool makes a truststore\n"
          "    with this CA alone, and so does `tlspeek ca export --p12 FILE`\n"
          "    (password " TRUST_JAVA_PASS ").\n"
          "    Java never proxies localhost, 127.* and [::1] unless http.nonProxyHosts\n"
          "    is set and empty, as above: a non-empty list gets them added back.\n",
          n->jks, n->label, n->cert, n->jks, n->jks);
}

static void help_browsers(const trust_names_t *n, FILE *out) {
  fprintf(out,
          "Chromium, Chrome (the user's NSS database; certutil: Debian's libnss3-tools)\n"
          "    $ certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n %s -i %s\n"
          "    No database yet? mkdir -p ~/.pki/nssdb &&"
          " certutil -d sql:$HOME/.pki/nssdb -N --empty-password\n"
          "Firefox (its own database per profile; it ignores ~/.pki/nssdb)\n"
          "    $ certutil -d sql:PROFILE -A -t C,, -n %s -i %s\n"
          "    PROFILE is the profile's directory (about:profiles shows it, e.g.\n"
          "    ~/.mozilla/firefox/xxxxxxxx.default-esr); close Firefox first. For\n"
          "    every profile, an enterprise policy instead, in policies.json in the\n"
          "    distribution/ folder of the install (Debian:\n"
          "    /usr/lib/firefox-esr/distribution/policies.json):\n"
          "      {\"policies\": {\"Certificates\": {\"Install\": [\"%s\"]}}}\n"
          "    (ImportEnterpriseRoots reads the system store on Windows and macOS only.)\n",
          n->label, n->cert, n->label, n->cert, n->json);
}

static void help_system(const trust_names_t *n, FILE *out) {
  fprintf(out,
          "Debian, Ubuntu: the system store (OpenSSL, GnuTLS and most programs)\n"
          "    $ sudo cp %s /usr/local/share/ca-certificates/%s.crt\n"
          "    $ sudo update-ca-certificates\n"
          "    Undo: remove that file, then sudo update-ca-certificates --fresh\n",
          n->cert, n->label);
}

void ca_print_trust_help(const ca_t *ca, FILE *out) {
  trust_names_t n;

  trust_names_init(ca, &n);
  fprintf(out,
          "\nTo trust it (only on machines you debug from): clients need the certificate\n"
          "%s, never the key.\n"
          TRUST_PROXY " below is tlspeek's default --listen.\n\n",
          n.cert);
  help_cli(&n, out);
  help_languages(&n, out);
  help_java(&n, out);
  help_browsers(&n, out);
  help_system(&n, out);
  fprintf(out,
          "\nAnyone holding %s can intercept traffic of whoever trusts this CA;"
          "\nkeep it private.\n",
          ca->key_path);
}
