"""Training speed of `vlm_nb.train`: samples/s of our trainer vs transformers' `Trainer` on the same tiny VLM, data,
collator and batch (one process), and of DDP with 2 CPU workers vs 1 (torchrun, gloo); peak RSS of each.
Writes bench/results/train.csv. Usage: python bench/bench_train.py [--steps 40] [--repeats 4] [--batch 8] [--threads 1]
Each measurement runs in its own process; samples/s is timed from the end of step 1 to the end of the last step, so
model loading, the first (warm-up) step and the final checkpoint are excluded for both trainers. On shared CPUs wall
time is noisy: the fastest of `--repeats` alternating runs counts, and samples per CPU-second (process time over the
same steps, one thread) and samples/s of the median step are reported as steadier measures; `all_runs` lists
every repeat's samples/s."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false', 'PYTHONWARNINGS': 'ignore'}

def build(d:Path) -> dict:
    "Tiny Qwen3-VL and synthetic charts + screens (the tiny default's architecture)"
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    files = [generate_suite(s, d/'data', 8, seed=0, split='train', workers=1, show_progress=False) for s in ('charts', 'screens')]
    vlm = build_tiny_vlm(d/'vlm', list(sample_texts(*files)) * 3, seed=0, vocab_size=512)
    return dict(root=str(d), files=[str(f) for f in files], vlm=str(vlm))

def overrides(info, out, steps, batch, lora):
    o = [f"model.name_or_path={info['vlm']}", f"data.image_root={info['root']}/data", f'run.output_dir={out}',
         'train.train_jsonl=' + ','.join(info['files']), 'run.progress=false', f'train.max_steps={steps}',
         f'train.batch_size={batch}', 'train.warmup_steps=5', 'train.learning_rate=1e-3',
         'train.sampling_alpha=1.0',  # draws in proportion to size, as transformers' shuffled sampler
         'train.tensorboard=false']  # transformers' Trainer runs with report_to=[]: neither writes TensorBoard events
    return o + (['model.use_lora=true', 'model.lora_r=8'] if lora else [])

def rates(stamps, batch) -> dict:
    "Samples per wall second and per CPU second between the end of the first step and the end of the last, and per wall second of the median step"
    import statistics
    n = (len(stamps) - 1) * batch
    med = statistics.median(b[0] - a[0] for a, b in zip(stamps, stamps[1:]))
    return dict(samples_per_s=n / (stamps[-1][0] - stamps[0][0]), samples_per_cpu_s=n / (stamps[-1][1] - stamps[0][1]),
                samples_per_s_median_step=batch / med)

def stamp(): return (time.perf_counter(), time.process_time())

def one(kind, info, steps, batch, lora, threads) -> dict:
    "Run one trainer in this process; return samples/s and peak RSS"
    import torch
    torch.set_num_threads(threads)
    from vlm_nb.config import load_config
    from vlm_nb.prompt import SFTCollator, model_inputs
    from vlm_nb.train import SampleDataset, Trainer, TrainHook, load_samples
    out = tempfile.mkdtemp()
    cfg = load_config('tiny', overrides=overrides(info, out, steps, batch, lora))
    stamps = []
    if kind == 'ours':
        class Clock(TrainHook):
            def on_step_end(self, trainer, step, metrics): stamps.append(stamp())
        t = Trainer(cfg, hooks=[Clock()])
        t.fit(); t.close()
    else:
        from transformers import Trainer as HFTrainer, TrainingArguments, TrainerCallback
        from vlm_nb.models.backbone import load_backbone
        model, proc = load_backbone(cfg, seed=0)
        ds = SampleDataset(load_samples(info['files']), cfg.data.image_root)
        col = SFTCollator(proc, cfg.train.max_length)
        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw): stamps.append(stamp())
        tc = cfg.train
        ta = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=tc.learning_rate,
                               warmup_steps=tc.warmup_steps, lr_scheduler_type='cosine', adam_epsilon=tc.adam_eps,
                               weight_decay=tc.weight_decay, max_grad_norm=tc.max_grad_norm, logging_steps=1, save_strategy='no',
                               report_to=[], use_cpu=True, remove_unused_columns=False, dataloader_num_workers=0,
                               disable_tqdm=True, seed=0)
        HFTrainer(model=model, args=ta, train_dataset=ds, data_collator=lambda items: model_inputs(col(items)),
                  callbacks=[Clock()]).train()
    return dict(**rates(stamps, batch), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

def sub_one(kind, info, steps, batch, lora, threads) -> dict:
    r = subprocess.run([sys.executable, __file__, '--one', kind, '--info', json.dumps(info), '--steps', str(steps),
                        '--batch', str(batch), '--threads', str(threads)] + (['--lora'] if lora else []),
                       capture_output=True, text=True, env=ENV)
    if r.returncode: raise RuntimeError(f"{kind} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def ddp(info, nproc, steps, batch, lora, threads) -> dict:
    "Global samples/s (steps 2..N, from the run's summary) and peak RSS per worker of a torchrun DDP run"
    out = tempfile.mkdtemp()
    cmd = [str(Path(sys.executable).parent/'torchrun'), '--standalone', '--nproc_per_node', str(nproc), '-m', 'vlm_nb.train',
           'train.backend=ddp', f'train.threads={threads}', *overrides(info, out, steps, batch, lora)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode: raise RuntimeError(f"ddp x{nproc} failed:\n{r.stderr[-4000:]}")
    s = json.loads((Path(out)/'summary.json').read_text())
    return dict(samples_per_s=s['samples_per_s'], peak_rss_mb=s['peak_rss_mb'])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--threads', type=int, default=1, help='torch threads of the single-process runs')
    ap.add_argument('--batch', type=int, default=8, help='per-worker batch size')
    ap.add_argument('--repeats', type=int, default=4, help='runs per setting; the fastest counts (shared CPUs are noisy)')
    ap.add_argument('--out', default=str(HERE/'results'/'train.csv'))
    ap.add_argument('--one', choices=['ours', 'hf']); ap.add_argument('--info'); ap.add_argument('--lora', action='store_true')
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one, json.loads(a.info), a.steps, a.batch, a.lora, a.threads))); return
    from vlm_nb.records import write_csv
    rows = []
    def add(setting, trainer, workers, threads, lora, res):
        rows.append(dict(setting=setting, trainer=trainer, workers=workers, threads_per_worker=threads, lora=lora,
                         batch_per_worker=a.batch, steps=a.steps, samples_per_s=round(res['samples_per_s'], 2),
                         samples_per_cpu_s=round(res['samples_per_cpu_s'], 2) if 'samples_per_cpu_s' in res else '',
                         samples_per_s_median_step=round(res['samples_per_s_median_step'], 2) if 'samples_per_s_median_step' in res else '',
                         peak_rss_mb=round(res['peak_rss_mb'], 1), all_runs=' '.join(f'{x:.1f}' for x in res['all_runs'])))
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as d:
        info = build(Path(d))
        for lora in (False, True):
            best = {}
            for _ in range(a.repeats):  # alternate so load from other processes hits both alike
                for kind in ('hf', 'ours'):
                    r = sub_one(kind, info, a.steps, a.batch, lora, a.threads)
                    b = best.setdefault(kind, dict(r, all_runs=[]))
                    b['all_runs'].append(r['samples_per_s'])
                    for k in ('samples_per_s', 'samples_per_cpu_s', 'samples_per_s_median_step'): b[k] = max(b[k], r[k])
            add('single process', 'transformers.Trainer', 1, a.threads, lora, best['hf'])
            add('single process', 'vlm_nb.train', 1, a.threads, lora, best['ours'])
            ratio = {k: round(best['ours'][k] / best['hf'][k], 3) for k in ('samples_per_s', 'samples_per_cpu_s', 'samples_per_s_median_step')}
            rows.append(dict(setting='ratio ours / HF', trainer='vlm_nb.train', workers=1, threads_per_worker=a.threads, lora=lora,
                             batch_per_worker=a.batch, steps=a.steps, **ratio))
            print(rows[-1], flush=True)
        runs = {}
        for _ in range(a.repeats):  # alternate settings so background load hits them alike
            for n, th in ((1, 1), (1, 2), (2, 1)): runs.setdefault((n, th), []).append(ddp(info, n, a.steps, a.batch, True, th))
        for (n, th), rs in runs.items():
            best = max(rs, key=lambda r: r['samples_per_s'])
            add(f'ddp torchrun x{n} (gloo)', 'vlm_nb.train', n, th, True, dict(best, all_runs=[r['samples_per_s'] for r in rs]))
    write_csv(a.out, rows)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
