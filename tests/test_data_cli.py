"`vlm_nb data prepare` / `check-leakage` from the command line: the tiny recipe at small scale, resume, a planted leak"
import importlib, json
from pathlib import Path
import pytest
from conftest import BIN, run_cmd
from vlm_nb.records import file_hash

TOY_SUITES = '''
from pathlib import Path
import numpy as np
from PIL import Image
from vlm_nb.data.synth import suite

@suite('cli_pat')
def make_pat(index, rng, split, out_dir, image_prefix):
    a = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    rel = f'{image_prefix}/{split}/{index}.png'
    (Path(out_dir)/rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(Path(out_dir)/rel)
    return [dict(id=f'cli_pat/{split}/{index}', dataset='cli_pat', split=split, image=rel,
                 question='Brightest value?', answer=str(int(a.max())), answer_type='numeric')]

@suite('cli_sum')
def make_sum(index, rng, split, out_dir, image_prefix):
    a, b = map(int, rng.integers(0, 10**6, 2))
    return [dict(id=f'cli_sum/{split}/{index}', dataset='cli_sum', split=split, question=f'{a}+{b}?',
                 answer=str(a + b), answer_type='numeric')]
'''

RECIPE = '''name: clitoy
description: toy suites for the CLI test
image_root: .
imports: [toy_cli_suites]
entries:
  - {suite: cli_pat, study: demo, train: 30, eval: 10}
  - {suite: cli_sum, study: demo, train: 20, eval: 5}
'''

def _vlm(*args, env=None): return run_cmd([BIN/'vlm_nb', *map(str, args)], env=env)

def _check_manifest(root:Path, recipe:str) -> dict:
    "Every recorded file exists with its recorded hash and count; return the recipe's manifest"
    man = json.loads((root/'processed'/'manifest.json').read_text())
    rm = man['recipes'][recipe]
    for rel, f in rm['files'].items():
        p = root/'processed'/rel
        assert p.exists(), rel
        assert f['sha256'] == file_hash(p), rel
        assert f['count'] == len(p.read_text().splitlines()) > 0, rel
        assert f['role'] in ('train', 'eval')
    assert rm['leakage']['ok'] is True
    return rm

def test_prepare_toy_recipe_resume_and_planted_leak(tmp_path):
    (tmp_path/'toy_cli_suites.py').write_text(TOY_SUITES)
    (tmp_path/'clitoy.yaml').write_text(RECIPE)
    env, root = {'PYTHONPATH': str(tmp_path)}, tmp_path/'data'
    args = ['data', 'prepare', '--recipe', tmp_path/'clitoy.yaml', '--data-root', root, '--workers', '2', '--no-progress']
    r = _vlm(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('(written)') == 4 and 'leakage check passed: 15 eval samples and 10 eval media' in r.stdout, r.stdout
    rm = _check_manifest(root, 'clitoy')
    assert {k: (f['count'], f['role']) for k, f in rm['files'].items()} == {
        'cli_pat/cli_pat_train.jsonl': (30, 'train'), 'cli_pat/cli_pat_val.jsonl': (10, 'eval'),
        'cli_sum/cli_sum_train.jsonl': (20, 'train'), 'cli_sum/cli_sum_val.jsonl': (5, 'eval')}
    before = (root/'processed'/'manifest.json').read_bytes()
    # resumable: nothing is regenerated, the manifest keeps its bytes
    r = _vlm(*args, env=env)
    assert r.returncode == 0 and r.stdout.count('(up to date)') == 4, r.stdout + r.stderr
    assert (root/'processed'/'manifest.json').read_bytes() == before
    # a planted leak: an eval record copied into a training file
    tr, ev = root/'processed/cli_pat/cli_pat_train.jsonl', root/'processed/cli_pat/cli_pat_val.jsonl'
    tr.write_text(tr.read_text() + ev.read_text().splitlines()[3] + '\n')
    r = _vlm('data', 'check-leakage', '--data-root', root, env=env)
    assert r.returncode == 1
    assert "eval sample 'cli_pat/val/3'" in r.stderr and 'cli_pat_val.jsonl:4' in r.stderr and 'same id as training sample' in r.stderr, r.stderr
    # prepare notices the changed training file, regenerates it, and the check passes again
    r = _vlm(*args, env=env)
    assert r.returncode == 0 and r.stdout.count('(written)') == 1 and r.stdout.count('(up to date)') == 3, r.stdout + r.stderr
    assert (root/'processed'/'manifest.json').read_bytes() == before
    assert _vlm('data', 'check-leakage', '--data-root', root, '--recipe', 'clitoy', env=env).returncode == 0

def test_prepare_errors_are_one_line(tmp_path):
    r = _vlm('data', 'prepare', '--recipe', 'tinyy', '--data-root', tmp_path)
    assert r.returncode == 1 and "unknown recipe 'tinyy' (did you mean 'tiny'?)" in r.stderr, r.stderr
    r = _vlm('data', 'prepare', '--recipe', 'paper', '--data-root', tmp_path, '--only', 'vov')
    assert r.returncode == 1 and "recipe 'paper' cannot run here" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = _vlm('data', 'check-leakage', '--data-root', tmp_path)
    assert r.returncode == 1 and 'no manifest, so no prepared data' in r.stderr and 'vlm_nb data prepare --recipe' in r.stderr, r.stderr

def test_prepare_tiny_recipe_small_scale(tmp_path):
    from vlm_nb.data.recipe import load_recipe
    from vlm_nb.data.synth import get_suite
    for e in load_recipe('tiny').entries: get_suite(e.suite)  # every suite of the recipe is registered (its home imports)
    args = ['data', 'prepare', '--recipe', 'tiny', '--data-root', tmp_path, '--scale', '0.02', '--workers', '1', '--no-progress']
    r = _vlm(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    rm = _check_manifest(tmp_path, 'tiny')
    assert set(rm['files']) == {e.relpath for e in load_recipe('tiny').entries}
    assert {f['role'] for f in rm['files'].values()} == {'train', 'eval'}
    assert rm['seed'] == 0 and rm['leakage']['eval_samples'] > 0
    r2 = _vlm(*args)
    assert r2.returncode == 0 and '(written)' not in r2.stdout, r2.stdout
