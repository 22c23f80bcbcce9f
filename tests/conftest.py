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

def tiny_vlm_varied(d:Path, n:int, max_pixels:int):
    "Synthetic charts + screens val files (`n` each) and a tiny VLM with scaled-up random weights, so answers vary per sample"
    import torch
    torch.set_num_threads(1)
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    from vlm_nb.models.backbone import load_backbone
    files = [generate_suite(s, d/'data', n, seed=0, split='val', workers=1, show_progress=False) for s in ('charts', 'screens')]
    base = build_tiny_vlm(d/'base', list(sample_texts(*files)) * 3, seed=0, vocab_size=400, max_pixels=max_pixels)
    model, proc = load_backbone(name_or_path=str(base))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2: p.normal_(0, 1.5 / p.shape[-1] ** 0.5, generator=g)
    return files, model, proc
