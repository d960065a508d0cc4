"""Starting and stopping the watcher process from the workbench."""

from __future__ import annotations

import pytest

from core import processes
from core.store.versionstore import VersionStore
from core.workbench import watching


@pytest.mark.process
def test_start_then_stop_the_watcher(tmp_path, house_data, house_model):
    from core import bundle

    store = VersionStore(str(tmp_path / "board"))
    store.write(bundle(house_model, house_data.drop(columns=["price"]), name="house"))
    assert watching.watcher_state(store) is None
    rec = watching.start_watcher(store)
    try:
        assert processes.state(rec["pid"], rec["start_ticks"]) == "alive"
        # a second start finds the first
        assert watching.start_watcher(store)["pid"] == rec["pid"]
        assert watching.record_path(store).is_file()
    finally:
        assert watching.stop_watcher(store)
    assert processes.state(rec["pid"], rec["start_ticks"]) != "alive"
    assert watching.watcher_state(store) is None and not watching.record_path(store).exists()
    assert watching.stop_watcher(store) is False


def test_a_recorded_pid_of_another_program_is_not_ours(tmp_path):
    import json
    import os

    store = VersionStore(str(tmp_path / "board"))
    path = watching.record_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    # this test's own pid, with a start time that is not its own: a reused pid
    path.write_text(json.dumps({"pid": os.getpid(), "start_ticks": 1, "started": "x"}))
    assert watching.watcher_state(store) is None
    assert watching.stop_watcher(store) is False  # never signalled
    path.write_text("not json")
    assert watching.watcher_state(store) is None
