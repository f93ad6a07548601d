"""One sandbox per submission: the student's kernel in a bubblewrap jail.

``gradkit grade`` runs each submission's kernel (started by the grading harness, which stays outside)
under `bubblewrap <https://github.com/containers/bubblewrap>`_ (Debian's ``bubblewrap``), the
sandbox Flatpak uses: a few hundred lines of C that set up Linux namespaces and exit, with no
daemon and nothing to configure. Inside, the submission sees

* its own PID namespace: no process of the batch (the harness, the ``gradkit grade`` parent,
  other submissions) is visible or signalable, and when the kernel's grading ends the Linux kernel
  tears the namespace down, so no daemon it started survives into the next submission;
* its own network namespace (loopback only; the harness talks to the kernel over Unix sockets in
  the kernel's folder), IPC and UTS namespaces;
* a file system built from read-only binds of the system folders and the Python installation
  (``/usr``, ``/etc``, ..., ``sys.prefix``, every folder on ``sys.path``), a fresh ``/tmp`` and
  ``/dev``, and one writable folder: the submission's own work folder. The course folder (the
  masters), the batch's output folder and every other submission are not mounted at all, and the
  grader's own packages (:data:`HIDDEN_PACKAGES`) are covered by empty folders;
* as an unprivileged host uid of its own (:func:`slot_uid`: one per parallel slot of this grading
  process) when ``gradkit grade`` runs as root (``setpriv`` drops every capability and sets
  no-new-privileges), so the process limit counts only that sandbox's processes; as the calling user
  otherwise (bubblewrap then makes a user namespace);
* resource limits (:class:`Limits`): address space, processes, file size, CPU time.

:func:`check` starts an empty sandbox once per batch. Where bubblewrap is missing or cannot
create namespaces (e.g. inside an unprivileged container without user namespaces), ``gradkit
grade`` stops with that reason; ``--sandbox none`` grades without it and flags every row.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODES", "SANDBOX_UID", "MAX_SLOTS", "SYSTEM_DIRS", "HIDDEN_PACKAGES", "Limits", "SandboxError",
           "resolve_mode", "check", "command", "preexec", "prepare_workdir", "slot_uid", "as_root", "user_processes",
           "UNSANDBOXED_FLAG"]

MODES = ("bwrap", "none")
#: first uid (and gid) the sandboxes run as when ``gradkit grade`` runs as root (:func:`slot_uid`); no account
#: needs to exist
SANDBOX_UID = 2**31
#: parallel slots (``--jobs``) of one grading process when it runs as root: the size of its block of uids
MAX_SLOTS = 256
#: blocks of :data:`MAX_SLOTS` uids above :data:`SANDBOX_UID` (the last uid, 2**31 + 2**30 - 1, is far from
#: the reserved 2**32 - 1)
_UID_BLOCKS = 2**22
#: system folders bound read-only when they exist
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: the flag every row graded with ``--sandbox none`` carries
UNSANDBOXED_FLAG = "graded without a sandbox (--sandbox none)"
_GPU_DEVICES = ("/dev/nvidia*", "/dev/dri")


class SandboxError(RuntimeError):
    """The sandbox cannot start here; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's grading child and everything it starts.

    Attributes
    ----------
    memory_mb : int or None
        Address space per process (``RLIMIT_AS``); None or 0: none.
    processes : int or None
        Processes and threads of the sandbox's user (``RLIMIT_NPROC``): a fork storm stops there.
    file_size_mb : int or None
        Largest file a process may write (``RLIMIT_FSIZE``), the log on stdout included.
    cpu_s : int or None
        CPU seconds per process (``RLIMIT_CPU``), a backstop behind the wall-clock timeout.
    """

    memory_mb: int | None = None
    processes: int | None = None
    file_size_mb: int | None = None
    cpu_s: int | None = None

    def rlimits(self) -> list[tuple[int, int]]:
        """``[(resource, value)]`` of the limits that are set."""
        out = []
        for res, value, scale in ((resource.RLIMIT_AS, self.memory_mb, 1 << 20),
                                  (resource.RLIMIT_NPROC, self.processes, 1),
                                  (resource.RLIMIT_FSIZE, self.file_size_mb, 1 << 20),
                                  (resource.RLIMIT_CPU, self.cpu_s, 1)):
            if value:
                out.append((res, int(value) * scale))
        return out


def as_root() -> bool:
    """Whether this process runs as root (the sandboxes then run as their own uids)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def resolve_mode(mode: str | None) -> str:
    """The sandbox mode asked for (default ``bwrap``), checked."""
    mode = mode or "bwrap"
    if mode not in MODES:
        raise SandboxError(f"sandbox must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


_PATHS: dict[str, list[str]] = {}


def _child_sys_path() -> list[str]:
    """``sys.path`` of a fresh interpreter like the grading child's (not this process's, which a test
    runner may have extended with the repository)."""
    if "path" not in _PATHS:
        r = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"],
                           capture_output=True, text=True, cwd="/", timeout=60, check=True)
        _PATHS["path"] = json.loads(r.stdout)
    return _PATHS["path"]


