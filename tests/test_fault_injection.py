"""The README's promise that a run killed with `kill -9` resumes: SIGKILLs at seeded random moments, some while a
checkpoint is being saved, each followed by `--resume_from_checkpoint latest`, end with the byte-identical adapter
and the same logged steps as an uninterrupted run. The long version: `python scripts/fault_injection.py --kills 10`."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fault_injection.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# slow, covered by a killed run resumed to the same result:
#   test_training.py::test_resume_latest_equals_uninterrupted,
#   test_cluster.py::test_three_nodes_every_survivor_names_the_killed_rank
@pytest.mark.slow
def test_repeated_sigkills_end_with_the_adapter_of_an_uninterrupted_run(tmp_path, tiny_llama3_dir):
    script = load_script()
    # kinds of moment: mid-training, mid-save, just after the last step's checkpoint (times drawn from the seed)
    result = script.fault_injection(tmp_path, kills=3, seed=0, max_steps=6, save_steps=1, timeout=120,
                                    modes=["step", "save", "last"])
    assert len(result["kills"]) == 3 and result["kills"][1].startswith("during the save of"), result["kills"]
    assert [s for s, _, _ in result["run_steps"]] == list(range(1, 7))
    assert result["same_steps"], (result["ref_steps"], result["run_steps"])
    assert result["same_adapter"], result["kills"]
