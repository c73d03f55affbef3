"""The pipeline subprocess: start it, read its JSON progress lines without blocking, kill its whole tree.

The heavy work (torch, the networks) runs in a separate Python (``PythonSlicer`` inside Slicer), so
Slicer stays responsive and keeps no GPU memory, and cancelling is killing a process group. Output is
read by two threads into a queue; :meth:`PipelineProcess.poll` hands out what arrived so far, so a
GUI timer or a blocking loop can drive the same object.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class ProcessEvent:
    """One line of the subprocess: a progress report (``fraction`` set) or a log line."""

    kind: str  # "progress", "log" (stdout) or "error" (stderr)
    message: str
    fraction: float | None = None


def parse_line(line: str, stream: str) -> ProcessEvent:
    """A stdout JSON object with "progress" is a progress event; anything else is a log line."""
    text = line.rstrip("\r\n")
    if stream == "stdout" and text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("progress"), (int, float)):
            fraction = min(max(float(data["progress"]), 0.0), 1.0)
            return ProcessEvent("progress", str(data.get("message", "")), fraction)
    return ProcessEvent("log" if stream == "stdout" else "error", text)


class PipelineProcess:
    """A running command whose process tree can be killed; output as :class:`ProcessEvent`."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None):
        self.command = [str(c) for c in command]
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # own process group: cancel kills the tree, not Slicer
        self._events: queue.Queue[ProcessEvent] = queue.Queue()
        self.stderr_lines: list[str] = []
        self.cancelled = False
        self._proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **kwargs,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self._proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self._proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self, stream, name: str) -> None:
        for line in iter(stream.readline, ""):
            event = parse_line(line, name)
            if name == "stderr":
                self.stderr_lines.append(event.message)
            self._events.put(event)
        stream.close()

    def poll(self) -> list[ProcessEvent]:
        """The events that arrived since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    @property
    def returncode(self) -> int | None:
        """None while running; after exit, only once both output streams are drained."""
        code = self._proc.poll()
        if code is None or any(t.is_alive() for t in self._readers):
            return None
        return code

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self._proc.returncode

    def cancel(self, grace_seconds: float = 3.0) -> None:
        """Terminate the whole process tree (politely first, then by force) and wait for it."""
        self.cancelled = True
        if self._proc.poll() is not None:
            return
        _kill_tree(self._proc, grace_seconds)
        try:
            self.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def _kill_tree(proc: subprocess.Popen, grace_seconds: float) -> None:
    if sys.platform == "win32":
        try:
            import psutil  # Slicer ships it on most builds; taskkill is the fallback

            parent = psutil.Process(proc.pid)
            for child in parent.children(recursive=True):
                child.kill()
            parent.kill()
        except Exception:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False)
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
