"""`vlm_nb.launch.launch` runs the trainer (`python -m vlm_nb.train`) on 2 CPU workers with DDP: rank 0's progress
lines become the launch history, the worker entry point runs in `distributed_session` (group destroyed once, gloo
workers exit cleanly), and a failing run names its first failing rank."""
import json
from pathlib import Path
import pytest
from vlm_nb.launch import LaunchError, launch, rank_statuses
from vlm_nb.records import read_csv

ENV = {'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    d = tmp_path_factory.mktemp('tiny')
    files = [generate_suite(s, d/'data', 2, seed=0, split='train', workers=1, show_progress=False) for s in ('charts', 'screens')]
    vlm = build_tiny_vlm(d/'vlm', list(sample_texts(*files)) * 3, seed=0, vocab_size=400, max_pixels=128*128)
    return dict(root=d, files=files, vlm=vlm)

def args(tiny, out, *more):
    return [f"model.name_or_path={tiny['vlm']}", f"data.image_root={tiny['root']}/data", f'run.output_dir={out}',
            'train.train_jsonl=' + ','.join(map(str, tiny['files'])), 'train.backend=ddp', 'train.batch_size=2',
            'train.warmup_steps=1', 'train.learning_rate=1e-3', *more]

@pytest.mark.timeout(600)
def test_launch_streams_trainer_progress(tiny, tmp_path):
    out = tmp_path/'run'
    res = launch(args(tiny, out, 'train.max_steps=5', 'train.log_every=2'), module='vlm_nb.train', launcher='torchrun',
                 nproc_per_node=2, device='cpu', log_dir=tmp_path/'logs', echo='none', env=ENV)
    assert [(h['step'], h['total']) for h in res.history] == [(2, 5), (4, 5), (5, 5)]
    rows = {int(r['step']): r for r in read_csv(out/'metrics.csv')}
    for h in res.history:
        assert h['loss'] == pytest.approx(float(rows[h['step']]['loss']), rel=1e-5)
        assert h['lr'] > 0 and h['samples_per_s'] > 0
    assert '[vlm_nb] step' not in res.rank_log(1)  # only rank 0 reports
    assert 'terminate called' not in res.output  # the process group was destroyed once, before exit
    assert all(s['returncode'] == 0 for s in rank_statuses(res.log_dir).values())
    assert json.loads((out/'summary.json').read_text())['world_size'] == 2

@pytest.mark.timeout(600)
def test_failing_trainer_names_rank(tiny, tmp_path):
    with pytest.raises(LaunchError) as ei:
        launch(args(tiny, tmp_path/'bad', 'train.max_steps=2', 'train.resume_from=/nonexistent/step_3'), module='vlm_nb.train',
               launcher='torchrun', nproc_per_node=2, device='cpu', log_dir=tmp_path/'logs', echo='none', progress=False, env=ENV)
    st = rank_statuses(tmp_path/'logs')
    assert ei.value.rank in (0, 1) and st[ei.value.rank]['returncode'] != 0
    assert 'nonexistent' in str(ei.value)
    assert st[ei.value.rank]['error']['type']  # recorded by distributed_session for the launcher
