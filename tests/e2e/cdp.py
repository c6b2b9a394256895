"""A small driver for headless Chromium over the DevTools protocol (CDP).

    with Browser() as b:
        page = b.new_page()
        page.goto("http://127.0.0.1:8081/?token=...")
        page.wait_for("document.querySelectorAll('.row[data-id]').length > 0",
                      "no flow row appeared")
        page.screenshot("list.png")

Chromium is Debian's `chromium`, started headless with a fresh profile in a
temporary folder and `--remote-debugging-port=0`; the port it chose is read
from the profile's DevToolsActivePort file. Messages go over a WebSocket
(python3-websocket). Every wait is a bounded poll of a DOM condition that
fails with the message given, never a sleep the test depends on.
"""
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time

import websocket  # python3-websocket

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]


class CdpError(AssertionError):
    pass


class Connection:
    """One WebSocket to a DevTools endpoint; call() sends a command and
    returns its result, keeping the events that arrived meanwhile."""

    def __init__(self, url, timeout=30):
        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events = []

    def call(self, method, timeout=30, **params):
        mid = next(self.ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.time()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CdpError("%s failed: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise CdpError("%s: no answer from Chromium within %d s" % (method, timeout))

    def close(self):
        try:
            self.ws.close()
        except OSError:
            pass


class Page:
    """A browser tab."""

    def __init__(self, conn):
        self.conn = conn
        conn.call("Page.enable")
        conn.call("Runtime.enable")
        conn.call("Log.enable")

    def goto(self, url, timeout=20):
        self.conn.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", "page %s did not load" % url,
                      timeout=timeout)

    def bring_to_front(self):
        """Makes it the active tab: Chromium runs requestAnimationFrame
        callbacks only for the tab in front."""
        self.conn.call("Page.bringToFront")

    def eval(self, expr):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.conn.call("Runtime.evaluate", expression=expr, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CdpError("JavaScript error in %r: %s" % (expr[:200], text))
        return r["result"].get("value")

    def wait_for(self, expr, message, timeout=15.0, interval=0.1):
        """Polls `expr` until it is truthy and returns its value; fails with
        `message` (a string, or a function called then for one) and the last
        value seen after `timeout` seconds."""
        deadline = time.time() + timeout
        value = None
        while True:
            value = self.eval(expr)
            if value:
                return value
            if time.time() >= deadline:
                raise AssertionError("%s (waited %.0f s for: %s; last value %r)"
                                     % (message() if callable(message) else message,
                                        timeout, expr, value))
            time.sleep(interval)

    def click(self, selector):
        """Clicks the first element that `selector` matches, as a user would:
        a mouse press and release at its centre (scrolled into view)."""
        box = self.eval("""(() => { const e = document.querySelector(%s);
            if (!e) return null; e.scrollIntoView({block: 'nearest'});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"""
                        % json.dumps(selector))
        if not box or box[2] == 0 or box[3] == 0:
            raise AssertionError("nothing visible to click at %s" % selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.conn.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                           button="left", clickCount=1)

    def type_into(self, selector, text, submit=True):
        """Replaces the value of an input and, with submit, presses Enter."""
        found = self.eval("(() => { const e = document.querySelector(%s); if (!e) return false;"
                          " e.focus(); e.value = ''; return true; })()" % json.dumps(selector))
        if not found:
            raise AssertionError("no input at %s" % selector)
        if text:
            self.conn.call("Input.insertText", text=text)
        if submit:
            for kind in ("keyDown", "keyUp"):
                self.conn.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                               windowsVirtualKeyCode=13, text="\r" if kind == "keyDown" else "")

    def text(self, selector):
        return self.eval("(() => { const e = document.querySelector(%s); "
                         "return e ? e.textContent : null; })()" % json.dumps(selector))

    def set_viewport(self, width, height):
        self.conn.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)

    def screenshot(self, path):
        data = self.conn.call("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def problems(self):
        """JavaScript exceptions and console errors (a Content-Security-Policy
        violation is one) seen so far, as text lines."""
        out = []
        for ev in self.conn.events:
            if ev["method"] == "Runtime.exceptionThrown":
                d = ev["params"]["exceptionDetails"]
                out.append("exception: " + (d.get("exception", {}).get("description")
                                            or d.get("text", "")))
            elif ev["method"] == "Log.entryAdded" and ev["params"]["entry"]["level"] == "error":
                e = ev["params"]["entry"]
                out.append("console %s: %s%s" % (e.get("source"), e.get("text"),
                                                  " (%s)" % e["url"] if e.get("url") else ""))
            elif (ev["method"] == "Runtime.consoleAPICalled"
                  and ev["params"]["type"] in ("error", "assert")):
                out.append("console.error: %s" % ev["params"]["args"])
        return out


class Browser:
    def __init__(self, binary="chromium", width=1280, height=860, env=None):
        self.profile = tempfile.mkdtemp(prefix="tlspeek-chromium-")
        self.proc = subprocess.Popen(
            [binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + self.profile,
                                         "--window-size=%d,%d" % (width, height), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.width, self.height = width, height
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while True:
            if os.path.exists(port_file):
                lines = open(port_file).read().split("\n")
                if len(lines) >= 2 and lines[1]:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited (%s): %s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(errors="replace")[-2000:]))
            if time.time() > deadline:
                self.close()
                raise TimeoutError("chromium did not write %s" % port_file)
            time.sleep(0.05)
        self.port = int(lines[0])
        self.browser = Connection("ws://127.0.0.1:%d%s" % (self.port, lines[1]))
        self.pages = []

    def new_page(self):
        target = self.browser.call("Target.createTarget", url="about:blank")["targetId"]
        page = Page(Connection("ws://127.0.0.1:%d/devtools/page/%s" % (self.port, target)))
        page.set_viewport(self.width, self.height)
        self.pages.append(page)
        return page

    def close(self):
        for p in getattr(self, "pages", []):
            p.conn.close()
        if getattr(self, "browser", None):
            self.browser.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
