"""`gradkit k8s grade|calibrate`: the manifest is valid batch/v1 against the official Kubernetes schemas
(kubernetes-validate bundles them; strict: no unknown field), an Indexed Job maps JOB_COMPLETION_INDEX i to
shard i + 1, and the merge Job runs once every shard marked itself done (both shell lines run here)."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from gradkit_tools.cli import main

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e .[test] (kubernetes-validate)")


def _manifest(capsys, *args: str) -> list[dict]:
    assert main(["k8s", *args]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def _script(doc: dict) -> str:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert isinstance(command, list) and all(isinstance(c, str) for c in command)
    assert command[:2] == ["/bin/sh", "-c"]
    return command[2]


@pytest.mark.parametrize("version", ["1.25", kubernetes_validate.utils.latest_version()])
def test_grade_manifest_is_a_valid_indexed_job_and_a_merge(capsys, version):
    docs = _manifest(capsys, "grade", "/data/autograder.zip", "/data/subs", "-o", "/data/out", "--tasks", "3",
                     "--parallelism", "2", "--image", "example.org/gradkit:0.1", "--cpu", "2", "--memory", "8Gi")
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError naming the field
        assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "Job")
        pod = doc["spec"]["template"]["spec"]
        assert pod["restartPolicy"] in ("Never", "OnFailure")
        assert {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"} in pod["containers"][0]["env"]
    shards, merge = docs
    bad = yaml.safe_load(yaml.safe_dump(shards))
    bad["spec"]["completionMode"], bad["spec"]["template"]["spec"]["containers"][0]["command"] = "Sometimes", "sh"
    with pytest.raises(kubernetes_validate.ValidationError):  # the schema does check what it is given
        kubernetes_validate.validate(bad, version, strict=True)
    assert shards["spec"]["completionMode"] == "Indexed"
    assert shards["spec"]["completions"] == 3 and shards["spec"]["parallelism"] == 2
    assert "completionMode" not in merge["spec"] and merge["spec"]["completions"] == 1
    assert merge["metadata"]["name"] == f"{shards['metadata']['name']}-merge"
    assert "JOB_COMPLETION_INDEX + 1" in _script(shards) and '--shard "$K"/3' in _script(shards)
    assert _script(merge).endswith("-o /data/out/final_grades.csv")


def test_the_manifests_shell_lines_map_the_index_to_the_shard_and_wait_for_every_shard(capsys, tmp_path):
    """Both containers' commands run under /bin/sh with `echo` as the image's Python: pod index 1 grades
    shard 2/3 into shards/2 and marks it; the merge waits for 3 marks, then merges the three CSVs."""
    out = tmp_path / "out"
    shards, merge = _manifest(capsys, "grade", "/data/ag.zip", "/data/subs", "-o", str(out), "--tasks", "3",
                              "--image", "gradkit", "--python", "echo", "--jobs", "2")
    ran = subprocess.run(["/bin/sh", "-c", _script(shards)], env={"JOB_COMPLETION_INDEX": "1", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert ran.split() == ["-m", "gradkit_tools.cli", "grade", "/data/ag.zip", "/data/subs", "-o", f"{out}/shards/2",
                           "--shard", "2/3", "--sandbox", "bwrap", "--quiet", "--jobs", "2"]
    assert sorted(p.name for p in (out / "done").iterdir()) == ["2"]
    with pytest.raises(subprocess.TimeoutExpired):  # shards 1 and 3 not done: the merge waits
        subprocess.run(["/bin/sh", "-c", _script(merge)], capture_output=True, timeout=2)
    for k in ("1", "3"):
        (out / "done" / k).touch()
    ran = subprocess.run(["/bin/sh", "-c", _script(merge)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    assert ran.split() == ["-m", "gradkit_tools.cli", "merge", *(f"{out}/shards/{k}/final_grades.csv" for k in "123"),
                           "-o", f"{out}/final_grades.csv"]


def test_calibrate_manifest(capsys):
    shards, merge = _manifest(capsys, "calibrate", "a2_init", "--only", "test_lecun_normal_distribution", "-o",
                              "/data/cal", "--tasks", "4", "--image", "gradkit", "--name", "cal-a2")
    for doc in (shards, merge):
        kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)
    assert shards["metadata"]["name"] == "cal-a2" and shards["spec"]["completions"] == 4
    assert ("calibrate a2_init --runs 300 --first-seed 10000 --power-runs 30 --only test_lecun_normal_distribution "
            '--shard "$K"/4 -o /data/cal/parts/"$K".json') in _script(shards)
    assert _script(merge).endswith("--merge /data/cal/parts/1.json /data/cal/parts/2.json /data/cal/parts/3.json "
                                   "/data/cal/parts/4.json -o /data/cal/calibration.json")


def test_bad_tasks_is_an_error(capsys):
    assert main(["k8s", "grade", "ag.zip", "subs", "-o", "out", "--tasks", "0", "--image", "x"]) == 1
    assert "tasks must be >= 1" in capsys.readouterr().err
