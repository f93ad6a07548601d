"""`gradkit slurm grade|calibrate` on a real single-node Slurm started by this module.

The fixture configures munged (a key made here, its own socket), slurmctld and slurmd on this host
in a temporary folder (proctrack/linuxproc, task/none, no cgroups, no accounting) and stops them all
at the end, whatever happened. The CLI writes the sbatch scripts and submits a job array (one shard
per task) and a merge job that depends on it; the merged result must equal a single run: the same
final_grades.csv as a plain `gradkit grade` of the same submissions, and the same calibration file
byte for byte as a single-process `gradkit calibrate`.
Skipped only where Slurm cannot start here: its programs missing (Debian: slurm-wlm munge) or not root.
"""
from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUTOGRADER = ROOT / "autograder" / "a1_clipping" / "autograder.zip"
SUBMISSIONS = [ROOT / "course" / "a1_clipping" / "submissions" / f"{n}.ipynb"
               for n in ("correct_solution", "malformed_not_json", "wrong_q2_adam")]  # 2 kernels, 1 ungradable
CHEAP_TEST = ("a2_init", "test_lecun_normal_distribution")  # ~10 s for its 300 runs (course/a2_init/calibration.json)
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}
WAIT_S = 600


def _why_not() -> str | None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"Slurm cannot start here: {', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "Slurm cannot start here: slurmd runs jobs as their user and needs root"
    return None


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 40) -> str:
    try:
        return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as exc:
        return f"--- {path}: {exc}"


