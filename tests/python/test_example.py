"""examples/migration.py runs the guide's steps end to end."""

import os
import subprocess
import sys

from conftest import REPO


def test_migration_example_runs(tmp_path):
    env = dict(os.environ, UQ_EXAMPLE_OUT=str(tmp_path))
    result = subprocess.run([sys.executable, str(REPO / "examples" / "migration.py")], env=env,
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "similarity" in result.stdout
    assert (tmp_path / "model_quantized" / "config.json").exists()
