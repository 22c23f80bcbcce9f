"""GRPO speed of `vlm_nb.train` with the reasoning study's `grpo` step vs TRL's `GRPOTrainer` (trl 1.16), side by side on
the same tiny Qwen3 (briefly SFT-ed so it sometimes answers in the `<reasoning>`/`<answer>` format), the same prompts
(system prompt + one `math` family), the same reward functions (the spec's format and correctness rewards, TRL's calling
convention), the same generation settings (num_generations, max_completion_length, temperature, top_p) and the same
objective (loss_type, epsilon, beta=0, group scaling, learning rate, cosine schedule, one process, one thread).
Writes bench/results/grpo.csv: one row per trainer and step (total and per-function reward, completion length) and one
summary row per trainer (`step='all'`: completions/s and per CPU-second, timed from the end of step 1 to the end of the
last step, peak RSS, and `ratio_vs_trl`). Reward curves are for the same run seed; the two trainers draw prompts and
samples from their own generators, so the curves agree in trend, not token for token.
Usage: python bench/bench_grpo.py [--steps 30] [--batch 4] [--generations 4] [--max_completion_length 48] [--threads 1]"""
import argparse, csv, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false', 'PYTHONWARNINGS': 'ignore'}

def build(d:Path, sft_steps:int=48) -> dict:
    "Math family data, the tiny LLM, and a short SFT so the policy starts with some completions in format"
    import torch
    torch.set_num_threads(2)
    from vlm_nb.studies.reasoning.grpo import math_family, stage_config, tiny_math_llm
    from vlm_nb.train import train
    f = math_family(d/'data', 400, 'train')
    llm = tiny_math_llm(d/'llm', [f], seed=0)
    out = d/'sft'
    train(stage_config('sft', 'tiny', [f'model.name_or_path={llm}', f'train.train_jsonl={f}', f'run.output_dir={out}',
                                       'train.backend=single', f'train.max_steps={sft_steps}', 'run.progress=false']))
    return dict(file=str(f), model=str(out/f'step_{sft_steps}'/'model'))

def stamp(): return (time.perf_counter(), time.process_time())

def rates(stamps, per_step) -> dict:
    n = (len(stamps) - 1) * per_step
    return dict(samples_per_s=n / (stamps[-1][0] - stamps[0][0]), samples_per_cpu_s=n / (stamps[-1][1] - stamps[0][1]))

def one(kind, info, a) -> dict:
    "Run one trainer in this process; return its rates, peak RSS and per-step reward curve"
    import torch
    torch.set_num_threads(a.threads)
    from vlm_nb.studies.reasoning.grpo import GSM8K_SYSTEM_PROMPT, correctness_reward, format_reward, stage_config
    out = tempfile.mkdtemp()
    cfg = stage_config('grpo', 'tiny', [f"model.name_or_path={info['model']}", f"train.train_jsonl={info['file']}", f'run.output_dir={out}',
                                        'train.backend=single', f'train.max_steps={a.steps}', f'train.batch_size={a.batch}',
                                        f'grpo.num_generations={a.generations}', f'grpo.max_completion_length={a.max_completion_length}',
                                        'run.progress=false', 'grpo.log_completions_every=0'])
    g, tc, stamps = cfg.grpo, cfg.train, []
    if kind == 'ours':
        from vlm_nb.records import read_csv
        from vlm_nb.train import Trainer, TrainHook
        class Clock(TrainHook):
            def on_step_end(self, trainer, step, metrics): stamps.append(stamp())
        t = Trainer(cfg, hooks=[Clock()]); t.fit(); t.close()
        curve = [dict(step=int(r['step']), reward=float(r['loss_reward']), reward_format=float(r['loss_reward_format']),
                      reward_correctness=float(r['loss_reward_correctness']), completion_length=float(r['loss_completion_length']))
                 for r in read_csv(Path(out)/'metrics.csv') if r.get('loss')]
    else:
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
        from vlm_nb.data.schema import read_samples
        from vlm_nb.models.backbone import load_backbone
        model, tok = load_backbone(cfg)
        ds = Dataset.from_list([dict(prompt=[{'role': 'system', 'content': GSM8K_SYSTEM_PROMPT}, {'role': 'user', 'content': s.question}],
                                     answer=s.answers[0]) for s in read_samples(info['file'])])
        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw): stamps.append(stamp())
        ga = GRPOConfig(output_dir=out, per_device_train_batch_size=a.batch * g.num_generations, num_generations=g.num_generations,
                        max_completion_length=g.max_completion_length, temperature=g.temperature, top_p=g.top_p, beta=g.beta,
                        epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards, learning_rate=tc.learning_rate,
                        lr_scheduler_type='cosine', warmup_steps=tc.warmup_steps, adam_epsilon=tc.adam_eps, max_grad_norm=tc.max_grad_norm,
                        max_steps=a.steps, gradient_accumulation_steps=1, logging_steps=1, save_strategy='no', report_to=[],
                        use_cpu=True, seed=cfg.run.seed, disable_tqdm=True, bf16=False, fp16=False)
        tr = GRPOTrainer(model=model, reward_funcs=[format_reward, correctness_reward], args=ga, train_dataset=ds,
                         processing_class=tok, callbacks=[Clock()])
        tr.train()
        curve = [dict(step=int(h['step']), reward=h['reward'], reward_format=h['rewards/format_reward/mean'],
                      reward_correctness=h['rewards/correctness_reward/mean'], completion_length=h['completions/mean_length'])
                 for h in tr.state.log_history if 'reward' in h]
    return dict(**rates(stamps, a.batch * a.generations), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, curve=curve)

def sub_one(kind, info, a) -> dict:
    r = subprocess.run([sys.executable, __file__, '--one', kind, '--info', json.dumps(info), '--steps', str(a.steps), '--batch', str(a.batch),
                        '--generations', str(a.generations), '--max_completion_length', str(a.max_completion_length), '--threads', str(a.threads)],
                       capture_output=True, text=True, env=ENV)
    if r.returncode: raise RuntimeError(f"{kind} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--batch', type=int, default=4, help='prompts per step (TRL: per_device_train_batch_size = batch x generations)')
    ap.add_argument('--generations', type=int, default=4)
    ap.add_argument('--max_completion_length', type=int, default=48)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--one'); ap.add_argument('--info')
    a = ap.parse_args()
    if a.one: print(json.dumps(one(a.one, json.loads(a.info), a))); return
    with tempfile.TemporaryDirectory() as d:
        info = build(Path(d))
        res = {k: sub_one(k, info, a) for k in ('ours', 'trl')}
    rows = [dict(trainer=k, **c) for k, r in res.items() for c in r['curve']]
    for k, r in res.items():
        rows.append(dict(trainer=k, step='all', samples_per_s=round(r['samples_per_s'], 3), samples_per_cpu_s=round(r['samples_per_cpu_s'], 3),
                         peak_rss_mb=round(r['peak_rss_mb'], 1), ratio_vs_trl=round(r['samples_per_s'] / res['trl']['samples_per_s'], 3),
                         reward=sum(c['reward'] for c in r['curve']) / len(r['curve']),
                         reward_format=sum(c['reward_format'] for c in r['curve']) / len(r['curve'])))
    (HERE/'results').mkdir(exist_ok=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(HERE/'results'/'grpo.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols); w.writeheader(); w.writerows(rows)
    for r in rows[-2:]: print(r)
    print(f"[bench] wrote {HERE/'results'/'grpo.csv'}")

if __name__ == '__main__': main()