def _python_dirs() -> list[str]:
    """Folders the grading child's interpreter reads: its prefixes and every folder on its sys.path."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    dirs |= {p for p in _child_sys_path() if p and os.path.isabs(p)}
    out = []
    for d in sorted(dirs):
        d = os.path.realpath(d)
        if os.path.isdir(d) and d != "/" and not any(d.startswith(s + "/") or d == s for s in SYSTEM_DIRS):
            out.append(d)
    # a folder inside another one is bound with it
    return [d for d in out if not any(d != o and d.startswith(o + "/") for o in out)]


#: packages of this installation the sandbox must not import: the grading runtime and the tool chain
HIDDEN_PACKAGES = ("gradkit_grader", "gradkit_tools")


def _hidden_package_dirs() -> list[str]:
    """Folders of :data:`HIDDEN_PACKAGES` in this installation (covered by an empty tmpfs inside)."""
    import importlib.util

    out = []
    for name in HIDDEN_PACKAGES:
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            if os.path.isdir(loc):
                out.append(os.path.realpath(loc))
    return sorted(set(out))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def command(argv: list[str], workdir: Path, *, read_only: list[Path] = (), env: dict[str, str] | None = None,
            gpu: bool = True, slot: int = 0) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in a sandbox whose one writable folder is ``workdir``.

    ``read_only`` files or folders (e.g. the autograder zip) are bound read-only at their own paths;
    ``env`` is the whole environment inside (default: this process's, with ``HOME`` and ``TMPDIR``
    in ``workdir``); ``slot`` picks the uid (as root).
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    workdir = Path(workdir).resolve()
    binds = [d for d in SYSTEM_DIRS if os.path.exists(d)] + _python_dirs()
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    if not as_root():
        args.insert(1, "--unshare-user")
    made: set[str] = set()
    targets = [*binds, *(str(Path(p).resolve()) for p in read_only), str(workdir)]
    for target in targets:
        for parent in _parents(target):
            if parent not in made and parent not in binds and parent != "/tmp":
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
    for d in binds:
        if os.path.islink(d):  # e.g. /lib -> usr/lib on merged-/usr systems
            args += ["--symlink", os.readlink(d), d]
        else:
            args += ["--ro-bind", d, d]
    for p in read_only:
        p = str(Path(p).resolve())
        args += ["--ro-bind", p, p]
    args += ["--bind", str(workdir), str(workdir)]
    for hidden in _hidden_package_dirs():  # an empty folder over the grader's own packages
        args += ["--tmpfs", hidden]
    if gpu:
        for pattern in _GPU_DEVICES:
            for dev in sorted(glob.glob(pattern)):
                args += ["--dev-bind", dev, dev]
    env = dict(os.environ if env is None else env)
    env.setdefault("HOME", str(workdir / "home"))
    env.setdefault("TMPDIR", str(workdir / "tmp"))
    args += ["--clearenv"]
    for k, v in sorted(env.items()):
        args += ["--setenv", k, v]
    args += ["--chdir", str(workdir), "--"]
    if as_root():
        uid = slot_uid(slot)
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--no-new-privs", "--"]
    return args + list(argv)


def prepare_workdir(workdir: Path, slot: int = 0) -> None:
    """Make ``workdir`` (and everything in it) the sandbox user's (as root: :func:`slot_uid` of ``slot``)."""
    for sub in ("home", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    if as_root():
        uid = slot_uid(slot)
        for root, dirs, files in os.walk(workdir):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, uid, uid, follow_symlinks=False)


def slot_uid(slot: int) -> int:
    """The uid (and gid) the sandboxes of parallel slot ``slot`` of this process run as, when it runs as root.

    Each grading process owns a block of :data:`MAX_SLOTS` uids, drawn once from the operating system's
    entropy (:func:`secrets.randbelow`; not a seed: no grade depends on it). Linux counts the process
    limit (``RLIMIT_NPROC``), and other per-user limits, per uid across the whole host, so two gradings
    running at once on one machine -- two ``gradkit grade`` runs, Slurm tasks or Kubernetes pods on one
    node, each with its own PID namespace -- must not share a uid: a fork storm held at one sandbox's
    limit would leave another batch's kernel no thread to start with. Among k gradings at once, two
    share a block with probability about k**2 / 2**23 (10 at once: 1.2e-5).
    """
    if not 0 <= slot < MAX_SLOTS:
        raise SandboxError(f"parallel slot {slot} out of range: one grading runs at most {MAX_SLOTS} "
                           "sandboxes at once as root (--jobs)")
    return _first_uid() + slot


@functools.cache
def _first_uid() -> int:
    """This process's block of :data:`MAX_SLOTS` uids (its first uid), drawn on first use."""
    return SANDBOX_UID + secrets.randbelow(_UID_BLOCKS) * MAX_SLOTS


def preexec(limits: Limits):
    """A ``preexec_fn`` that sets ``limits`` (inherited by bubblewrap and everything inside)."""
    pairs = limits.rlimits()

    def apply() -> None:  # runs in the child between fork and exec
        for res, value in pairs:
            if res == resource.RLIMIT_NPROC and not as_root():
                value += user_processes()  # counted per user: leave the caller's own processes room
            resource.setrlimit(res, (value, value))
    return apply


def user_processes() -> int:
    """Processes and threads of the calling user (what ``RLIMIT_NPROC`` counts)."""
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return n


def check(workdir: Path) -> None:
    """Start an empty sandbox in ``workdir`` (as :func:`command` would) or raise :class:`SandboxError`."""
    prepare_workdir(workdir)
    try:
        r = subprocess.run(command([sys.executable, "-c", "import os; print(os.getpid())"], workdir),
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"bubblewrap could not start: {exc}") from None
    if r.returncode != 0 or r.stdout.strip() != "2":  # pid 1 is bubblewrap's init, 2 the command
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}, pid {r.stdout.strip()!r}"])[-1]
        raise SandboxError(f"bubblewrap could not start a sandbox here: {why}. Install bubblewrap and allow "
                           "user namespaces (sysctl kernel.unprivileged_userns_clone=1), or grade without a "
                           "sandbox with --sandbox none")
