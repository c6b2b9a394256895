/* runcmd_node.js.h — the Node.js preload that `tlspeek run` writes next to
 * the CA bundle and names in NODE_OPTIONS (--require). Included only by
 * proxy/runcmd.c, which writes "const PROXY_PORT = N;" and "const PROXY_AUTH =
 * 'Basic ...';" (null without --proxyauth) before it.
 *
 * Node 20 ignores HTTP(S)_PROXY: neither http.globalAgent nor the fetch()
 * built on its bundled undici looks at them, and require('undici') is not
 * available without the npm package. So the script
 *   - replaces http.globalAgent and https.globalAgent with agents whose
 *     connections are CONNECT tunnels through tlspeek (https.get, http.get,
 *     and libraries that use the global agents);
 *   - calls fetch() once on a data: URL, which loads the bundled undici and
 *     makes it install its global Agent under the registered symbol
 *     'undici.globalDispatcher.1', then installs a new Agent of that same
 *     class whose connector opens the CONNECT tunnel (fetch(), and the npm
 *     undici too, which shares the symbol).
 * TLS inside the tunnel is Node's own, so NODE_EXTRA_CA_CERTS (the bundle)
 * decides what is trusted. Requests with their own agent or dispatcher, or
 * to a Unix socket, are left alone. */
#ifndef TLSPEEK_RUNCMD_NODE_JS_H
#define TLSPEEK_RUNCMD_NODE_JS_H

static const char px_runcmd_node_js[] =
    "// Written by `tlspeek run`: sends this program's HTTP(S) through tlspeek.\n"
    "(() => {\n"
    "  const http = require('http'), https = require('https');\n"
    "  const net = require('net'), tls = require('tls');\n"
    "  const bare = (h) => (h && h[0] === '[' ? h.slice(1, -1) : h);\n"
    "  const authority = (h, p) => (net.isIPv6(h) ? '[' + h + ']' : h) + ':' + p;\n"
    "  // The CONNECT itself: an agent of the original class (agent: false would\n"
    "  // make one of the global agent's class, ours, and recurse).\n"
    "  const direct = new http.Agent({ keepAlive: false });\n"
    "  // A CONNECT tunnel through tlspeek to host:port; cb(err, socket).\n"
    "  function tunnel(host, port, cb) {\n"
    "    const target = authority(bare(host), port);\n"
    "    const req = http.request({ host: '127.0.0.1', port: PROXY_PORT, method: 'CONNECT',\n"
    "      path: target, agent: direct, headers: PROXY_AUTH\n"
    "        ? { Host: target, 'Proxy-Authorization': PROXY_AUTH } : { Host: target } });\n"
    "    req.once('connect', (res, socket, head) => {\n"
    "      if (res.statusCode !== 200) {\n"
    "        socket.destroy();\n"
    "        cb(new Error('tlspeek answered CONNECT ' + target + ' with ' + res.statusCode));\n"
    "        return;\n"
    "      }\n"
    "      if (head && head.length) socket.unshift(head);\n"
    "      cb(null, socket);\n"
    "    });\n"
    "    req.once('error', cb);\n"
    "    req.end();\n"
    "  }\n"
    "  const sni = (h) => (net.isIP(bare(h) || '') ? undefined : bare(h));\n"
    "  class HttpTunnelAgent extends http.Agent {\n"
    "    createConnection(o, cb) {\n"
    "      if (o.socketPath) return super.createConnection(o, cb);\n"
    "      tunnel(o.host || 'localhost', o.port || 80, cb);\n"
    "      return undefined;\n"
    "    }\n"
    "  }\n"
    "  class HttpsTunnelAgent extends https.Agent {\n"
    "    createConnection(o, cb) {\n"
    "      if (o.socketPath) return super.createConnection(o, cb);\n"
    "      tunnel(o.host || 'localhost', o.port || 443, (err, socket) => {\n"
    "        if (err) return cb(err);\n"
    "        const opts = Object.assign({}, o, { socket, path: undefined });\n"
    "        if (opts.servername === undefined) opts.servername = sni(o.host);\n"
    "        cb(null, tls.connect(opts));\n"
    "      });\n"
    "      return undefined;\n"
    "    }\n"
    "  }\n"
    "  http.globalAgent = new HttpTunnelAgent({ keepAlive: true });\n"
    "  https.globalAgent = new HttpsTunnelAgent({ keepAlive: true });\n"
    "  // fetch(): undici's connector contract is cb(err, socket) once connected.\n"
    "  function connect(o, cb) {\n"
    "    const tlsWanted = o.protocol === 'https:';\n"
    "    const port = Number(o.port) || (tlsWanted ? 443 : 80);\n"
    "    let done = false;\n"
    "    const once = (err, s) => { if (!done) { done = true; cb(err, s); } };\n"
    "    tunnel(o.hostname, port, (err, socket) => {\n"
    "      if (err || !tlsWanted) return once(err, socket);\n"
    "      const s = tls.connect({ socket, ALPNProtocols: ['http/1.1'],\n"
    "        servername: o.servername || sni(o.hostname) });\n"
    "      s.once('secureConnect', () => once(null, s));\n"
    "      s.once('error', (e) => once(e));\n"
    "    });\n"
    "  }\n"
    "  try {\n"
    "    if (typeof globalThis.fetch === 'function') {\n"
    "      globalThis.fetch('data:,').catch(() => {});\n"
    "      const key = Symbol.for('undici.globalDispatcher.1');\n"
    "      const Agent = globalThis[key] && globalThis[key].constructor;\n"
    "      if (typeof Agent !== 'function') throw new Error('no undici global dispatcher');\n"
    "      globalThis[key] = new Agent({ connect });\n"
    "    }\n"
    "  } catch (e) {\n"
    "    process.emitWarning('tlspeek: fetch() is not sent through the proxy: ' + e.message);\n"
    "  }\n"
    "})();\n";

#endif
