import os, sys, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

@pytest.fixture
def root(): return ROOT

def run_cmd(args, cwd=ROOT, check=False, timeout=600, env=None):
    "Run a command, returning the CompletedProcess with text output"
    e = {**os.environ, **(env or {})}
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)
    if check and r.returncode: raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r
