"""The student's kernel, run by the harness: start it (optionally in a sandbox), run cells, send requests.

The kernel is an ordinary IPython kernel (``ipykernel``) started as a child process with the
command line ``prefix + [python, -m, ipykernel_launcher, -f, connection file]``: ``gradkit grade``
passes a bubblewrap prefix (:mod:`gradkit_tools.sandbox`), so the kernel runs in the submission's
sandbox while this process stays outside it. The two talk over ZeroMQ's ``ipc`` transport, Unix
sockets in the kernel's folder, the only folder both see (the sandbox has no network). Messages are
signed with a key the harness chooses; the harness decodes nothing from the kernel but JSON
(:mod:`gradkit_grader.wire`).

A request that runs past its time limit is interrupted (an ``interrupt_request`` on the control
channel: ``KeyboardInterrupt`` in the kernel); a kernel that does not answer within
:data:`GRACE_S` after that is killed, and every later request fails with :class:`KernelGone`.
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["KernelGone", "KernelTimeout", "CellResult", "KernelSession", "GRACE_S"]

#: seconds an interrupted kernel has to answer before it is killed
GRACE_S = 10.0
#: most characters of one answer from the kernel
MAX_REPLY_CHARS = 1 << 30


class KernelGone(RuntimeError):
    """The kernel died or was stopped; the message says when."""


class KernelTimeout(TimeoutError):
    """A cell or request ran past its time limit (the kernel was interrupted)."""


@dataclass
class CellResult:
    """What one executed cell produced: its error (``ename``, ``evalue``) if any, its outputs' size."""

    ename: str | None = None
    evalue: str = ""
    data: list[dict] = field(default_factory=list)


class KernelSession:
    """One kernel for one submission.

    Parameters
    ----------
    folder : path
        The kernel's working folder (its sandbox's one writable folder); the connection file and
        the sockets are made there.
    prefix : list of str
        What goes before the kernel's command line (a sandbox); empty to run it directly.
    env : dict
        The kernel's environment (inside a bubblewrap prefix, the prefix sets it instead).
    log : path, optional
        Where the kernel's own stdout and stderr go (default: where this process's go).
    preexec : callable, optional
        Run in the child before exec (resource limits).
    """

    def __init__(self, folder: Path, *, prefix: list[str] = (), env: dict[str, str] | None = None,
                 log: Path | None = None, preexec: Callable[[], None] | None = None,
                 start_timeout_s: float = 180.0):
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.folder = Path(folder).resolve()
        conn = self.folder / "kernel.json"
        ipc = self.folder / "k"
        if len(str(ipc)) > 90:  # a Unix socket path has at most 107 bytes
            raise KernelGone(f"the kernel folder's path is too long for a socket: {self.folder}")
        write_connection_file(str(conn), transport="ipc", ip=str(ipc), key=secrets.token_hex(32).encode())
        # readable by the kernel's own user (a sandbox's); nothing but that kernel sees this folder
        os.chmod(conn, 0o644)
        argv = [*prefix, sys.executable, "-m", "ipykernel_launcher", "-f", str(conn)]
        self._log = open(log, "ab") if log else None  # None: the kernel writes where this process does
        self.proc = subprocess.Popen(argv, cwd=self.folder, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(conn))
        self.client.start_channels()
        self.gone: str | None = None
        deadline = time.monotonic() + start_timeout_s
        while True:
            self._check_alive("starting")
            try:
                self.client.wait_for_ready(timeout=2)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise KernelGone(f"the kernel did not start within {start_timeout_s:g} s") from None

    # -- process ------------------------------------------------------------------------------
    def _check_alive(self, when: str) -> None:
        if self.gone:
            raise KernelGone(self.gone)
        rc = self.proc.poll()
        if rc is not None:
            sig = 128 - rc if rc > 128 else -rc  # bubblewrap exits 128 + N when the kernel died of signal N
            how = f"signal {signal.Signals(sig).name}" if 0 < sig < 65 and sig in signal.valid_signals() \
                else f"exit code {rc}"
            self.gone = f"the kernel died while {when} ({how})"
            raise KernelGone(self.gone)

    def stop(self, why: str = "the kernel was stopped") -> None:
        """Kill the kernel (its whole process group); later requests raise :class:`KernelGone`."""
        self.gone = self.gone or why
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.client.stop_channels()
        if self._log is not None:
            self._log.close()

    def interrupt(self) -> None:
        msg = self.client.session.msg("interrupt_request", content={})
        self.client.control_channel.send(msg)

    # -- execution ----------------------------------------------------------------------------
    def execute(self, code: str, *, timeout_s: float | None = None, when: str = "running a cell",
                store_history: bool = True) -> CellResult:
        """Run ``code``; return its error and the data it published. Raises :class:`KernelTimeout`
        (after interrupting) or :class:`KernelGone`."""
        self._check_alive(when)
        msg_id = self.client.execute(code, store_history=store_history, allow_stdin=False, stop_on_error=False)
        result = CellResult()
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            self._collect(msg_id, result, deadline, when)
        except KernelTimeout:
            self._recover(msg_id, when)
            raise
        except BaseException:  # the harness's own time limit (SIGALRM) or Ctrl-C: leave the kernel idle
            if not self.gone:
                self._recover(msg_id, when)
            raise
        return result

    def _collect(self, msg_id: str, result: CellResult, deadline: float | None, when: str) -> None:
        idle = replied = False
        while not (idle and replied):
            if deadline is not None and time.monotonic() > deadline:
                raise KernelTimeout(f"timeout while {when}")
            self._check_alive(when)
            got = False
            try:
                msg = self.client.get_iopub_msg(timeout=0.05)
                got = True
                if msg["parent_header"].get("msg_id") == msg_id:
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "status" and content.get("execution_state") == "idle":
                        idle = True
                    elif kind == "error":
                        result.ename, result.evalue = str(content.get("ename")), str(content.get("evalue"))
                    elif kind == "display_data":
                        result.data.append(content.get("data") or {})
            except queue.Empty:
                pass
            try:
                reply = self.client.get_shell_msg(timeout=0 if got else 0.05)
                if reply["parent_header"].get("msg_id") == msg_id:
                    replied = True
                    content = reply["content"]
                    if content.get("status") == "error" and result.ename is None:
                        result.ename, result.evalue = str(content.get("ename")), str(content.get("evalue"))
            except queue.Empty:
                pass

    def _recover(self, msg_id: str, when: str) -> None:
        """Interrupt the running request and wait for the kernel to be idle, or kill it."""
        try:
            self.interrupt()
            self._collect(msg_id, CellResult(), time.monotonic() + GRACE_S, when)
        except (KernelTimeout, KernelGone):
            self.stop(f"the kernel was stopped: it did not stop {when} when interrupted")

    def request(self, req: dict, *, timeout_s: float | None, when: str, mime: str) -> Any:
        """Send one request to the installed handler; return the parsed reply object (not yet checked)."""
        text = json.dumps(req)
        result = self.execute(f"__gradkit_rpc__({text!r})", timeout_s=timeout_s, when=when, store_history=False)
        answers = [d[mime] for d in result.data if mime in d]
        if not answers:
            if result.ename:
                return {"error": {"type": result.ename, "message": result.evalue, "traceback": ""}}
            raise KernelGone(f"the kernel gave no answer while {when} (the request handler was removed)")
        text = answers[-1]
        if not isinstance(text, str) or len(text) > MAX_REPLY_CHARS:
            raise ValueError("the kernel's answer is not text of a sensible size")
        return json.loads(text)
