"""`python -m vlm_nb.eval.matrix`: an evaluation killed half-way (SIGKILL) resumes to the same results.csv as an
uninterrupted one, computing only what is missing; a 2-process torchrun evaluation equals the single-process one."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, run_cmd, tiny_vlm_varied

# The test's own module: a local exact-match metric, and the `base` method with an optional pause per batch
# (EVAL_TEST_PAUSE seconds) so that the run can be killed between two appended batches.
EVALMOD = r'''
import os, time
from vlm_nb.eval.matrix import Method

def exact_match(sample, prediction):
    return float(prediction.strip().lower() in [a.strip().lower() for a in sample.answers])

def slow(model, processor, cfg=None):
    def gen(model, batch, **kw):   # the pause is read here: a closed-over value would be part of the method's cache key
        time.sleep(float(os.environ.get('EVAL_TEST_PAUSE', 0)))
        return model.generate(**batch, **kw)
    return Method(model, processor, 'base', generate_fn=gen)
'''
N = 16

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from vlm_nb.models.backbone import save_backbone
    d = tmp_path_factory.mktemp('evalresume')
    files, model, proc = tiny_vlm_varied(d, 4, 128*128)
    save_backbone(model, proc, d/'vlm')
    (d/'evalmod.py').write_text(EVALMOD)
    return d, files

def _args(d, files, out):
    return ['--model_name', d/'vlm', '--val_jsonl', ','.join(map(str, files)), '--image_root', d/'data', '--output_dir', out,
            '--method', 'evalmod:slow', '--metric', 'evalmod:exact_match', '--max_new_tokens', '6', '--batch_size', '2',
            '--max_eval_samples', str(N), '--eval_log_every', '1', 'run.progress=false']

def _env(d, **kw):
    return {'PYTHONPATH': f"{d}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', **kw}

def _lines(p:Path) -> int:
    return p.read_bytes().count(b'\n') if p.exists() else 0

def _eval(d, files, out, **env):
    r = run_cmd([sys.executable, '-m', 'vlm_nb.eval.matrix', *_args(d, files, out)], env=_env(d, **env), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r

@pytest.mark.timeout(600)
def test_killed_evaluation_resumes_to_the_same_results(setup):
    d, files = setup
    t0 = time.time()
    full, r = _eval(d, files, d/'full')
    t_full = time.time() - t0
    assert (full['n'], full['computed'], full['reused']) == (N, N, 0)
    assert '[eval] base level 0: batch 1/8 (12%)' in r.stderr and 'ETA' in r.stderr  # progress with ETA, every batch
    # a slow run (1 s per batch of 2), killed once at least two batches are appended
    out = d/'killed'
    proc = subprocess.Popen([sys.executable, '-m', 'vlm_nb.eval.matrix', *map(str, _args(d, files, out))], cwd=ROOT,
                            env={**os.environ, **_env(d, EVAL_TEST_PAUSE='1.0')}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while _lines(out/'predictions.jsonl') < 4 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally: proc.wait()
    done = _lines(out/'predictions.jsonl')
    assert proc.returncode == -signal.SIGKILL and 4 <= done < N, (proc.returncode, done)
    assert not (out/'results.csv').exists()
    again, _ = _eval(d, files, out)
    assert (again['computed'], again['reused']) == (N - done, done)
    assert (out/'results.csv').read_bytes() == (d/'full'/'results.csv').read_bytes()
    assert _lines(out/'predictions.jsonl') == N
    # the same evaluation once more computes nothing
    t0 = time.time()
    cached, _ = _eval(d, files, out)
    t_cached = time.time() - t0
    assert (cached['computed'], cached['reused']) == (0, N)
    assert (out/'results.csv').read_bytes() == (d/'full'/'results.csv').read_bytes()
    print(f"full run {t_full:.1f}s, killed after {done}/{N}, rerun from cache {t_cached:.1f}s (process start included)", file=sys.stderr)

@pytest.mark.timeout(600)
def test_two_process_evaluation_equals_one(setup):
    d, files = setup
    one = d/'full'
    if not (one/'results.csv').exists(): _eval(d, files, one)
    two = d/'two'
    r = run_cmd([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'vlm_nb.eval.matrix',
                 *_args(d, files, two)], env=_env(d), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (two/'results.csv').read_bytes() == (one/'results.csv').read_bytes()
    s = json.loads((two/'summary.json').read_text())
    assert (s['world_size'], s['n']) == (2, N)
    assert sorted(p.name for p in two.glob('predictions*.jsonl')) == ['predictions.jsonl']  # shards merged
    assert _lines(two/'predictions.jsonl') == N
    assert '[eval] base level 0 rank 1: done, 8 computed, 0 from cache' in r.stderr
    # one process reuses the cache the two wrote
    again, _ = _eval(d, files, two)
    assert (again['computed'], again['reused']) == (0, N)

@pytest.mark.timeout(600)
def test_matrix_of_two_methods_under_torchrun(setup):
    d, files = setup
    one = d/'full'
    if not (one/'results.csv').exists(): _eval(d, files, one)
    out = d/'matrix2'
    args = [a if a != 'evalmod:slow' else 'evalmod:slow,no_vision' for a in map(str, _args(d, files, out))]
    r = run_cmd([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'vlm_nb.eval.matrix', *args],
                env=_env(d), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out/'base'/'results.csv').read_bytes() == (one/'results.csv').read_bytes()
    from vlm_nb.records import read_csv
    mx = read_csv(out/'eval_matrix.csv')
    assert [(m['method'], m['dataset']) for m in mx] == [(m, g) for m in ('base', 'no_vision') for g in ('all', 'charts', 'screens')]
    assert float(mx[3]['vision_tokens_mean']) == 0.0 < float(mx[0]['vision_tokens_mean'])
    assert read_csv(out/'results.csv') == mx
