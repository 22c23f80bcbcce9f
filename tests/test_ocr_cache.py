"""`python -m vlm_nb.ocr`: a build killed half-way resumes to the same cache; torchrun shards + merge equal one
process; a corrupt image is reported by path and skipped or fatal"""
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import BIN, ROOT, run_cmd
from vlm_nb.records import load_jsonl, write_jsonl
from vlm_nb.data.synth import generate_suite
from vlm_nb.ocr import strip_timing, shard_path

PY = [sys.executable, '-m', 'vlm_nb.ocr']
ONE_THREAD = ['--set', 'ocr.num_threads=1']  # same arithmetic in every process, and fair to the 2 cores

def _records(path): return sorted((strip_timing(r) for r in load_jsonl(path)), key=lambda r: r['image'])

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "12 small images (8 rendered text items, 4 screens) listed in one JSONL, and the cache of one uninterrupted run"
    d = tmp_path_factory.mktemp('ocr')
    root = d/'images'
    a = generate_suite('ocr', root, 8, seed=4, split='val', workers=1, show_progress=False)
    b = generate_suite('screens', root, 4, seed=4, split='val', workers=1, show_progress=False)
    samples = write_jsonl(d/'samples.jsonl', load_jsonl(a) + load_jsonl(b))
    ref = d/'ref'/'cache.jsonl'
    r = run_cmd([*PY, 'build', '--jsonl', samples, '--image_root', root, '--out_path', ref, '--no_progress', *ONE_THREAD])
    assert r.returncode == 0, r.stderr
    n_images = len({s['image'] for s in load_jsonl(samples)})
    assert n_images == 12 and len(load_jsonl(ref)) == 12
    return dict(dir=d, root=root, samples=samples, ref=ref, n=n_images)

def _build_args(data, out, *more):
    return [*PY, 'build', '--jsonl', data['samples'], '--image_root', data['root'], '--out_path', out, '--no_progress', *ONE_THREAD, *more]

def test_killed_build_resumes_to_the_same_cache(data):
    out = data['dir']/'killed'/'cache.jsonl'
    p = subprocess.Popen([str(a) for a in _build_args(data, out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None:
        if out.exists() and out.read_bytes().count(b'\n') >= 4: break
        time.sleep(0.005)
    assert p.poll() is None, f"the build ended before it could be killed: {p.stderr.read().decode()}"
    p.send_signal(signal.SIGKILL); p.wait()
    written = out.read_bytes()
    n_done = written.count(b'\n')
    assert 4 <= n_done < data['n'], n_done                    # killed half-way
    with open(out, 'ab') as f: f.write(b'{"image": "ocr/val/0000')  # and as if mid-line
    r = run_cmd(_build_args(data, out))
    assert r.returncode == 0, r.stderr
    assert f"{n_done} cached before, {data['n'] - n_done} read" in r.stdout, r.stdout
    assert [strip_timing(x) for x in load_jsonl(out)] == [strip_timing(x) for x in load_jsonl(data['ref'])]

def test_torchrun_shards_then_merge_equal_one_process(data):
    out = data['dir']/'sharded'/'cache.jsonl'
    r = run_cmd([BIN/'torchrun', '--standalone', '--nproc_per_node', '2', '-m', 'vlm_nb.ocr', 'build', '--jsonl', data['samples'],
                 '--image_root', data['root'], '--out_path', out, '--no_progress', *ONE_THREAD],
                env={'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout + r.stderr
    shards = [shard_path(out, k, 2) for k in range(2)]
    assert [len(load_jsonl(s)) for s in shards] == [6, 6]
    assert not out.exists()
    r = run_cmd([*PY, 'merge', '--out_path', out, '--merge_shards', '2'])
    assert r.returncode == 0, r.stderr
    assert '12 images (0 duplicates dropped)' in r.stdout
    merged = load_jsonl(out)
    assert [m['image'] for m in merged] == sorted(m['image'] for m in merged)
    assert _records(out) == _records(data['ref'])
    r = run_cmd([*PY, 'merge', '--out_path', out, '--merge_shards', '3'])
    assert r.returncode == 1 and 'cache.shard0-of-3.jsonl (missing)' in r.stderr

def test_corrupt_image_is_reported_and_skipped_or_fatal(data):
    root = data['root']
    (root/'bad').mkdir(exist_ok=True)
    good = (root/'ocr/val/000000.png').read_bytes()
    (root/'bad'/'cut.png').write_bytes(good[:len(good)//3])
    recs = load_jsonl(data['samples'])[:3]
    bad = dict(recs[0], id='ocr/val/bad-0', image='bad/cut.png')
    samples = write_jsonl(data['dir']/'with_bad.jsonl', recs[:2] + [bad] + recs[2:])
    args = lambda out, *m: [*PY, 'build', '--jsonl', samples, '--image_root', root, '--out_path', out, '--no_progress', *ONE_THREAD, *m]
    out = data['dir']/'bad_skip'/'cache.jsonl'
    r = run_cmd(args(out, '--on_bad_sample', 'skip'))
    assert r.returncode == 0, r.stderr
    assert 'skipped: image bad/cut.png: truncated or corrupt image' in r.stderr and str(root/'bad'/'cut.png') in r.stderr
    assert '1 bad skipped' in r.stdout
    assert [x['image'] for x in load_jsonl(out)] == [s['image'] for s in recs]
    out = data['dir']/'bad_error'/'cache.jsonl'
    r = run_cmd(args(out))
    assert r.returncode == 1
    assert '[ocr] error: image bad/cut.png: truncated or corrupt image' in r.stderr, r.stderr
    assert [x['image'] for x in load_jsonl(out)] == [s['image'] for s in recs[:2]]  # what was read before it stays
