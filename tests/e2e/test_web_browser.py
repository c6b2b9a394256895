"""The flow browser (`tlspeek --web`) in headless Chromium.

tlspeek runs with --web on a free port; curl sends requests through it to the
local HTTPS upstream (tests/e2e/upstream_server.py); Chromium, driven over the
DevTools protocol (cdp.py), opens the URL tlspeek printed and the test reads
what the page shows from its DOM. Every wait is a bounded poll of a DOM
condition with a message saying what did not show.

Screenshots of the list, a body, the TLS ladder and the wire view are written
to $TLSPEEK_SCREENSHOTS (`make screenshots` sets it to filters/web/screenshots),
or to the test's temporary folder.
"""
import gzip
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from cdp import Browser
from conftest import BIN, Proxy, clean_env, curl, free_port, require_program
import upstream_server

START_LINE = re.compile(r"tlspeek: web: (http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32}))")
ASAN = os.environ.get("TLSPEEK_ASAN") == "1"

# Rows, cells and panes as the page names them (filters/web/assets/index.html, app.js).
ROW_JS = """(needle) => [...document.querySelectorAll('#viewport .row[data-id]')]
    .filter(r => !r.hidden)
    .find(r => r.querySelector('.c-path').textContent.includes(needle))"""


def wait_start_line(read_stderr):
    """(url, port, token) from the 'tlspeek: web: URL' line tlspeek prints."""
    deadline = time.time() + 15
    while True:
        m = START_LINE.search(read_stderr())
        if m:
            return m.group(1), int(m.group(2)), m.group(3)
        if time.time() > deadline:
            raise AssertionError("no 'tlspeek: web: URL' line on stderr:\n" + read_stderr()[-3000:])
        time.sleep(0.05)