class Cluster:
    """The running test cluster: its folder, the environment its client commands need, its logs."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def logs(self, *folders: Path) -> str:
        files = sorted(self.root.glob("*.log")) + [f for d in folders for f in sorted(d.glob("logs/*"))]
        return "\n".join(_tail(f) for f in files)

    def wait(self, job_ids: list[str], result: Path, folder: Path) -> None:
        """Until every job of ``job_ids`` ended; fail with the jobs' states and all logs unless all completed
        and ``result`` exists."""
        deadline, states = time.monotonic() + WAIT_S, {}
        while time.monotonic() < deadline:
            states = {}
            for jid in job_ids:
                out = self.run("scontrol", "-o", "show", "job", jid, check=False).stdout
                states.update({f"{jid}.{i}": s for i, s in enumerate(re.findall(r"JobState=(\S+)", out))})
            if states and all(s in TERMINAL for s in states.values()):
                break
            time.sleep(2)
        if not (states and all(s == "COMPLETED" for s in states.values()) and result.exists()):
            pytest.fail(f"Slurm jobs {job_ids} did not all complete within {WAIT_S} s or {result} is missing; "
                        f"states {states}\n{self.logs(folder)}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool", "munge"):
        (root / d).mkdir()
    (root / "munge").chmod(0o755)  # clients reach the socket through it
    key = root / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=gradkit-test", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={_port()}",
        f"SlurmdPort={_port()}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        f"AuthInfo=socket={root}/munge/socket", "CredType=cred/munge", f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool", f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "SwitchType=switch/none",
        "MpiDefault=none", "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU", "ReturnToService=2", "MinJobAge=3600",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb * 9 // 10} State=UNKNOWN",
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = dict(os.environ, SLURM_CONF=str(conf), TF_CPP_MIN_LOG_LEVEL="2")
    daemons: list[subprocess.Popen] = []
    c = Cluster(root, env)

    def start(name: str, *cmd: str) -> None:
        with open(root / f"{name}.out.log", "w") as log:
            daemons.append(subprocess.Popen(list(cmd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))

    try:
        start("munged", "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={root}/munge/socket",
              f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed")
        for _ in range(50):
            if (root / "munge" / "socket").exists():
                break
            time.sleep(0.1)
        start("slurmctld", "slurmctld", "-D", "-i", "-f", str(conf))
        start("slurmd", "slurmd", "-D", "-f", str(conf), "-N", host)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = c.run("sinfo", "-h", "-o", "%T", check=False).stdout.split()
            if states and all(s == "idle" for s in states):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the test's Slurm did not come up (node states {states}):\n{c.logs()}")
        yield c
    finally:
        if daemons:
            c.run("scancel", "--user=root", check=False)  # ours only: SLURM_CONF is this cluster's
            for p in reversed(daemons):
                p.terminate()
            for p in daemons:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _cli(cluster: Cluster, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "gradkit_tools.cli", *args], env=cluster.env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"gradkit {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _ids(stdout: str) -> list[str]:
    m = re.search(r"array job (\d+) \(\d+ tasks\) and merge job (\d+)", stdout)
    assert m, stdout
    return [m.group(1), m.group(2)]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_slurm_grade_array_merges_to_a_plain_grade(cluster, tmp_path):
    from gradkit_tools.grade import grade

    out = tmp_path / "slurm"
    stdout = _cli(cluster, "slurm", "grade", str(AUTOGRADER), *map(str, SUBMISSIONS), "-o", str(out), "--tasks", "2",
                  "--cpus-per-task", "1", "--jobs", "1", "--time", "20", "--sbatch", "requeue", cwd=tmp_path)
    array = (out / "grade-array.sbatch").read_text()
    assert "#SBATCH --array=1-2" in array and "#SBATCH --requeue" in array and sys.executable in array
    # the plain run goes on while the array runs (each kernel mostly waits; 2 cores)
    plain = grade(AUTOGRADER, SUBMISSIONS, tmp_path / "plain", jobs=2, progress=False)
    cluster.wait(_ids(stdout), out / "final_grades.csv", out)
    assert [r["grading_status"] for r in plain] == ["graded", "ungradable", "graded"]
    assert _rows(out / "final_grades.csv") == _rows(tmp_path / "plain" / "final_grades.csv")
    shards = [_rows(out / "shards" / str(k) / "final_grades.csv") for k in (1, 2)]
    assert [len(s) - 2 for s in shards] == [1, 2]  # 3 submissions by name: 1 in shard 1/2, 2 in shard 2/2


def test_slurm_calibrate_array_merges_to_the_single_process_file(cluster, tmp_path):
    name, test = CHEAP_TEST
    out = tmp_path / "slurm"
    stdout = _cli(cluster, "slurm", "calibrate", name, "--only", test, "-o", str(out), "--tasks", "2",
                  "--cpus-per-task", "1", cwd=tmp_path)
    single = tmp_path / "single.json"
    _cli(cluster, "calibrate", name, "--only", test, "-o", str(single), "--quiet", cwd=tmp_path)
    cluster.wait(_ids(stdout), out / "calibration.json", out)
    assert (out / "calibration.json").read_bytes() == single.read_bytes()
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["1.json", "2.json"]


def test_dry_run_writes_the_scripts_and_a_missing_sbatch_says_so(tmp_path):
    """No Slurm needed: --dry-run writes the array, merge and submit.sh; without sbatch on PATH the CLI
    names it and points at --dry-run."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # the venv's bin: no sbatch there
    args = [sys.executable, "-m", "gradkit_tools.cli", "slurm", "grade", str(AUTOGRADER), *map(str, SUBMISSIONS),
            "-o", str(tmp_path / "out"), "--tasks", "3", "--partition", "short", "--mem", "8G", "--sbatch=--qos=low"]
    done = subprocess.run([*args, "--dry-run"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    array = (tmp_path / "out" / "grade-array.sbatch").read_text()
    for line in ("#SBATCH --array=1-3", "#SBATCH --partition=short", "#SBATCH --mem=8G", "#SBATCH --qos=low",
                 f"#SBATCH --output={tmp_path}/out/logs/grade-%a.out", '--shard "$K"/3'):
        assert line in array, line
    merge = (tmp_path / "out" / "grade-merge.sbatch").read_text()
    assert "#SBATCH --mem" not in merge and " merge " in merge and "shards/3/final_grades.csv" in merge
    assert "--dependency=afterok:$array" in (tmp_path / "out" / "submit.sh").read_text()
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "sbatch not found" in done.stderr and "--dry-run" in done.stderr
    bad = [*args[:5], "nope.zip", str(SUBMISSIONS[0]), "-o", str(tmp_path / "x"), "--tasks", "2"]
    done = subprocess.run(bad, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "autograder zip not found: nope.zip" in done.stderr


def test_calibration_shards_merge_to_the_single_process_file(tmp_path):
    """No Slurm needed: `calibrate --shard K/3` run here one after the other and `--merge`d (given in any
    order) write the single-process file byte for byte; a missing, repeated or foreign
    part is refused with the reason."""
    from gradkit_tools.calibrate import calibrate, calibrate_shard, merge_shards

    name, test = CHEAP_TEST
    parts = [calibrate_shard(name, f"{k}/3", tmp_path / f"{k}.json", only=[test]) for k in (1, 2, 3)]
    merge_shards(parts[::-1], tmp_path / "merged.json", name=name)
    calibrate(name, out=tmp_path / "single.json", only=[test], progress=False)
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "single.json").read_bytes()
    with pytest.raises(ValueError, match="shard.s. 2/3 missing"):
        merge_shards([parts[0], parts[2]], tmp_path / "x.json")
    with pytest.raises(ValueError, match="given twice"):
        merge_shards([parts[0], parts[0], parts[1], parts[2]], tmp_path / "x.json")
    other = calibrate_shard(name, "1/2", tmp_path / "other.json", only=[test], power_runs=0)
    with pytest.raises(ValueError, match="has power_runs 30, .*other.json has 0"):
        merge_shards([other, *parts], tmp_path / "x.json")
    with pytest.raises(ValueError, match="not a file of `gradkit calibrate --shard`"):
        merge_shards([tmp_path / "single.json"], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
