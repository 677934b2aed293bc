"""browser.py: Debian's headless Chromium driven over the DevTools protocol on a pipe, with a client certificate.

No npm and no websocket: Chromium started with --remote-debugging-pipe reads protocol messages from fd 3
and writes them to fd 4, each a JSON object ended by a NUL byte. The operator's identity lives in the
NSS database of a temporary HOME ($HOME/.pki/nssdb, made with certutil and pk12util from libnss3-tools),
which also trusts the fleet CA. Chromium would ask which certificate to present, and a headless browser
cannot answer, so the profile's own preferences carry the same setting as the AutoSelectCertificateForUrls
policy (content setting "auto_select_certificate": for this origin, the certificate whose subject and
issuer match): no file under /etc/chromium is written, and nothing outlives the temporary directories.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = os.environ.get("RINGIL_CHROMIUM", "/usr/bin/chromium")
# The flags this machine's Chromium needs (no sandbox as root, no GPU, no background network traffic).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--password-store=basic", "--use-mock-keychain", "--window-size=1366,900", "--lang=en-US"]


def available():
    return shutil.which(CHROMIUM) is not None and shutil.which("certutil") is not None and \
        shutil.which("pk12util") is not None


def make_nssdb(home: Path, ca_pem: Path, cert_pem: Path = None, key_pem: Path = None, nickname="operator"):
    """A fresh NSS database in home/.pki/nssdb trusting ca_pem for TLS servers, holding the client
    identity (cert_pem, key_pem) when given: what a browser user gets by importing the fleet CA and the
    operator's PKCS#12 file."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    sql = f"sql:{db}"
    subprocess.run(["certutil", "-N", "-d", sql, "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", sql, "-n", "ringil fleet CA", "-t", "C,,", "-i", str(ca_pem)],
                   check=True, capture_output=True)
    if cert_pem:
        p12 = home / "operator.p12"
        subprocess.run(["openssl", "pkcs12", "-export", "-in", str(cert_pem), "-inkey", str(key_pem),
                        "-name", nickname, "-out", str(p12), "-passout", "pass:import"], check=True,
                       capture_output=True)
        subprocess.run(["pk12util", "-i", str(p12), "-d", sql, "-W", "import"], check=True, capture_output=True)
        p12.unlink()
    return db


class BrowserError(Exception):
    pass


class Browser:
    """One Chromium process with one profile. auto_select: [(origin, subject_cn, issuer_cn)] for which the
    client certificate is chosen without asking."""

    def __init__(self, home: Path, profile: Path, auto_select=(), timeout=30):
        self.home, self.profile, self.timeout = Path(home), Path(profile), timeout
        (self.profile / "Default").mkdir(parents=True, exist_ok=True)
        exceptions = {}
        for origin, subject_cn, issuer_cn in auto_select:
            exceptions[f"{origin},*"] = {"setting": {"filters": [
                {"SUBJECT": {"CN": subject_cn}, "ISSUER": {"CN": issuer_cn}}]}}
        prefs = {"profile": {"content_settings": {"exceptions": {"auto_select_certificate": exceptions}}}}
        (self.profile / "Default" / "Preferences").write_text(json.dumps(prefs))
        env = dict(os.environ, HOME=str(self.home))
        env.pop("DISPLAY", None)
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.log = open(self.profile / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events = []
        self.send("Browser.getVersion")

    # ---- the protocol ----

    def _recv(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self._r], [], [], left)
            if not r:
                return None
            data = os.read(self._r, 1 << 20)
            if not data:
                raise BrowserError(f"Chromium exited ({self.proc.poll()}); see {self.profile / 'chromium.log'}")
            self._buf += data
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=None):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        want, deadline = self._id, time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._recv(deadline)
            if m is None:
                raise BrowserError(f"no answer to {method} within {timeout or self.timeout} s")
            if m.get("id") == want:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name, session=None, timeout=None, pred=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == name and (session is None or e.get("sessionId") == session) and \
                        (pred is None or pred(e.get("params", {}))):
                    return self.events.pop(i)
            m = self._recv(deadline)
            if m is None:
                raise BrowserError(f"no {name} within {timeout or self.timeout} s")
            self.events.append(m)

    def drain(self, seconds=0.0):
        """Take in the events that arrive within seconds."""
        deadline = time.monotonic() + seconds
        while True:
            m = self._recv(deadline)
            if m is None:
                return
            self.events.append(m)

    def new_page(self):
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, target, session)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()


# Installed in every document before its own scripts (not subject to the page's CSP): counts
# dialogs and CSP violations, so a test sees markup that was injected and then blocked.
WATCH = """
window.__ringil = {csp: [], alerts: 0};
document.addEventListener('securitypolicyviolation', function (e) {
  window.__ringil.csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || ''));
});
"""


class Page:
    def __init__(self, browser, target, session):
        self.b, self.target, self.session = browser, target, session
        self.dialogs = []
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})

    def send(self, method, params=None, timeout=None):
        return self.b.send(method, params, session=self.session, timeout=timeout)

    def _collect_dialogs(self):
        """Dismiss and record every JavaScript dialog (alert, confirm, prompt) the page opened."""
        keep = []
        for e in self.b.events:
            if e.get("method") == "Page.javascriptDialogOpening" and e.get("sessionId") == self.session:
                self.dialogs.append(e["params"])
                self.send("Page.handleJavaScriptDialog", {"accept": False})
            else:
                keep.append(e)
        self.b.events = keep

    def _wait_load(self, timeout=None):
        self.b.wait_event("Page.loadEventFired", self.session, timeout=timeout)
        self._collect_dialogs()

    def goto(self, url, timeout=None):
        """Navigate and wait for the load event; returns the network error text ("" on success)."""
        self.b.events = [e for e in self.b.events if not (e.get("sessionId") == self.session and
                                                           e.get("method") == "Page.loadEventFired")]
        r = self.send("Page.navigate", {"url": url}, timeout=timeout)
        self._wait_load(timeout)
        return r.get("errorText", "")

    def eval(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression}: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        self._collect_dialogs()
        return r["result"].get("value")

    def text(self, selector):
        return self.eval(f"(function(){{var e=document.querySelector({json.dumps(selector)});"
                         f"return e?e.textContent:null}})()")

    def wait_for(self, expression, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(expression):
                return True
            self.b.drain(0.1)
        raise BrowserError(f"not true within {timeout} s: {expression}")

    def click(self, selector, navigates=True, timeout=None):
        """A real mouse click in the middle of the element (as a user's), then the next load if it navigates."""
        box = self.eval(f"(function(){{var e=document.querySelector({json.dumps(selector)});if(!e)return null;"
                        f"e.scrollIntoView({{block:'center'}});var r=e.getBoundingClientRect();"
                        f"return [r.left+r.width/2,r.top+r.height/2]}})()")
        if not box:
            raise BrowserError(f"nothing matches {selector}")
        self.b.events = [e for e in self.b.events if not (e.get("sessionId") == self.session and
                                                           e.get("method") == "Page.loadEventFired")]
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 0 if kind == "mouseMoved" else 1})
        if navigates:
            self._wait_load(timeout)

    def screenshot(self, path: Path, full_page=True):
        params = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return path

    def watch(self):
        """What the page's watcher saw: CSP violations."""
        return self.eval("window.__ringil")
