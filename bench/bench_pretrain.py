"""Pre-training speed of the tiny base (`vlm_nb.pretrain.ensure_base_model`, the longest step of a study's first run)
with 1 torch thread and with every core (OpenMP's default active waiting, and `OMP_WAIT_POLICY=PASSIVE`), and the
minutes a full build (`PRETRAIN_TRAIN['max_steps']` steps) takes at that rate on this machine; the 1-minute load
average before each run says how busy the machine was. Writes bench/results/pretrain.csv.
Usage: python bench/bench_pretrain.py [--steps 30] [--repeats 2]
Each run is its own process on a small mix of the same suites; samples/s comes from the trainer's summary (steps after
the first), so suite generation, tokenizer training and saving are excluded. The fastest of `--repeats` counts."""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false', 'PYTHONWARNINGS': 'ignore'}
ENV.pop('OMP_NUM_THREADS', None)
MIX = {'screens': 20, 'charts': 20, 'infographics': 20, 'vov': 160}  # train items: the full mix's suites, smaller

def one(threads:int, steps:int) -> dict:
    "Pre-train for `steps` steps in this process; return the trainer's samples/s"
    from vlm_nb.pretrain import ensure_base_model
    import torch
    with tempfile.TemporaryDirectory() as d:
        out = ensure_base_model(Path(d)/'base', mix=MIX, train={'max_steps': steps}, threads=threads, work_dir=Path(d)/'work',
                                workers=1, score_counts={})
        s = json.loads((out/'base_build.json').read_text())['summary']
        return dict(samples_per_s=s['samples_per_s'], torch_threads=torch.get_num_threads())

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=2, help='runs per setting; the fastest counts (shared CPUs are noisy)')
    ap.add_argument('--out', default=str(HERE/'results'/'pretrain.csv'))
    ap.add_argument('--one', type=int, help='(internal) run one measurement with this many threads')
    a = ap.parse_args(argv)
    if a.one is not None: print(json.dumps(one(a.one, a.steps))); return
    from vlm_nb.pretrain import PRETRAIN_TRAIN
    from vlm_nb.records import write_csv
    cores = len(os.sched_getaffinity(0))
    settings = [(1, 'ACTIVE')] + ([(cores, 'ACTIVE'), (cores, 'PASSIVE')] if cores > 1 else [])
    runs, loads = {}, {}
    for _ in range(a.repeats):  # alternate settings so background load hits them alike
        for th, wait in settings:
            loads.setdefault((th, wait), []).append(os.getloadavg()[0])
            r = subprocess.run([sys.executable, __file__, '--one', str(th), '--steps', str(a.steps)], capture_output=True, text=True,
                               env={**ENV, 'OMP_WAIT_POLICY': wait})
            if r.returncode: raise RuntimeError(f"pre-training with {th} thread(s), {wait} waiting failed:\n{r.stderr[-4000:]}")
            runs.setdefault((th, wait), []).append(json.loads(r.stdout.strip().splitlines()[-1])['samples_per_s'])
    total = PRETRAIN_TRAIN['max_steps'] * PRETRAIN_TRAIN['batch_size']
    rows = [dict(threads=th, omp_wait_policy=wait, cores=cores, steps=a.steps, batch=PRETRAIN_TRAIN['batch_size'],
                 samples_per_s=round(max(v), 2), full_build_train_min=round(total / max(v) / 60, 2),
                 all_runs=' '.join(f'{x:.1f}' for x in v), load_avg_before=' '.join(f'{x:.2f}' for x in loads[(th, wait)]))
            for (th, wait), v in runs.items()]
    for r in rows: print(r, flush=True)
    write_csv(a.out, rows)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
