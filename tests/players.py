"""Real players reading facecam's outputs: headless Chromium and GStreamer's discoverer.

Both are found on the machine (Debian: ``chromium``; ``python3-gi``, ``gir1.2-gst-plugins-base-1.0``
and the GStreamer plugins); ``.ci/run`` installs them. Each is run once for a whole list of
files, as a subprocess, and reports what it read per file.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from functools import cache, partial
from pathlib import Path

#: the Python that can import Debian's GStreamer bindings (the project's own Python cannot)
SYSTEM_PYTHON = "/usr/bin/python3"
#: what the test server says each file is; the others (.mp4, .m4v) are MP4
MIME = {".mkv": "video/x-matroska", ".mov": "video/quicktime"}
#: GStreamer elements the outputs need: the three demuxers, H.264/AAC parsing and decoding
GST_ELEMENTS = ("qtdemux", "matroskademux", "avidemux", "h264parse", "avdec_h264", "aacparse", "avdec_aac")

DISCOVER = r"""
import json, sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils
Gst.init(None)
if sys.argv[1] == "--missing":
    print(json.dumps([n for n in sys.argv[2:] if Gst.ElementFactory.find(n) is None]))
    sys.exit(0)
discoverer = GstPbutils.Discoverer.new(20 * Gst.SECOND)
report = {}
for path in sys.argv[1:]:
    try:
        info = discoverer.discover_uri(Gst.filename_to_uri(path))
    except Exception as exc:  # GLib.Error: the file did not open at all
        report[path] = {"result": "ERROR", "error": str(exc)}
        continue
    videos = info.get_video_streams()
    report[path] = {
        "result": info.get_result().value_nick,
        "duration": info.get_duration() / Gst.SECOND,
        "video": [[v.get_width(), v.get_height()] for v in videos],
        "audio": len(info.get_audio_streams()),
    }
print(json.dumps(report))
"""

# For each file: read it as a stream (no byte ranges: the duration must come from what arrives
# first, as in a chat app or from a server without ranges, where fragmented MP4s showed ~2 s),
# then with byte ranges seek to 0.4 s before the end and play: the presented frames' times
# (requestVideoFrameCallback) show that the last frame decodes.
PAGE = """<!doctype html><html><body><script>
function load(url, onData) {
  return new Promise(resolve => {
    const v = document.createElement('video');
    const out = {};
    const finish = () => { clearTimeout(timer); v.removeAttribute('src'); v.load(); v.remove(); resolve(out); };
    const timer = setTimeout(() => { out.error = 'timeout'; finish(); }, 15000);
    v.muted = true;
    v.onerror = () => { out.error = 'media error: ' + (v.error ? v.error.message : '?'); finish(); };
    v.addEventListener('loadeddata', () => {
      Object.assign(out, {duration: v.duration, width: v.videoWidth, height: v.videoHeight});
      onData(v, out, finish);
    }, {once: true});
    v.src = url;
    document.body.appendChild(v);
  });
}
function playEnd(v, out, finish) {
  out.frames = [];
  const frame = (now, meta) => { out.frames.push(meta.mediaTime); v.requestVideoFrameCallback(frame); };
  v.addEventListener('ended', () => { out.ended = v.currentTime; setTimeout(finish, 100); });
  // Half speed: on a busy machine a frame shown late may be skipped, and the last one must not be.
  v.addEventListener('seeked', () => {
    v.requestVideoFrameCallback(frame);
    v.playbackRate = 0.5;
    v.play();
  }, {once: true});
  v.currentTime = Math.max(0, v.duration - 0.4);
}
(async () => {
  const report = {};
  for (const name of new URLSearchParams(location.search).getAll('f')) {
    const stream = await load('/stream/' + name, (v, out, finish) => finish());
    const seek = await load('/seek/' + name, playEnd);
    report[name] = {stream, seek};
  }
  await fetch('/report', {method: 'POST', body: JSON.stringify(report)});
})();
</script></body></html>"""


@cache
def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


@cache
def discoverer_missing() -> str | None:
    """Why GStreamer's discoverer cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (GStreamer's Python bindings come with Debian's python3-gi)"
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", DISCOVER, "--missing", *GST_ELEMENTS], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's discoverer does not load ({last}); apt-get install python3-gi gir1.2-gst-plugins-base-1.0"
    missing = json.loads(done.stdout)
    if missing:
        return f"GStreamer elements missing: {', '.join(missing)} (gstreamer1.0-plugins-good/-bad, gstreamer1.0-libav)"
    return None


def discover(paths: list[Path]) -> dict[str, dict]:
    """What GStreamer's discoverer reads from each file, by file name."""
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", DISCOVER, *map(str, paths)], capture_output=True, text=True, timeout=60 + 20 * len(paths)
    )
    assert done.returncode == 0, done.stderr
    return {Path(path).name: info for path, info in json.loads(done.stdout).items()}


class _MediaHandler(http.server.SimpleHTTPRequestHandler):
    """The page, files under /stream/ (whole, no ranges) and /seek/ (byte ranges), and the report."""

    report: dict | None = None

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).report = json.loads(body)
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        kind, _, name = self.path.lstrip("/").partition("/")
        path = Path(self.directory) / name.split("?")[0]
        if kind not in ("stream", "seek") or not path.is_file():
            return super().do_GET()
        size = path.stat().st_size
        start, end = 0, size - 1
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if kind == "seek" and wanted:
            start, end = int(wanted[1]), min(int(wanted[2] or size - 1), size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", MIME.get(path.suffix, "video/mp4"))
        self.send_header("Content-Length", str(end - start + 1))
        if kind == "seek":
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        try:
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0 and (chunk := f.read(min(left, 1 << 16))):
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser had what it needed and hung up


def browse(folder: Path, names: list[str], timeout: float = 120) -> dict[str, dict]:
    """What headless Chromium reads from each file of ``folder``, by name (see PAGE)."""
    (folder / "page.html").write_text(PAGE)
    handler = type("Handler", (_MediaHandler,), {"report": None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/page.html?" + "&".join(f"f={n}" for n in names)
    flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
    flags += " --disable-component-update --disable-sync --disable-dev-shm-usage --mute-audio"
    with tempfile.TemporaryDirectory(prefix="facecam-chromium-") as profile:
        argv = [chromium(), *flags.split(), f"--user-data-dir={profile}", url]
        browser = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        try:
            while handler.report is None and browser.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            browser.terminate()
            try:
                _, log = browser.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                browser.kill()
                _, log = browser.communicate()
            server.shutdown()
            server.server_close()
    assert handler.report is not None, f"chromium reported nothing in {timeout} s: {log[-2000:]}"
    return handler.report


def top_level_boxes(path) -> list[str]:
    """The top-level MP4 box types of ``path``, in file order."""
    boxes, data = [], path.read_bytes()
    at = 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        size = int.from_bytes(data[at + 8 : at + 16], "big") if size == 1 else size
        boxes.append(data[at + 4 : at + 8].decode("latin-1"))
        at += size if size >= 8 else len(data)
    return boxes


def movie_seconds(path) -> float:
    """The duration in the moov's mvhd: what a player that does not walk the fragments shows."""
    data = path.read_bytes()
    mvhd = data.index(b"mvhd") + 4
    version = data[mvhd]
    if version == 1:
        scale, duration = data[mvhd + 20 : mvhd + 24], data[mvhd + 24 : mvhd + 32]
    else:
        scale, duration = data[mvhd + 12 : mvhd + 16], data[mvhd + 16 : mvhd + 20]
    return int.from_bytes(duration, "big") / int.from_bytes(scale, "big")
