"""What a resume reads back: a run directory with nothing to resume yet."""

import os

import pytest

from googlenet.errors import NotFound, RunInUse
from googlenet.runtime.files import DirectoryLock
from googlenet.training.run_state import checkpoint_to_resume


def test_resuming_a_run_still_before_its_first_checkpoint_names_the_process(tmp_path):
    with pytest.raises(NotFound, match="nothing to resume"):
        checkpoint_to_resume(tmp_path)
    with DirectoryLock(tmp_path):  # as a run that has started, with no last.pt yet
        with pytest.raises(RunInUse, match=f"in use by another process \\(PID {os.getpid()}\\)"):
            checkpoint_to_resume(tmp_path)
