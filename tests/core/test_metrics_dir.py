"""Feast's metrics folder, one a process of its own names: made, used by Feast, removed at exit, and
removed by the next process once a killed one left it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tickstore import metrics_dir

# a process that claims its folder, imports Feast, says where its metrics go and waits to be killed
CLAIM_AND_WAIT = """
import os, sys, time
from tickstore import metrics_dir
metrics_dir.claim()
import feast.metrics
print(os.environ["PROMETHEUS_MULTIPROCESS_DIR"], os.environ["PROMETHEUS_MULTIPROC_DIR"], feast.metrics._owns_mp_dir)
sys.stdout.flush()
time.sleep(float(sys.argv[1]))
"""


def _claiming(tmp: Path, wait_s: float) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    for variable in ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(variable, None)  # as from a shell: the test process's own Feast set them
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(wait_s)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().split()


def _made_old(path: Path) -> None:
    old = time.time() - 2 * metrics_dir.GONE_AFTER_S
    os.utime(path, (old, old))


def test_a_killed_process_folder_is_removed_by_the_next_and_an_exiting_one_removes_its_own(
    tmp_path: Path,
) -> None:
    # `import feast` made /tmp/feast_metrics_<random>, removed at Python's exit only: each command
    # killed (`kill`'s SIGTERM ends most at once) left one, and nothing told whose
    killed, said = _claiming(tmp_path, 60)
    folder = Path(said[0])
    assert said == [str(folder), str(folder), "False"]  # Feast's metrics go there, and Feast does not own it
    assert folder.parent == tmp_path and folder.name.startswith(metrics_dir.PREFIX) and folder.is_dir()
    killed.send_signal(signal.SIGTERM)
    killed.wait(timeout=30)
    assert folder.is_dir()  # Python's exit never ran

    _made_old(folder)
    exiting, said = _claiming(tmp_path, 0)  # claiming its own removes the gone process's
    assert exiting.wait(timeout=30) == 0
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []  # its own removed at its exit; no feast_metrics_* made


def test_only_old_folders_of_this_namespace_processes_that_are_gone_are_removed(tmp_path: Path) -> None:
    gone_pid, young_pid, file_pid = (
        int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout) for _ in range(3)
    )
    own = f"{metrics_dir.PREFIX}{metrics_dir._namespace()}"
    removed = tmp_path / f"{own}-{gone_pid}"
    kept = [
        tmp_path / f"{own}-{os.getpid()}",  # a live process's
        tmp_path / f"{metrics_dir.PREFIX}1-{gone_pid}",  # another PID namespace's: its numbers are not ours
        tmp_path / f"{own}-{gone_pid}0000000",  # no process's, but not ours to tell: a name we never give
        tmp_path / "feast_metrics_x1y2z3",  # Feast's own: whose is unknown
    ]
    for folder in (removed, *kept):
        folder.mkdir()
        _made_old(folder)
    young = tmp_path / f"{own}-{young_pid}"  # gone, but made a moment ago: maybe a process elsewhere
    young.mkdir()
    a_file = tmp_path / f"{own}-{file_pid}"
    a_file.write_text("not a folder of ours")
    _made_old(a_file)

    metrics_dir.remove_gone(tmp_path)

    assert not removed.exists()
    assert all(path.exists() for path in (*kept, young, a_file))


def test_a_script_importing_the_plugin_gets_the_named_folder_once(tmp_path: Path) -> None:
    """Outside a tickstore command (a notebook's `feature_store(Settings())`), Feast made its own folder."""
    script = (
        "import os, sys\n"
        "from tickstore import metrics_dir\n"
        "first = metrics_dir.claim() if sys.argv[1] == 'cli' else None\n"  # as `tickstore` does first
        "from tickstore_feast.repo import feature_store\n"  # the plugin's package claims, then Feast comes
        "import feast.metrics\n"
        "said = os.environ['PROMETHEUS_MULTIPROCESS_DIR']\n"
        "print(said, feast.metrics._owns_mp_dir, first is None or str(first) == said)\n"
        "print(sorted(os.listdir(os.environ['TMPDIR'])))\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for variable in ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(variable, None)
    for how in ("script", "cli"):
        run = subprocess.run(
            [sys.executable, "-c", script, how],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        folder, owned, same = run.stdout.splitlines()[0].split()
        assert Path(folder).parent == tmp_path and Path(folder).name.startswith(metrics_dir.PREFIX)
        assert (owned, same) == ("False", "True")  # Feast's metrics there, not Feast's; the CLI's kept
        assert run.stdout.splitlines()[1] == repr([Path(folder).name])  # no feast_metrics_* beside it
        assert list(tmp_path.iterdir()) == []  # removed at its exit
