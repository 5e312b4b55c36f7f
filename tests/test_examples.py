"""The runnable examples run as a user runs them, and show what they say."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_three_institutions_learn_an_event_detector_together(tmp_path):
    process = subprocess.run([sys.executable, EXAMPLES / "federated_institutions.py", "--rounds", "5",
                              "--out", tmp_path], capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr
    federated, anomaly = map(float, re.search(r"federated detector ([\d.]+), \|anomaly\| alone ([\d.]+)",
                                              process.stdout).groups())
    assert federated > 0.95 and federated > anomaly + 0.1
    assert "refused updates: 0" in process.stdout and process.stdout.rstrip().endswith("intact: True")
    events = [line for line in (tmp_path / "audit.jsonl").read_text().splitlines() if "update_accepted" in line]
    assert len(events) == 5 * 3  # every institution, every round
