"""A GRPO-like training step under torchrun (2 gloo workers) with DDP and FSDP2: each micro-batch samples
completions with `generate` on the wrapped model, scores them, and trains the LoRA adapter on the sampled tokens
with group-normalised advantages and a KL term to the adapter-free model; the step's state is checkpointed."""
import os
from pathlib import Path
import pytest
from conftest import BIN, ROOT, run_cmd
from train_steps_toy import RolloutStep

ENV = {'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false',
       'PYTHONPATH': os.pathsep.join([str(ROOT/'tests'), os.environ.get('PYTHONPATH', '')])}
STEPS = 2

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    d = tmp_path_factory.mktemp('tiny')
    files = [generate_suite('charts', d/'data', 2, seed=0, split='train', workers=1, show_progress=False)]
    vlm = build_tiny_vlm(d/'vlm', list(sample_texts(*files)) * 3, seed=0, vocab_size=400, max_pixels=64*64)
    return dict(root=d, files=files, vlm=vlm)

@pytest.mark.parametrize('backend', ['ddp', 'fsdp'])
def test_rollout_step_generates_and_trains(tiny, backend):
    import torch
    from safetensors.torch import load_file
    from vlm_nb.records import read_csv
    out = tiny['root']/f'grpo_{backend}'
    a = [f"model.name_or_path={tiny['vlm']}", f"data.image_root={tiny['root']}/data", f'run.output_dir={out}',
         'train.train_jsonl=' + ','.join(map(str, tiny['files'])), 'run.progress=false', f'train.backend={backend}',
         'train.batch_size=1', f'train.max_steps={STEPS}', 'model.use_lora=true', 'model.lora_r=4', 'train.learning_rate=1e-2', 'train.warmup_steps=0',
         'train.step=train_steps_toy:RolloutStep', 'train.fsdp_min_params=100000']
    r = run_cmd([BIN/'torchrun', '--standalone', '--nproc_per_node', 2, '-m', 'vlm_nb.train', *a], env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert 'terminate called' not in r.stderr
    rows = [x for x in read_csv(out/'metrics.csv') if x.get('loss')]
    assert [int(x['step']) for x in rows] == list(range(1, STEPS + 1))
    for x in rows:
        assert {'loss_pg', 'loss_kl', 'loss_reward', 'loss_new_tokens'} <= set(x)
        assert float(x['loss_new_tokens']) >= 1 and float(x['loss_kl']) >= 0
    ck = out/f'step_{STEPS}'
    trained = load_file(str(ck/'trainable.safetensors'))
    lora_b = [v for k, v in trained.items() if 'lora_B' in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # LoRA B starts at zero: the sampled tokens' loss moved it
    st = torch.load(ck/'hooks.pt', weights_only=True)
    assert st['step:RolloutStep'] == {'rollouts': STEPS * 1 * RolloutStep.G}  # rank 0: batch 1 × G per step

