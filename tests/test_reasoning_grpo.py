"""The reasoning study's GRPO step under the shared trainer: reward functions in TRL's calling convention (ours, TRL's
own, a user's 'module:fn'), a 2-process torchrun (gloo) DDP run, and exact resume (a run stopped and resumed logs the
same metrics and ends with the same weights as an uninterrupted one, because generation is seeded per step and
micro-batch)."""
import os
from pathlib import Path
import pytest
from conftest import BIN, ROOT, run_cmd

ENV = {'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false',
       'PYTHONPATH': os.pathsep.join([str(ROOT/'tests'), os.environ.get('PYTHONPATH', '')])}

def length_reward(prompts, completions, answer, **kw):
    "A user's reward in TRL's convention: shorter completions score higher (reads the `answer` column to show it arrives)"
    assert len(answer) == len(completions)
    return [-len(c[0]['content']) / 100 for c in completions]

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    from vlm_nb.studies.reasoning.grpo import math_family, tiny_math_llm
    d = tmp_path_factory.mktemp('grpo')
    f = math_family(d/'data', 16, 'train')
    llm = tiny_math_llm(d/'llm', [f], seed=0, vocab_size=400, hidden_size=32, num_layers=1, head_dim=16, intermediate_size=64)
    return dict(root=d, file=f, llm=llm)

def _args(tiny, out, *more):
    return [f"model.name_or_path={tiny['llm']}", 'model.kind=llm', f'run.output_dir={out}', f"train.train_jsonl={tiny['file']}",
            'train.step=grpo', 'train.collator=prompt', 'run.progress=false', 'train.batch_size=2', 'train.max_steps=4',
            'train.warmup_steps=0', 'train.learning_rate=1e-2', 'train.tensorboard=false', 'grpo.max_completion_length=10', *more]

def test_reward_convention(tiny):
    "Rewards receive prompts as chat messages, completions as chat message lists and every column; TRL's own reward plugs in"
    from vlm_nb.studies.reasoning.grpo import REWARDS, correctness_reward, format_reward
    msgs = [[{'role': 'assistant', 'content': '<reasoning>a</reasoning>\n<answer>\n7\n</answer>'}], [{'role': 'assistant', 'content': '7'}]]
    assert format_reward(prompts=[None] * 2, completions=msgs) == [1.0, -1.0]
    assert correctness_reward(prompts=[None] * 2, completions=msgs, answer=['7', '7'], question=['q', 'q']) == [5.0, 0.0]
    assert correctness_reward(prompts=[None], completions=['<answer>1,234</answer>'], answer=['x\n#### 1,234']) == [5.0]
    trl_fmt = REWARDS.get('trl.rewards:think_format_reward')
    assert trl_fmt(completions=[[{'role': 'assistant', 'content': '<think>x</think>y'}], [{'role': 'assistant', 'content': 'y'}]]) == [1.0, 0.0]
    from vlm_nb.config import load_config
    from vlm_nb.records import read_csv
    from vlm_nb.train import train
    out = tiny['root']/'conv'
    train(load_config('tiny', overrides=_args(tiny, out, 'train.max_steps=1', 'grpo.reward_funcs=[format, trl.rewards:think_format_reward, test_reasoning_grpo:length_reward]',
                                             'grpo.reward_weights=[1, 0.5, 1]')))
    row = read_csv(out/'metrics.csv')[0]
    assert {'loss_reward_format', 'loss_reward_think_format_reward', 'loss_reward_length_reward'} <= set(row)
    assert float(row['loss_reward_length_reward']) < 0
    total = float(row['loss_reward_format']) + 0.5 * float(row['loss_reward_think_format_reward']) + float(row['loss_reward_length_reward'])
    assert abs(float(row['loss_reward']) - total) < 1e-5

def test_exact_resume(tiny):
    "Stopped after step 2 and resumed: the same metric rows and the same final weights as one run of 4 steps"
    from safetensors.torch import load_file
    from vlm_nb.config import load_config
    from vlm_nb.records import read_csv
    from vlm_nb.train import train
    full, part = tiny['root']/'full', tiny['root']/'part'
    rw = 'grpo.reward_funcs=[format, test_reasoning_grpo:length_reward]'  # the random model is never in format: a length reward varies
    train(load_config('tiny', overrides=_args(tiny, full, rw)))
    assert train(load_config('tiny', overrides=_args(tiny, part, rw, 'train.stop_after=2')))['status'] == 'stopped'
    assert train(load_config('tiny', overrides=_args(tiny, part, rw, 'train.resume_from=latest')))['status'] == 'ok'
    drop = lambda rows: [{k: v for k, v in r.items() if k != 'samples_per_s'} for r in rows]
    a, b = drop(read_csv(full/'metrics.csv')), drop(read_csv(part/'metrics.csv'))
    assert len(a) == 4 and a == b
    assert len({r['loss_reward'] for r in a}) > 1 and float(a[0]['loss_frac_reward_zero_std']) < 1  # rollouts differ, advantages too
    wa, wb = load_file(str(full/'step_4'/'trainable.safetensors')), load_file(str(part/'step_4'/'trainable.safetensors'))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    w0 = load_file(str(part/'step_2'/'trainable.safetensors'))
    assert any(not (w0[k] == wa[k]).all() for k in wa)  # steps 3-4 changed the weights

@pytest.mark.parametrize('backend', ['ddp', 'fsdp'])
def test_two_workers(tiny, backend):
    "torchrun with 2 gloo workers (DDP, FSDP2): each rank samples its own prompts' groups, the step's parts are averaged and logged"
    import torch
    from vlm_nb.records import read_csv
    out = tiny['root']/backend
    r = run_cmd([BIN/'torchrun', '--standalone', '--nproc_per_node', 2, '-m', 'vlm_nb.train',
                 *_args(tiny, out, f'train.backend={backend}', 'grpo.reward_funcs=[format, test_reasoning_grpo:length_reward]', 'train.max_steps=2', 'grpo.beta=0.04', 'grpo.log_completions_every=1')], env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    rows = [x for x in read_csv(out/'metrics.csv') if x.get('loss')]
    assert [int(x['step']) for x in rows] == [1, 2]
    assert all(float(x['loss_kl']) >= 0 and float(x['loss_completion_length']) >= 1 for x in rows)
    st = torch.load(out/'step_2'/'hooks.pt', weights_only=True)
    assert st['step:GRPOStep'] == {'rollouts': 2 * 2 * 4}  # rank 0: 2 steps x 2 prompts x 4 completions
    from safetensors.torch import load_file
    from vlm_nb.models.backbone import load_backbone
    w, (m0, _) = load_file(str(out/'step_2'/'trainable.safetensors')), load_backbone(name_or_path=str(tiny['llm']), kind='llm')
    assert any(not (w['model.' + k] == v).all() for k, v in m0.state_dict().items() if 'model.' + k in w)  # the policy moved
    import json
    recs = [json.loads(l) for l in open(out/'completions.jsonl')]
    assert len(recs) == 2 * 2 * 4  # rank 0 writes its own completions
