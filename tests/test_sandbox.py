"""One sandbox per submission (gradkit_tools.sandbox): real bubblewrap, real gradings of the toy course.

Each attack is the toy solution (4 points) with one extra cell; the batch also holds the blank
notebook (0 points), graded after the attacks. Every attack must leave its own score as without
the attack (or be ungradable with a true reason), change no other row, and leave nothing behind.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _toy import SUBMISSIONS, TOY_COURSE, TOY_MASTER, released_toy
from gradkit_tools import sandbox
from gradkit_tools.grade import GradeError, grade

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (CI installs Debian's bubblewrap)")

MARK = "gradkit-sandbox-test-attack"


def _attack(name: str, code: str, dest: Path) -> Path:
    nb = json.loads((SUBMISSIONS / "toy.ipynb").read_text())
    cell = {"cell_type": "code", "execution_count": None, "id": f"attack-{name}", "metadata": {}, "outputs": [],
            "source": code}
    nb["cells"].insert(10, cell)  # after question 3's answer, before its check
    path = dest / f"{name}.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


def _attacks(out: Path, marker_dir: Path) -> dict[str, str]:
    """Attack code by name; ``out`` is the batch's output folder, which every attack knows."""
    csv_path, master = out / "final_grades.csv", TOY_MASTER
    return {
        # a double-forked daemon that outlives its cell and, for a minute, targets the next
        # submission's results and the batch's CSV (its own results it could still forge: the hidden
        # tests run in its kernel until the harness moves out of it)
        "a_daemon": f"""
import os, sys, time
DAEMON = '''
import glob, os, time
end = time.time() + 60
while time.time() < end:
    others = [p for p in glob.glob("/tmp/gradkit-grade-*/out/results.json") if not p.startswith(os.getcwd())]
    for p in others + [{str(csv_path)!r}]:
        try:
            open(p, "w").write("forged")
        except OSError:
            pass
    time.sleep(0.2)
'''
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", DAEMON, {MARK!r}])
    os._exit(0)
time.sleep(1)
""",
        # SIGKILL every process it can see, its own grading process included
        "b_kill_all": """
import os, signal
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in (os.getpid(), 1):
        try: os.kill(int(pid), signal.SIGKILL)
        except OSError: pass
""",
        # plant files in the output folder and next to the tests, read the course, reach the network
        "c_escape": f"""
import os, socket
tried = []
for p in [{str(out / "planted.txt")!r}, {str(marker_dir / "planted.txt")!r}, "/usr/planted.txt"]:
    try: open(p, "w").write("x"); tried.append(("wrote", p))
    except OSError as e: tried.append((type(e).__name__, p))
try: open({str(master)!r}).read(); tried.append(("read", "master"))
except OSError as e: tried.append((type(e).__name__, "master"))
try: socket.create_connection(("1.1.1.1", 53), timeout=2); tried.append(("connected", "net"))
except OSError as e: tried.append((type(e).__name__, "net"))
print(tried)
""",
        # a bounded fork storm: fork until the process limit refuses
        "d_fork_storm": """
import os, time
kids = []
try:
    while len(kids) < 100000:
        pid = os.fork()
        if pid == 0:
            time.sleep(3); os._exit(0)
        kids.append(pid)
except OSError as e:
    print("fork refused after", len(kids), e)
for k in kids:
    os.waitpid(k, 0)
""",
        # fill the disk: the file size limit stops the write (Python ignores SIGXFSZ: EFBIG)
        "e_disk_fill": """
chunk = b"x" * (1 << 20)
with open("big.bin", "wb") as fh:
    for _ in range(100000):
        fh.write(chunk)
""",
    }


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "final_grades.csv", newline="") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, children_before):
    base = tmp_path_factory.mktemp("sandbox")
    subs, out, marker_dir = base / "subs", base / "out", base / "markers"
    subs.mkdir(), marker_dir.mkdir()
    for name, code in _attacks(out, marker_dir).items():
        _attack(name, code, subs)
    shutil.copy(SUBMISSIONS / "blank.ipynb", subs / "z_blank.ipynb")
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    t0 = time.monotonic()
    rows = {r["file"]: r for r in grade(autograder, subs, out, jobs=2, timeout_s=120, course=TOY_COURSE,
                                        progress=False)}
    return {"rows": rows, "out": out, "markers": marker_dir, "seconds": time.monotonic() - t0,
            "csv": (out / "final_grades.csv").read_text()}