class Web:
    """tlspeek with --web, a Chromium tab on its page, and helpers to read it."""

    def __init__(self, pki, upstream, shots):
        self.pki = pki
        self.upstream = upstream
        self.shots = shots
        self.proxy = Proxy(pki, ["--web", "127.0.0.1:%d" % free_port()])
        self.url, self.port, self.token = wait_start_line(self.proxy.stderr)
        self.base = "http://127.0.0.1:%d" % self.port
        self.browser = Browser(require_program("chromium"), width=1280, height=1000,
                               env=clean_env())
        self.page = self.browser.new_page()

    def origin(self, path):
        return "https://localhost:%d%s" % (self.upstream.port, path)

    def get(self, path, *args, timeout=30):
        """curl through the proxy; returns CompletedProcess."""
        return curl("-x", self.proxy.url, "--cacert", self.pki.proxy_ca, *args,
                    self.origin(path), timeout=timeout)

    def curl_bg(self, path, *args):
        return subprocess.Popen(["curl", "-sS", "-x", self.proxy.url, "--cacert", self.pki.proxy_ca]
                                + list(args) + [self.origin(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())

    def api(self, path, data=None, token=True, headers=None):
        """(status, JSON) of an /api request made without the browser."""
        sep = "&" if "?" in path else "?"
        url = self.base + path + (sep + "token=" + self.token if token else "")
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def fresh(self):
        """The page, loaded anew, over an empty flow list."""
        p = self.page
        p.bring_to_front()  # a background tab gets no animation frames
        p.goto(self.url)
        p.wait_for("document.getElementById('live').classList.contains('on')",
                   "the page did not connect to the event stream (live dot not on)")
        p.click("#clear")
        p.wait_for("document.querySelectorAll('#viewport .row[data-id]:not([hidden])').length"
                   " === 0", "Clear did not empty the list")
        return p

    def row(self, needle, what="", timeout=20):
        """Waits for the row whose path contains `needle` (and for `what`, a JS
        condition on it as `r`, to hold); returns its cells' texts."""
        cond = "r && (%s)" % (what or "true")
        expr = "((r) => %s ? [...r.children].map(c => c.textContent).concat([r.className]) : null)" \
               "((%s)(%s))" % (cond, ROW_JS, json.dumps(needle))
        cells = self.page.wait_for(
            expr, lambda: "no row for %s%s in the list; rows: %s" % (
                needle, " with " + what if what else "", self.rows_text()), timeout=timeout)
        keys = ["method", "host", "path", "status", "type", "size", "time", "proto", "tls", "class"]
        return dict(zip(keys, cells))

    def rows_text(self):
        return self.page.eval("[...document.querySelectorAll('#viewport .row[data-id]')]"
                              ".filter(r => !r.hidden).map(r => r.textContent)")

    def click_row(self, needle):
        self.row(needle)
        rid = self.page.eval("(%s)(%s).dataset.id" % (ROW_JS, json.dumps(needle)))
        self.page.click("#viewport .row[data-id='%s']" % rid)
        self.page.wait_for("document.getElementById('detail-title').textContent.includes(%s)"
                           % json.dumps(needle), "clicking the row of %s showed no detail" % needle)

    def tab(self, name):
        self.page.click(".tab[data-tab=%s]" % name)
        self.page.wait_for("!document.getElementById('pane-%s').hidden" % name,
                           "the %s tab did not open" % name)

    def shot(self, name):
        return self.page.screenshot(os.path.join(self.shots, name + ".png"))

    def close(self):
        self.browser.close()
        rc = self.proxy.stop()
        assert rc in (0, -9), "tlspeek exit %s\n%s" % (rc, self.proxy.stderr()[-3000:])


@pytest.fixture(scope="module")
def web(pki, https_upstream, tmp_path_factory):
    require_program("curl")
    shots = os.environ.get("TLSPEEK_SCREENSHOTS") or str(tmp_path_factory.mktemp("screens"))
    w = Web(pki, https_upstream, shots)
    yield w
    w.close()


@pytest.fixture(autouse=True)
def no_page_errors(web):
    """Each test ends with the page having logged no script error and no
    Content-Security-Policy violation (the browser's own favicon request
    may 404)."""
    seen = len(web.page.conn.events)
    yield
    new = Page_problems(web.page, seen)
    assert not new, "the page logged errors:\n" + "\n".join(new)


def Page_problems(page, since):
    events = page.conn.events
    old, page.conn.events = events, events[since:]
    try:
        return [p for p in page.problems() if "favicon.ico" not in p]
    finally:
        page.conn.events = old


def tag():
    return uuid.uuid4().hex[:10]


def test_pending_row_appears_before_the_response(web):
    web.fresh()
    t = tag()
    slow = web.curl_bg("/slow/4000?id=%s" % t)
    try:
        cells = web.row(t, "r.dataset.state === 'pending'", timeout=15)
        # The row was seen as pending while curl was still waiting for the answer.
        assert slow.poll() is None, "curl finished before the pending row was read"
        assert cells["status"] == "pending" and cells["method"] == "GET", cells
        assert cells["host"] == "https://localhost:%d" % web.upstream.port, cells
        assert "s-pending" in cells["class"], cells
        out, err = slow.communicate(timeout=30)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert out == upstream_server.TEXT, err
    cells = web.row(t, "r.dataset.state === 'done'")
    assert cells["status"] == "200" and cells["type"] == "text/plain", cells
    assert cells["time"].endswith(" s"), "a 4 s flow's duration reads %r" % cells["time"]


def test_rows_show_status_type_and_size(web):
    web.fresh()
    t = tag()
    json_body = json.dumps({"name": "tlspeek", "list": [1, 2, 3], "nested": {"ok": True}}).encode()
    expect = {
        "/json": ("200", "application/json", len(json_body), "s-2xx"),
        "/gzip": ("200", "text/plain", len(upstream_server.TEXT), "s-2xx"),
        "/png": ("200", "image/png", len(upstream_server.PNG), "s-2xx"),
        "/status/503": ("503", "", 0, "s-5xx"),
    }
    for path in expect:
        r = web.get(path + "?id=" + t)
        assert r.returncode == 0, r.stderr
    for path, (status, ctype, size, cls) in expect.items():
        cells = web.row(path + "?id=" + t, "r.dataset.state !== 'pending'")
        assert cells["status"] == status, (path, cells)
        assert cells["type"] == ctype, (path, cells)
        assert cls in cells["class"], (path, cells)
        decoded, _, wire = cells["size"].partition(" / ")
        assert decoded == "%d B" % size, (path, cells)
        # On the wire: the head plus the body as it came (gzip: compressed).
        sent = len(gzip.compress(upstream_server.TEXT)) if path == "/gzip" else size
        assert wire.endswith(" B") and int(wire[:-2]) > sent, (path, cells)
        assert cells["proto"] == "HTTP/1.1" and cells["tls"].startswith("TLSv1."), cells
    # Nothing listens on this port: tlspeek answers 502 and the row says error.
    dead = "https://localhost:%d/gone?id=%s" % (free_port(), t)
    curl("-x", web.proxy.url, "--cacert", web.pki.proxy_ca, dead)
    cells = web.row("/gone?id=" + t, "r.dataset.state !== 'pending'")
    assert cells["status"].startswith("error"), cells
    assert "s-error" in cells["class"], cells
    # The screenshot: a flow in flight among them, and one flow's heads below.
    slow = web.curl_bg("/slow/3000?id=%s-shot" % t)
    try:
        web.row("/slow/3000?id=%s-shot" % t, "r.dataset.state === 'pending'")
        web.click_row("/json?id=" + t)
        web.page.wait_for("document.querySelector('#pane-headers .head-block') !== null",
                          "the Headers tab shows no heads")
        web.shot("list")
    finally:
        slow.communicate(timeout=30)


def test_client_that_gives_up_is_shown_aborted(web):
    web.fresh()
    t = tag()
    r = web.get("/slow/3000?id=" + t, timeout=1)
    assert r.returncode == 28, "curl --max-time 1 should have given up: %r" % r.stderr
    cells = web.row(t, "r.dataset.state === 'aborted'", timeout=20)
    assert cells["status"] == "client aborted" and "s-aborted" in cells["class"], cells


def test_detail_shows_decoded_bodies_the_tls_ladder_and_the_wire(web):
    p = web.fresh()
    t = tag()
    for path in ("/gzip", "/png", "/json"):
        assert web.get("%s?id=%s" % (path, t)).returncode == 0
    # gzip: the page shows the decoded text.
    web.click_row("/gzip?id=" + t)
    web.tab("body")
    text = upstream_server.TEXT.decode()
    p.wait_for("(document.querySelector('#pane-body pre.code') || {}).textContent === %s"
               % json.dumps(text), "the gzip body is not shown decoded")
    # an image: rendered from the body URL.
    web.click_row("/png?id=" + t)
    p.wait_for("(() => { const i = document.querySelector('#pane-body img.body-image');"
               " return i && i.complete && i.naturalWidth === 1; })()",
               "the PNG body was not rendered as an image")
    # JSON: a tree whose values are the document's.
    web.click_row("/json?id=" + t)
    p.wait_for("document.querySelectorAll('#pane-body .json-tree .j-key').length === 4",
               "the JSON body is not shown as a tree of its 4 keys")
    keys = p.eval("[...document.querySelectorAll('#pane-body .j-key')].map(e => e.textContent)")
    assert keys == ['"name"', '"list"', '"nested"', '"ok"'], keys
    p.click("#pane-body .json-tree .j-kids .j-toggle")  # fold "list"
    p.wait_for("document.querySelector('#pane-body .j-kids .j-line.folded') !== null",
               "clicking the JSON array did not fold it")
    web.shot("body")
    # TLS: both legs' handshakes on one ladder, numbered by step, explained on click.
    web.tab("tls")
    msgs = p.wait_for("(() => { const m = [...document.querySelectorAll('#ladder .msg')];"
                      " return m.length ? m.map(e => [e.dataset.leg, e.dataset.type,"
                      " e.querySelector('.step').textContent]) : null; })()",
                      "the TLS tab shows no ladder")
    for leg in ("client", "upstream"):
        types = [m[1] for m in msgs if m[0] == leg]
        assert "ClientHello" in types and "ServerHello" in types, (leg, msgs)
        assert "Finished" in types, (leg, msgs)
    hello = [m for m in msgs if m[1] == "ClientHello"]
    assert all(m[2] == "1" for m in hello), hello
    p.click("#ladder .msg[data-leg=client][data-type=ClientHello]")
    p.wait_for("document.getElementById('explain').textContent.includes('ClientHello')"
               " && document.getElementById('explain').textContent.length > 60",
               "clicking the ClientHello showed no explanation")
    versions = p.eval("[...document.querySelectorAll('#pane-tls .leg table.kv td')]"
                      ".map(e => e.textContent)")
    assert versions.count("TLSv1.3") == 2, versions
    web.shot("tls")
    # Wire: records with their hex beside the plaintext they carried.
    web.tab("wire")
    kinds = p.wait_for("(() => { const r = [...document.querySelectorAll('#wire-table tr')]"
                       ".slice(1).map(e => e.querySelector('.kind').textContent);"
                       " return r.length ? r : null; })()", "the Wire tab shows no records")
    assert "Handshake" in kinds and "ApplicationData" in kinds, kinds
    plain = p.eval("[...document.querySelectorAll('#wire-table pre.plain')]"
                   ".map(e => e.textContent).join('\\n')")
    assert "GET /json?id=%s HTTP/1.1" % t in plain, plain[:2000]
    p.eval("[...document.querySelectorAll('#wire-table pre.plain')].find(e =>"
           " e.textContent.startsWith('GET /json')).scrollIntoView({block: 'center'})")
    web.shot("wire")
    web.tab("timing")
    p.wait_for("document.querySelectorAll('#waterfall .wf-bar').length === 6",
               "the Timing tab shows no waterfall")


def test_filter_narrows_the_list_and_a_bad_one_shows_the_caret(web):
    p = web.fresh()
    t = tag()
    for path in ("/json", "/text", "/status/404"):
        assert web.get("%s?id=%s" % (path, t)).returncode == 0
    for path in ("/json", "/text", "/status/404"):
        web.row("%s?id=%s" % (path, t))
    p.type_into("#filter", "~s 404")
    p.wait_for("(() => { const r = [...document.querySelectorAll('#viewport .row[data-id]')]"
               ".filter(r => !r.hidden); return r.length === 1 &&"
               " r[0].querySelector('.c-status').textContent === '404'; })()",
               "the filter ~s 404 did not narrow the list to the 404 flow")
    # New flows that match arrive on the filtered stream, the others do not.
    web.get("/status/404?id=%s-2" % t)
    web.get("/text?id=%s-2" % t)
    web.row("/status/404?id=%s-2" % t)
    assert not any("/text?id=%s-2" % t in r for r in web.rows_text()), web.rows_text()
    bad = "~s 404 & (~d localhost"
    status, check = web.api("/api/filter", data=bad.encode(),
                            headers={"Content-Type": "text/plain"})
    assert status == 200 and check["ok"] is False and check["pos"] >= 0, check
    p.type_into("#filter", bad)
    p.wait_for("!document.getElementById('filter-error').hidden",
               "a bad filter showed no error")
    assert p.text("#filter-message") == check["error"]
    caret = p.text("#filter-caret").split("\n")
    assert caret[0] == bad, caret
    assert caret[1] == " " * check["pos"] + "^", (caret, check)
    # The list keeps the last good filter's rows.
    assert len(web.rows_text()) == 2, web.rows_text()
    p.type_into("#filter", "")
    p.wait_for("document.getElementById('filter-error').hidden",
               "clearing the filter did not clear the error")
    web.row("/text?id=%s-2" % t)


def test_pause_buffers_and_resume_shows(web):
    p = web.fresh()
    t = tag()
    p.click("#pause")
    web.get("/json?id=" + t)
    p.wait_for("/[1-9]\\d* updates waiting/.test(document.getElementById('count').textContent)",
               "while paused, the new flow was not counted as waiting")
    assert not any(t in r for r in web.rows_text()), "a row appeared while paused"
    p.click("#pause")
    web.row("/json?id=" + t)


def test_copy_as_curl_reproduces_the_request(web):
    p = web.fresh()
    t = tag()
    body = "copy-as-curl body " + t
    r = web.get("/echo?id=" + t, "-H", "Content-Type: text/x-test", "--data-binary", body)
    assert r.stdout.decode() == body, r
    web.click_row("/echo?id=" + t)
    p.click("#act-curl")
    cmd = p.wait_for("(() => { const b = document.getElementById('curl-box');"
                     " return !b.hidden && document.getElementById('curl-text').value; })()",
                     "Copy as curl showed no command")
    assert cmd.startswith("curl "), cmd
    # Run as the user would paste it: through the proxy, trusting tlspeek's CA.
    again = subprocess.run(["sh", "-c", cmd + " -sS --max-time 20"], capture_output=True,
                           timeout=40, env=clean_env())
    assert again.returncode == 0, (cmd, again.stderr)
    # /echo answers with the body it received: the upstream saw the request again.
    assert again.stdout.decode() == body, (cmd, again.stdout)
    p.wait_for("[...document.querySelectorAll('#viewport .row[data-id]')].filter(r =>"
               " !r.hidden && r.textContent.includes(%s)).length === 2" % json.dumps("/echo?id=" + t),
               "the reproduced request did not show as a second flow")
    # The HAR of every kept flow holds both.
    n = p.eval("fetch(document.getElementById('har-all').href).then(r => r.json())"
               ".then(h => h.log.entries.filter(e => e.request.url.includes(%s)).length)"
               % json.dumps(t))
    assert n == 2, n


def test_resend_sends_an_edited_request(web):
    p = web.fresh()
    t = tag()
    assert web.get("/json?id=" + t).returncode == 0
    web.click_row("/json?id=" + t)
    p.click("#act-resend")
    p.wait_for("!document.getElementById('resend-box').hidden", "Resend opened no form")
    p.type_into("#resend-url", web.origin("/text?id=%s-resent" % t), submit=False)
    p.click("#resend-send")
    cells = web.row("/text?id=%s-resent" % t, "r.dataset.state === 'done'")
    assert cells["status"] == "200" and cells["type"] == "text/plain", cells


def test_api_needs_the_token(web):
    status, body = web.api("/api/flows", token=False)
    assert status == 403 and body == {"error": "missing or wrong token"}, (status, body)
    status, body = web.api("/api/info?token=" + "0" * 32, token=False)
    assert status == 403, (status, body)
    status, _ = web.api("/api/info")
    assert status == 200
    # A page of another site that a DNS rebinding points at 127.0.0.1 sends its own
    # Host: refused even with the token.
    status, body = web.api("/api/info", headers={"Host": "rebind.example:%d" % web.port})
    assert status == 403 and body == {"error": "Host not allowed"}, (status, body)
    # The page itself carries no flow data and needs no token; it is served
    # with a Content-Security-Policy that forbids inline script.
    with urllib.request.urlopen(web.base + "/", timeout=10) as r:
        assert r.status == 200
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp


def test_dropped_flows_are_noted(web, pki):
    """With --web-flows 3, the page keeps three rows and says how many went."""
    proxy = Proxy(pki, ["--web", "127.0.0.1:%d" % free_port(), "--web-flows", "3"])
    page = web.browser.new_page()
    try:
        url, _, _ = wait_start_line(proxy.stderr)
        page.goto(url)
        page.wait_for("document.getElementById('live').classList.contains('on')",
                      "the page did not connect to the event stream")
        t = tag()
        for i in range(5):
            r = curl("-x", proxy.url, "--cacert", pki.proxy_ca, web.origin("/text?id=%s-%d" % (t, i)))
            assert r.returncode == 0, r.stderr
        page.wait_for("document.querySelectorAll('#viewport .row[data-id]:not([hidden])').length"
                      " === 3 && document.body.textContent.includes(%s)" % json.dumps(t + "-4"),
                      "the list did not end with the last 3 flows")
        note = page.wait_for("(() => { const n = document.getElementById('dropped-note');"
                             " return !n.hidden && n.textContent; })()",
                             "no note that older flows were dropped")
        assert note.startswith("2 older flows were dropped"), note
        paths = page.eval("[...document.querySelectorAll('#viewport .row[data-id]:not([hidden])"
                          " .c-path')].map(e => e.textContent)")
        assert paths == ["/text?id=%s-%d" % (t, i) for i in (2, 3, 4)], paths
        assert not page.problems(), page.problems()
    finally:
        page.conn.close()
        assert proxy.stop() in (0, -9), proxy.stderr()[-3000:]


def test_file_mode_shows_a_transcript(web, pki, tmp_path):
    """tlspeek web FILE.jsonl: the same page, no live dot, no resend, and
    what the transcript does not hold said so."""
    jsonl = str(tmp_path / "t.jsonl")
    proxy = Proxy(pki, ["--jsonl", jsonl])
    t = tag()
    for path in ("/json", "/gzip"):
        r = curl("-x", proxy.url, "--cacert", pki.proxy_ca, web.origin("%s?id=%s" % (path, t)))
        assert r.returncode == 0, r.stderr
    assert proxy.stop() == 0
    err_path = str(tmp_path / "web.stderr")
    with open(err_path, "wb") as err:
        server = subprocess.Popen([BIN, "web", "--web",
                                   "127.0.0.1:%d" % free_port(), jsonl],
                                  stdout=subprocess.DEVNULL, stderr=err)
    page = web.browser.new_page()
    try:
        url, _, _ = wait_start_line(lambda: open(err_path).read())
        page.goto(url)
        page.wait_for("document.querySelectorAll('#viewport .row[data-id]:not([hidden])').length"
                      " === 2", "the transcript's 2 flows are not listed")
        assert page.eval("document.getElementById('live').offsetParent === null"), \
            "file mode shows a live dot"
        assert "transcript" in page.text("#source"), page.text("#source")
        rid = page.eval("[...document.querySelectorAll('#viewport .row[data-id]')].find(r =>"
                        " r.textContent.includes('/gzip')).dataset.id")
        page.click("#viewport .row[data-id='%s']" % rid)
        page.wait_for("document.getElementById('detail-title').textContent.includes('/gzip')",
                      "clicking a transcript's flow showed no detail")
        assert page.eval("document.getElementById('act-resend').disabled"), "resend is enabled"
        page.click(".tab[data-tab=body]")
        page.wait_for("(document.querySelector('#pane-body pre.code') || {}).textContent === %s"
                      % json.dumps(upstream_server.TEXT.decode()),
                      "the transcript's gzip body is not shown decoded")
        page.click(".tab[data-tab=tls]")
        page.wait_for("document.getElementById('pane-tls').textContent"
                      ".includes('not recorded in this transcript')",
                      "the TLS tab does not say the handshakes were not recorded")
        assert "TLSv1.3" in page.text("#pane-tls"), page.text("#pane-tls")
        page.click(".tab[data-tab=wire]")
        page.wait_for("document.getElementById('pane-wire').textContent"
                      ".includes('not recorded in this transcript')",
                      "the Wire tab does not say the records were not recorded")
        assert not [p for p in page.problems() if "favicon.ico" not in p], page.problems()
    finally:
        page.conn.close()
        server.terminate()
        server.wait(timeout=15)


def test_thousands_of_rows_keep_a_small_dom(web):
    """The list is virtualised: with 10,000 flows only the rows in view (and a
    few around them) are elements; scrolling to the end shows the last flow."""
    p = web.fresh()
    t = tag()
    n = 10000
    r = web.get("/empty?id=%s-[1-%d]" % (t, n), "-o", "/dev/null", timeout=300)
    assert r.returncode == 0, r.stderr
    p.wait_for("document.getElementById('count').textContent.startsWith('%d flows')" % n,
               lambda: "the list does not count %d flows: %r" % (n, p.text("#count")), timeout=60)
    rows = p.eval("document.querySelectorAll('#viewport .row').length")
    assert rows < 100, "%d row elements for %d flows: the list is not virtualised" % (rows, n)
    for top, path in (("v.scrollHeight", "/empty?id=%s-%d" % (t, n)), ("0", "/empty?id=%s-1" % t)):
        # Scrolls (again at each poll: rows may still be arriving) and looks for the row.
        p.wait_for("(() => { const v = document.getElementById('viewport'); v.scrollTop = %s;"
                   " return [...v.querySelectorAll('.row[data-id]:not([hidden]) .c-path')]"
                   ".some(e => e.textContent === %s); })()" % (top, json.dumps(path)),
                   lambda: "scrolling to %s does not show its row; rows: %s" % (
                       path, web.rows_text()[:3]))
    assert p.eval("document.querySelectorAll('#viewport .row').length") < 100
