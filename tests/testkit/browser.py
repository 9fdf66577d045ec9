"""Headless Chromium over the DevTools protocol (pipe transport): open a page,
collect its console errors, take a full-page screenshot, measure its pixels.

Owns: `open_page(path) -> PageCheck` for the report's browser tests and for
looking at reports by hand (`python tests/testkit/browser.py PAGE.html OUT.png`).
A test fixture, not part of the installed packages.

Invariants:
- Talks to the browser over --remote-debugging-pipe (fd 3 in, fd 4 out;
  NUL-terminated JSON), so no port is opened and no websocket library needed.
- The browser gets a fresh profile, no network features, and is always
  ended by PID (with its child processes) before `open_page` returns.
- Pixel variety is measured on the screenshot's own PNG bytes, decoded by
  the browser into a canvas (no image library needed in Python).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]


class BrowserError(Exception):
    """The browser could not be started or did not answer in time."""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    png: bytes = b""
    width: int = 0
    height: int = 0
    colours: int = 0  # distinct colours among sampled pixels
    non_white: float = 0.0  # share of sampled pixels that are not (near) white
    tooltip: str = ""  # the hover text shown after moving the mouse over a shape
    seconds: float = 0.0
    tiles: list[bytes] = field(default_factory=list)  # the page in slices of `tile` px (when asked)


class _Pipe:
    def __init__(self, proc: subprocess.Popen, out_fd: int, in_fd: int) -> None:
        self.proc, self.out_fd, self.in_fd = proc, out_fd, in_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.out_fd, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == want:
                    if "error" in m:
                        raise BrowserError(f"{method}: {m['error'].get('message')}")
                    return m.get("result", {})
                self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method:
                    return self.events.pop(i)
            self.events.extend(self._read(deadline))

    def _read(self, deadline: float) -> list[dict]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self.in_fd], [], [], left)
            if ready:
                chunk = os.read(self.in_fd, 1 << 20)
                if not chunk:
                    raise BrowserError(f"the browser exited (code {self.proc.poll()})")
                self.buf += chunk
        *whole, self.buf = self.buf.split(b"\0")
        return [json.loads(w) for w in whole if w]


def _end(proc: subprocess.Popen) -> None:
    """Ends the browser and every process it started, by PID."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:  # the browser already gone: nothing more to find
        kids = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for k in kids:
        with contextlib.suppress(psutil.Error):  # already gone
            k.kill()


_MEASURE = """
(async function(b64){
  const img = new Image();
  img.src = 'data:image/png;base64,' + b64;
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set(); let nonWhite = 0, n = 0;
  const step = Math.max(1, Math.floor(c.width * c.height / 200000));
  for (let p = 0; p < c.width * c.height; p += step) {
    const i = p * 4, r = d[i], gg = d[i+1], bb = d[i+2];
    seen.add((r << 16) | (gg << 8) | bb); n++;
    if (r < 240 || gg < 240 || bb < 240) nonWhite++;
  }
  return JSON.stringify({w: c.width, h: c.height, colours: seen.size, nonWhite: nonWhite / n});
})
"""