def test_attacks_score_as_without_them(attacked):
    rows = attacked["rows"]
    for name in ("a_daemon.ipynb", "c_escape.ipynb", "d_fork_storm.ipynb"):
        assert (rows[name]["grading_status"], rows[name]["total_points_earned"]) == ("graded", 4.0), rows[name]
    fill = rows["e_disk_fill.ipynb"]
    assert (fill["grading_status"], fill["total_points_earned"]) == ("graded", 4.0), fill
    assert "OSError: [Errno 27] File too large" in fill["reason"]
    # the kernel can signal only its own sandbox's processes: the harness outside grades on
    kill = rows["b_kill_all.ipynb"]
    assert (kill["grading_status"], kill["total_points_earned"]) == ("graded", 4.0), kill
    assert (rows["z_blank.ipynb"]["grading_status"], rows["z_blank.ipynb"]["total_points_earned"]) == ("graded", 0.0)


def test_nothing_escapes_the_sandbox(attacked):
    out = attacked["out"]
    assert not (out / "planted.txt").exists() and not (attacked["markers"] / "planted.txt").exists()
    assert not Path("/usr/planted.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["final_grades.csv", "logs", "results", "summary.json"]


def test_no_process_outlives_its_grading(attacked, children_before):
    time.sleep(2)  # the daemon would still be writing for a minute
    alive = [p for p in psutil.process_iter(["cmdline"]) if MARK in " ".join(p.info["cmdline"] or [])]
    assert alive == []
    assert (attacked["out"] / "final_grades.csv").read_text() == attacked["csv"]
    assert set(psutil.Process().children(recursive=True)) - children_before == set()


def test_results_are_written_as_each_submission_finishes(attacked, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(attacked["out"], out)
    (out / "final_grades.csv").unlink()
    (out / "results" / "z_blank.json").unlink()  # as if the batch had been killed before the last one
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    subs = sorted(p for p in (attacked["out"].parent / "subs").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    rows = grade(autograder, subs, out, jobs=1, timeout_s=120, course=TOY_COURSE, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert {k: v for k, v in after.items() if k != "z_blank.json"} == before  # only the missing one regraded
    assert [r["total_points_earned"] for r in rows] == [attacked["rows"][r["file"]]["total_points_earned"]
                                                        for r in rows]


def test_command_isolates_namespaces_and_mounts(tmp_path):
    argv = sandbox.command(["true"], tmp_path)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session",
                 "--clearenv"):
        assert flag in argv
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [str(tmp_path.resolve())]
    mounted = {argv[i + 2] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")}
    repo = Path(__file__).resolve().parents[1]
    assert str(repo) not in mounted and str(repo / "course") not in mounted and str(repo / "tests") not in mounted


def test_the_grader_packages_cannot_be_imported_inside(tmp_path):
    sandbox.prepare_workdir(tmp_path)
    code = ("import importlib.util, json; print(json.dumps({n: importlib.util.find_spec(n) is not None "
            "for n in ('gradkit_grader', 'gradkit_tools', 'numpy')}))")
    r = subprocess.run(sandbox.command([sys.executable, "-c", code], tmp_path), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    # an empty folder covers each: at most a namespace package without modules is found
    assert found["numpy"]
    for name in ("gradkit_grader", "gradkit_tools"):
        if found[name]:
            r2 = subprocess.run(sandbox.command([sys.executable, "-c", f"import {name}.harness"
                                                 if name == "gradkit_grader" else f"import {name}.cli"], tmp_path),
                                capture_output=True, text=True, timeout=60)
            assert r2.returncode != 0 and "ModuleNotFoundError" in r2.stderr, r2.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch and the process limit apply when grading as root")
def test_sandbox_runs_unprivileged_with_limits(tmp_path):
    sandbox.prepare_workdir(tmp_path, slot=3)
    code = ("import os, resource; print(os.getuid(), os.getpid(), resource.getrlimit(resource.RLIMIT_NPROC)[0], "
            "resource.getrlimit(resource.RLIMIT_FSIZE)[0], sum(p.isdigit() for p in os.listdir('/proc')) == 2)")
    r = subprocess.run(sandbox.command([sys.executable, "-c", code], tmp_path, slot=3), capture_output=True,
                       text=True, preexec_fn=sandbox.preexec(sandbox.Limits(processes=64, file_size_mb=2)),
                       timeout=60)
    assert r.returncode == 0, r.stderr
    uid, pid, nproc, fsize, few = r.stdout.split()
    assert (int(uid), pid, int(nproc), int(fsize), few) == (sandbox.slot_uid(3), "2", 64, 2 << 20, "True")
    assert tmp_path.stat().st_uid == sandbox.slot_uid(3)


def test_each_grading_process_has_its_own_uids():
    """Slots of one process: consecutive uids of its block; another process: another block (two
    processes draw the same one of the 2**22 blocks with probability 2.4e-7)."""
    mine = [sandbox.slot_uid(k) for k in (0, 1, sandbox.MAX_SLOTS - 1)]
    assert mine == [mine[0], mine[0] + 1, mine[0] + sandbox.MAX_SLOTS - 1]
    assert sandbox.SANDBOX_UID <= mine[0] and mine[0] % sandbox.MAX_SLOTS == 0 and mine[-1] < 2**32 - 2
    other = subprocess.run([sys.executable, "-c", "from gradkit_tools import sandbox; print(sandbox.slot_uid(0))"],
                           capture_output=True, text=True, check=True, timeout=60)
    assert int(other.stdout) != mine[0]
    with pytest.raises(sandbox.SandboxError, match="at most 256"):
        sandbox.slot_uid(sandbox.MAX_SLOTS)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandboxes run as uids of their own when grading as root")
def test_a_fork_storm_in_one_batch_leaves_another_batch_its_threads(tmp_path):
    """Two gradings at once on one host (two `gradkit grade` runs, Slurm tasks on one node): a fork storm
    held at its sandbox's process limit in one batch, the toy solution graded in the other meanwhile.
    Linux counts the limit per uid across the host, so with shared uids the second kernel could not
    start ("Resource temporarily unavailable"): it must get its full 4 points."""
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    storm, calm = tmp_path / "storm", tmp_path / "calm"
    storm.mkdir(), calm.mkdir()
    code = _attacks(tmp_path / "out_storm", tmp_path)["d_fork_storm"].replace("time.sleep(3)", "time.sleep(25)")
    _attack("d_fork_storm", code, storm)
    shutil.copy(SUBMISSIONS / "toy.ipynb", calm / "toy.ipynb")
    from gradkit_tools.course import load_limits

    held = load_limits(TOY_COURSE)["grade"]["process_limit"] * 3 // 4  # the kernel's own threads take the rest
    before = len(psutil.pids())
    other = subprocess.Popen([sys.executable, "-m", "gradkit_tools.cli", "grade", str(autograder), str(storm),
                              "-o", str(tmp_path / "out_storm"), "--jobs", "1", "--course", str(TOY_COURSE),
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(psutil.pids()) < before + held:  # the storm holds its sandbox's process limit
            assert other.poll() is None and time.monotonic() < deadline, "the fork storm never started"
            time.sleep(0.2)
        rows = grade(autograder, calm, tmp_path / "out_calm", jobs=1, course=TOY_COURSE, progress=False)
        assert len(psutil.pids()) >= before + held, "the storm ended before the other batch was graded"
        assert [(r["grading_status"], r["total_points_earned"]) for r in rows] == [("graded", 4.0)], rows
        assert other.wait(timeout=180) == 0
    finally:
        if other.poll() is None:
            other.kill()
    stormed = _rows(tmp_path / "out_storm")["d_fork_storm.ipynb"]
    assert (stormed["grading_status"], stormed["total_points_earned"]) == ("graded", "4.0"), stormed


def test_grading_stops_where_the_sandbox_cannot_start(tmp_path, monkeypatch):
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(GradeError, match="could not start a sandbox here: bwrap: No permissions to create new "
                                         "namespace.*--sandbox none"):
        grade(autograder, SUBMISSIONS / "toy.ipynb", tmp_path / "out", course=TOY_COURSE, progress=False)
    assert not (tmp_path / "out" / "results" / "toy.json").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GradeError, match="bubblewrap is not installed"):
        grade(autograder, SUBMISSIONS / "toy.ipynb", tmp_path / "out", course=TOY_COURSE, progress=False)


def test_grading_without_a_sandbox_flags_every_row(tmp_path):
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    rows = grade(autograder, [SUBMISSIONS / "toy.ipynb", SUBMISSIONS / "blank.ipynb"], tmp_path, jobs=2,
                 course=TOY_COURSE, progress=False, sandbox_mode="none")
    assert [(r["file"], r["total_points_earned"], r["flags"]) for r in rows] == [
        ("blank.ipynb", 0.0, [sandbox.UNSANDBOXED_FLAG]), ("toy.ipynb", 4.0, [sandbox.UNSANDBOXED_FLAG])]
    assert json.loads((tmp_path / "summary.json").read_text())["sandbox"] == "none"


def test_loopback_is_private(tmp_path):
    """Otter and the kernel talk over loopback inside the sandbox; a port opened outside is unreachable."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=2); print('reached')\n"
                "except OSError:\n    print('refused')" % srv.getsockname()[1])
        sandbox.prepare_workdir(tmp_path)
        r = subprocess.run(sandbox.command([sys.executable, "-c", code], tmp_path), capture_output=True,
                           text=True, timeout=60)
    assert r.stdout.strip() == "refused", r.stderr
