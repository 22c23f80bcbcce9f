"""Pre-training speed of the tiny base (`vlm_nb.pretrain.ensure_base_model`, the longest step of a study's first run)
in the build's default form (`BASE_WORKERS` DDP processes of 1 thread each), and in one process with 1 torch thread and
with every core (OpenMP's default active waiting, and `OMP_WAIT_POLICY=PASSIVE`), and the minutes a full build (`PRETRAIN_TRAIN['max_steps']` steps) takes at that rate on this machine; the 1-minute load
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

def one(threads:int, steps:int, nproc:int) -> dict:
    "Pre-train for `steps` steps in `nproc` processes of `threads` threads; return the trainer's samples/s"
    from vlm_nb.pretrain import ensure_base_model
    import torch
    with tempfile.TemporaryDirectory() as d:
        out = ensure_base_model(Path(d)/'base', mix=MIX, train={'max_steps': steps}, threads=threads, work_dir=Path(d)/'work',
                                workers=1, score_counts={}, nproc=nproc)
        s = json.loads((out/'base_build.json').read_text())['summary']
        return dict(samples_per_s=s['samples_per_s'], torch_threads=torch.get_num_threads())

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=2, help='runs per setting; the fastest counts (shared CPUs are noisy)')
    ap.add_argument('--out', default=str(HERE/'results'/'pretrain.csv'))
    ap.add_argument('--one', type=int, help='(internal) run one measurement with this many threads')
    ap.add_argument('--nproc', type=int, default=1, help='(internal) training processes of that measurement')
    a = ap.parse_args(argv)
    if a.one is not None: print(json.dumps(one(a.one, a.steps, a.nproc))); return
    from vlm_nb.pretrain import BASE_WORKERS, PRETRAIN_TRAIN
    from vlm_nb.records import write_csv
    cores = len(os.sched_getaffinity(0))
    settings = [(BASE_WORKERS, 1, 'ACTIVE'), (1, 1, 'ACTIVE')] + ([(1, cores, 'ACTIVE'), (1, cores, 'PASSIVE')] if cores > 1 else [])  # (processes, threads, wait)
    runs, loads = {}, {}
    for _ in range(a.repeats):  # alternate settings so background load hits them alike
        for key in settings:
            n, th, wait = key
            loads.setdefault(key, []).append(os.getloadavg()[0])
            r = subprocess.run([sys.executable, __file__, '--one', str(th), '--nproc', str(n), '--steps', str(a.steps)], capture_output=True,
                               text=True, env={**ENV, 'OMP_WAIT_POLICY': wait})
            if r.returncode: raise RuntimeError(f"pre-training in {n} process(es) of {th} thread(s), {wait} waiting failed:\n{r.stderr[-4000:]}")
            runs.setdefault(key, []).append(json.loads(r.stdout.strip().splitlines()[-1])['samples_per_s'])
    total = PRETRAIN_TRAIN['max_steps'] * PRETRAIN_TRAIN['batch_size']
    rows = [dict(processes=n, threads=th, omp_wait_policy=wait, cores=cores, steps=a.steps, batch=PRETRAIN_TRAIN['batch_size'],
                 samples_per_s=round(max(v), 2), full_build_train_min=round(total / max(v) / 60, 2),
                 all_runs=' '.join(f'{x:.1f}' for x in v), load_avg_before=' '.join(f'{x:.2f}' for x in loads[(n, th, wait)]))
            for (n, th, wait), v in runs.items()]
    for r in rows: print(r, flush=True)
    write_csv(a.out, rows)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
