"""``BaselineStore`` writes: several processes updating one file, and a folder that cannot be written."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_knowledge.core.errors import BaselineError
from pytest_knowledge.stores.baselines import BaselineStore

ENTRIES = 300
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pytest_knowledge.stores.baselines import BaselineStore

    root, name, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not start.exists():  # both processes begin writing at the same moment
        time.sleep(0.001)
    store = BaselineStore(root)
    for i in range({entries}):
        entry = {{"metric": "p_at_1", "value": i / {entries}, "n": 1, "higher_is_better": True, "fingerprint": name}}
        store.write("suite", "model", {{f"{{name}}-{{i}}": entry}})
""").format(entries=ENTRIES)


def test_two_processes_writing_one_file_keep_every_entry(tmp_path: Path) -> None:
    """Real processes, not threads: each re-reads the file, adds one entry and replaces it, 300 times.
    Without the file lock their read-modify-write cycles interleave and drop each other's entries."""
    start = tmp_path / "start"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "baselines"), name, str(start)])
               for name in ("a", "b")]
    time.sleep(0.5)
    start.touch()
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    entries = json.loads((tmp_path / "baselines/suite/model.json").read_text())["entries"]
    assert len(entries) == 2 * ENTRIES
    assert sorted(p.name for p in (tmp_path / "baselines/suite").iterdir()) == [".model.json.lock", "model.json"]


def test_an_unwritable_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    """Tests run as root, where chmod does not stop a write: the folder's parent is a regular file instead."""
    (tmp_path / "blocker").write_text("not a folder")
    store = BaselineStore(tmp_path / "blocker" / "baselines")
    entry = {"metric": "p_at_1", "value": 0.5, "n": 1, "higher_is_better": True, "fingerprint": "f"}
    with pytest.raises(BaselineError, match=rf"cannot write baselines under {tmp_path / 'blocker' / 'baselines'}: "):
        store.write("suite", "model", {"case": entry})