def open_page(
    page: Path,
    *,
    width: int = 1280,
    max_height: int = 16000,
    timeout: float = 60.0,
    hover: str | None = "[data-tip]",
    tile: int = 0,
) -> PageCheck:
    """Loads page in headless Chromium; returns its errors, a full-page screenshot and pixel stats."""
    exe = find_chromium()
    if exe is None:
        raise BrowserError("no chromium on PATH")
    began = time.monotonic()
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    to_r, to_w = os.pipe()  # we write commands, the browser reads them on fd 3
    from_r, from_w = os.pipe()  # the browser writes on fd 4, we read

    def fds() -> None:  # runs in the child before exec: put the pipe ends on fds 3 and 4
        a, b = (
            os.dup(to_r),
            os.dup(from_w),
        )  # above every fd in use, so 3 and 4 are free to overwrite
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=fds,  # noqa: PLW1509 - only dup2 calls, and the tests start it from one thread
        close_fds=False,
        # Chromium puts its singleton socket in $TMPDIR/org.chromium.Chromium.*; inside the
        # profile it goes away with the profile instead of piling up in /tmp.
        env={**os.environ, "TMPDIR": profile},
    )
    os.close(to_r)
    os.close(from_w)
    check = PageCheck()
    try:
        cdp = _Pipe(proc, to_w, from_r)
        target = cdp.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)[
            "targetId"
        ]
        sess = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Runtime.enable", "Log.enable", "Page.enable"):
            cdp.send(m, session=sess)
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=sess,
        )
        cdp.send("Page.navigate", {"url": Path(page).resolve().as_uri()}, session=sess)
        cdp.wait_event("Page.loadEventFired", timeout=timeout)
        if hover:
            box = cdp.send(
                "Runtime.evaluate",
                {
                    "expression": (
                        f"(function(){{var e=document.querySelector({json.dumps(hover)});if(!e)return '';"
                        "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
                        "return JSON.stringify([r.left+Math.min(r.width/2,2),r.top+r.height/2]);})()"
                    ),
                    "returnByValue": True,
                },
                session=sess,
            )["result"].get("value")
            if box:
                x, y = json.loads(box)
                cdp.send(
                    "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=sess
                )
                check.tooltip = (
                    cdp.send(
                        "Runtime.evaluate",
                        {
                            "expression": (
                                "(function(){var t=document.getElementById('tip');"
                                "return t&&t.style.display==='block'?t.textContent:'';})()"
                            ),
                            "returnByValue": True,
                        },
                        session=sess,
                    )["result"].get("value")
                    or ""
                )
                cdp.send(
                    "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 1, "y": 1}, session=sess
                )
                cdp.send("Runtime.evaluate", {"expression": "window.scrollTo(0,0)"}, session=sess)
        height = cdp.send(
            "Runtime.evaluate",
            {"expression": "document.documentElement.scrollHeight", "returnByValue": True},
            session=sess,
        )["result"]["value"]
        height = int(min(max_height, height))
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=sess,
        )
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=sess, timeout=timeout)
        check.png = base64.b64decode(shot["data"])
        for top in range(0, height, tile) if tile else ():
            part = cdp.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "clip": {
                        "x": 0,
                        "y": top,
                        "width": width,
                        "height": min(tile, height - top),
                        "scale": 1,
                    },
                },
                session=sess,
                timeout=timeout,
            )
            check.tiles.append(base64.b64decode(part["data"]))
        stats = cdp.send(
            "Runtime.evaluate",
            {
                "expression": f"({_MEASURE})({json.dumps(shot['data'])})",
                "awaitPromise": True,
                "returnByValue": True,
            },
            session=sess,
            timeout=timeout,
        )["result"].get("value")
        s = json.loads(stats)
        check.width, check.height, check.colours, check.non_white = (
            s["w"],
            s["h"],
            s["colours"],
            s["nonWhite"],
        )
        for m in cdp.events:
            method, p = m.get("method"), m.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                check.errors.append(
                    f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}"
                )
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                check.errors.append(
                    "console.error: "
                    + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                check.errors.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
        try:
            cdp.send("Browser.close", timeout=5)
        except BrowserError:
            pass
    finally:
        os.close(to_w)
        os.close(from_r)
        _end(proc)
        shutil.rmtree(profile, ignore_errors=True)
    check.seconds = time.monotonic() - began
    return check


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/testkit/browser.py PAGE.html OUT.png", file=sys.stderr)
        return 2
    c = open_page(Path(argv[0]), tile=1000)
    out = Path(argv[1])
    out.write_bytes(c.png)
    for i, t in enumerate(c.tiles):  # slices a person can read at full size
        out.with_name(f"{out.stem}-{i + 1}{out.suffix}").write_bytes(t)
    print(
        json.dumps(
            {
                "errors": c.errors,
                "size": [c.width, c.height],
                "colours": c.colours,
                "non_white": round(c.non_white, 3),
                "tooltip": c.tooltip,
                "seconds": round(c.seconds, 2),
            }
        )
    )
    return 1 if c.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
