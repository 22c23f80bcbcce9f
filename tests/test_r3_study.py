"r3 study stages for real: two gloo workers, a stage killed half-way resumes from its checkpoint, the next stage chains from it"
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN

PY = str(BIN/'python')

@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "A tiny r3 setup: a few synthetic screens, their text index, a raw tiny Qwen3-VL"
    d = tmp_path_factory.mktemp('r3')
    code = f"""
import torch; torch.set_num_threads(1)
from pathlib import Path
from vlm_nb.data.synth import generate_suite
from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
from vlm_nb.retrieval import build_indices
from vlm_nb.config import load_config
d = Path({str(d)!r})
tr = generate_suite('screens', d/'data', 16, seed=0, split='train', jsonl_path=d/'train.jsonl', workers=1, show_progress=False)
va = generate_suite('screens', d/'data', 4, seed=1, split='val', jsonl_path=d/'val.jsonl', workers=1, show_progress=False)
build_tiny_vlm(d/'model', list(sample_texts(tr, va)) * 3, seed=0, vocab_size=400, max_pixels=128*128)
build_indices(d/'train.jsonl', out_dir=d/'indices', cfg=load_config('tiny', overrides=['retrieval.text_field=question']),
              image_root=d/'data', kinds=['text'], show_progress=False)
"""
    r = subprocess.run([PY, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return d

def _overrides(d, steps):
    return [f'train.train_jsonl=[{d}/train.jsonl]', f'train.val_jsonl=[{d}/val.jsonl]', f'data.image_root={d}/data',
            f'model.name_or_path={d}/model', f'retrieval.index_dir={d}/indices',
            'retrieval.text_field=question', f'train.max_steps={steps}', 'train.save_every=2', 'train.batch_size=2',
            'train.log_every=1', 'train.max_length=512']

def _stage_code(d, stage, steps, extra=''):
    return f"""
import json
from vlm_nb.studies.r3.study import run_stage
s = run_stage({stage!r}, {str(d/'study')!r}, 'tiny', overrides={_overrides(d, steps)!r}, progress=False{extra})
print('SUMMARY', json.dumps({{k: s.get(k) for k in ('action', 'steps', 'status', 'checkpoint', 'first_loss', 'final_loss')}}))
"""

def _summary(out:str) -> dict:
    line = next(l for l in out.splitlines() if l.startswith('SUMMARY '))
    return json.loads(line[len('SUMMARY '):])

def test_stage_killed_resumes_then_chains(study):
    d, out = study, study/'study'/'checkpoints'/'stage1_clean'
    # start stage 1 (40 steps, a checkpoint every 2), kill every process of it after its first checkpoint
    p = subprocess.Popen([PY, '-c', _stage_code(d, 'stage1_clean', 40)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.time()
    while not any((q/'trainer_state.json').exists() for q in out.glob('step_*')):
        assert p.poll() is None, p.stdout.read()
        assert time.time() - t0 < 300, 'no checkpoint after 300 s'
        time.sleep(0.5)
    # torchrun starts its workers in sessions of their own: kill the launcher's group and every worker of this stage
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    subprocess.run(['pkill', '-9', '-f', str(out)])
    time.sleep(1)
    killed_at = max(int(q.name[5:]) for q in out.glob('step_*') if (q/'trainer_state.json').exists())
    assert killed_at < 40 and not (out/'stage.json').exists()
    # rerun: resumes from the last checkpoint and finishes
    r = subprocess.run([PY, '-c', _stage_code(d, 'stage1_clean', 40)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = _summary(r.stdout)
    assert (s['action'], s['steps'], s['status']) == ('resume', 40, 'ok'), s
    assert f'resume from {out}/step_{killed_at}' in r.stdout, r.stdout[-2000:]
    steps = [int(l.split(',')[0]) for l in (out/'metrics.csv').read_text().splitlines()[1:] if l.split(',')[0].isdigit()]
    assert steps == list(range(1, 41)), steps  # no step lost or logged twice
    # a third run reuses the finished stage
    r = subprocess.run([PY, '-c', _stage_code(d, 'stage1_clean', 40)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and _summary(r.stdout)['action'] == 'done', r.stdout[-2000:] + r.stderr[-2000:]
    # a changed config is refused, not silently mixed with the old run
    r = subprocess.run([PY, '-c', _stage_code(d, 'stage1_clean', 30)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and 'fresh=True' in r.stderr, r.stderr[-2000:]
    # stage 2 (text retrieval: soft prefix, text memory, alignment loss) starts from stage 1's final weights
    r = subprocess.run([PY, '-c', _stage_code(d, 'stage2_text', 4)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s2 = _summary(r.stdout)
    assert (s2['action'], s2['steps'], s2['status']) == ('new', 4, 'ok'), s2
    ident = json.loads((d/'study'/'checkpoints'/'stage2_text'/'stage_identity.json').read_text())
    assert ident['init_from'].endswith('stage1_clean/step_40'), ident

def test_eval_blocks_on_stage_checkpoint(study):
    "Evaluation blocks run on a stage checkpoint: base sweep, no-image and majority baselines, an r3 block; a block needing modules the checkpoint lacks is refused"
    d = study
    ck = d/'study'/'checkpoints'/'stage2_text'
    assert (ck/'stage.json').exists(), 'stage 2 is trained by test_stage_killed_resumes_then_chains (runs first)'
    code = f"""
import json, torch
torch.set_num_threads(1)
from vlm_nb.studies.r3.study import eval_block, majority_rows, stage_record, ModelCache
d = {str(d)!r}
over = {_overrides(d, 4)!r} + ['eval.batch_size=4', 'eval.max_new_tokens=8']
ckpt = stage_record(d + '/study', 'stage2_text')['checkpoint']
models, rows = ModelCache(), []
for name in ('base_corrupt', 'no_image'):
    rows += eval_block(name, d + '/eval', d + '/val.jsonl', None, 'tiny', [0, 0.5], over, models=models)
text_only = ['r3.disable_image_retrieval=true', 'r3.disable_visual_memory=true', 'r3.disable_gate=true', 'r3.disable_latent_tokens=true']
rows += eval_block('r3_clean', d + '/eval', d + '/val.jsonl', ckpt, 'tiny', [0, 0.5], over + text_only, models=models)
rows += majority_rows(d + '/train.jsonl', d + '/val.jsonl', [0, 0.5])
try:
    eval_block('r3_corrupt', d + '/eval_full', d + '/val.jsonl', ckpt, 'tiny', [0, 0.5], over, models=ModelCache())
    refused = ''
except Exception as e: refused = str(e)
print('ROWS', json.dumps(rows)); print('REFUSED', json.dumps(refused))
"""
    r = subprocess.run([PY, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = json.loads(next(l for l in r.stdout.splitlines() if l.startswith('ROWS '))[5:])
    refused = json.loads(next(l for l in r.stdout.splitlines() if l.startswith('REFUSED '))[8:])
    got = {(x['block'], x['corruption_level'], x['dataset']) for x in rows}
    for b in ('base_corrupt', 'no_image', 'majority'):
        assert {(b, 0.0, 'all'), (b, 0.5, 'all'), (b, 0.5, 'screens')} <= got, (b, sorted(got))
    assert ('r3_clean', 0.0, 'all') in got and ('r3_clean', 0.5, 'all') not in got  # clean only
    assert all(0 <= x['accuracy'] <= 1 and x['n'] > 0 for x in rows)
    assert 'image' in refused, refused  # the full r3 model needs the image path: no image index here, no image modules in stage 2
    for b in ('base_corrupt', 'no_image', 'r3_clean'):
        for f in ('results.csv', 'summary.json', 'run_metadata.json', 'predictions.jsonl'): assert (d/'eval'/b/f).exists(), (b, f)

def test_eval_blocks_in_two_workers_match_one_process(study):
    "`run_blocks` with 2 gloo workers, each taking a share of every block's samples, gives the rows of one process, the LoRA r3 model included"
    d = study
    assert (d/'eval'/'r3_clean'/'summary.json').exists(), 'test_eval_blocks_on_stage_checkpoint runs first'
    code = f"""
import json
from vlm_nb.studies.r3.study import run_blocks, block_rows, stage_record
d = {str(d)!r}
over = {_overrides(d, 4)!r} + ['eval.batch_size=4', 'eval.max_new_tokens=8']
text_only = ['r3.disable_image_retrieval=true', 'r3.disable_visual_memory=true', 'r3.disable_gate=true', 'r3.disable_latent_tokens=true']
ckpt = stage_record(d + '/study', 'stage2_text')['checkpoint']
two = run_blocks(['base_corrupt', 'no_image'], d + '/eval2', d + '/val.jsonl', None, 'tiny', [0, 0.5], over, nproc_per_node=2, progress=False)
two += run_blocks(['r3_clean'], d + '/eval2', d + '/val.jsonl', ckpt, 'tiny', [0, 0.5], over + text_only, nproc_per_node=2, progress=False)
one = [r for b in ('base_corrupt', 'no_image', 'r3_clean') for r in block_rows(b, d + '/eval')]
print('ROWS', json.dumps([two, one]))
"""
    r = subprocess.run([PY, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    two, one = json.loads(next(l for l in r.stdout.splitlines() if l.startswith('ROWS '))[5:])
    assert two == one and len(two) > 6, (two, one)
    for b in ('base_corrupt', 'no_image', 'r3_clean'):
        s = json.loads((d/'eval2'/b/'summary.json').read_text())
        assert (s['world_size'], s['computed'] > 0) == (2, True), (b, s['world_size'], s['computed'])
        assert not list((d/'eval2'/b).glob('predictions.rank*.jsonl')), b  # the ranks' shards were merged

def test_runbook_eval_command(study):
    "`vlm_nb r3 eval` with the runbook's §6b flags: base clean per dataset, and the stage-2 r3 model on a sweep"
    d = study
    ck = json.loads((d/'study'/'checkpoints'/'stage2_text'/'stage.json').read_text())['checkpoint']
    common = [f'--val_jsonl', f'{d}/val.jsonl', '--image_root', f'{d}/data', '--index_dir', f'{d}/indices', '--top_k', '3',
              f'model.name_or_path={d}/model', 'retrieval.text_field=question', 'eval.batch_size=4', 'eval.max_new_tokens=8']
    r = subprocess.run([str(BIN/'vlm_nb'), 'r3', 'eval', '--eval_mode', 'base', '--clean_only', '--no_pseudo_text',
                        '--dataset_prefixes', 'screens', '--out_dir', f'{d}/cli_base', *common], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = json.loads((d/'cli_base'/'summary.json').read_text())
    assert (s['method'], s['levels'], s['method_settings']['pseudo_text']) == ('base', [0.0], False), s['method_settings']
    text_only = ['--disable_image_retrieval', '--disable_visual_memory', '--disable_gate', '--disable_latent_tokens']
    r = subprocess.run([str(BIN/'vlm_nb'), 'r3', 'eval', '--eval_mode', 'r3', '--checkpoint_dir', ck, '--corruption_levels', '0,0.5',
                        '--corrupt_text_target', 'none', '--out_dir', f'{d}/cli_r3', *text_only, *common],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = json.loads((d/'cli_r3'/'summary.json').read_text())
    assert s['method'] == 'r3' and s['levels'] == [0.0, 0.5] and s['method_settings']['soft_prefix'] is True, s['method_settings']
    assert {(t['level'], t['dataset']) for t in s['table']} >= {(0.0, 'all'), (0.5, 'all')}
    r = subprocess.run([str(BIN/'vlm_nb'), 'r3', 'eval', '--eval_mode', 'r3', *common], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and '--checkpoint_dir' in r.stderr, r.stderr[-2000:]
