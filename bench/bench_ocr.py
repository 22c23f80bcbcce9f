"""OCR engines and the OCR cache build. Writes bench/results/ocr.csv with two kinds of rows:
- `accuracy`: each available engine / setting over the same synthetic images (ms per image on one thread,
  reading-order CER on the `ocr` suite, share of drawn strings found on every suite);
- `throughput`: `python -m vlm_nb.ocr build` images/s with one process and with 2 torchrun shards (one thread each),
  and one process with 2 threads; `--repeats` interleaved runs of each, the median paired speedup over one process,
  CPU time per image and the mean 1-minute load average (the machine's cores may be shared with other jobs).
Usage: python bench/bench_ocr.py [--n-ocr 24] [--n-other 12] [--n-vov 24] [--n-throughput 96] [--repeats 2] [--skip-accuracy] [--skip-throughput]"""
import argparse, os, re, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from vlm_nb.records import write_csv, read_csv, load_jsonl, write_jsonl
from vlm_nb.data.synth import generate_suite
from vlm_nb.ocr import make_engine, OCRSetupError, cer, string_recall

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
COLUMNS = ['kind', 'engine', 'settings', 'suite', 'n_images', 'ms_per_image', 'images_per_s', 'cer', 'recall',
           'processes', 'threads', 'speedup_vs_1proc', 'load_avg_1m', 'cores', 'note']
SETTINGS = [  # (engine, label, engine kwargs)
    ('rapidocr', 'rapidocr stock: min/736, cls on', dict(det_limit_type='min', det_limit_side_len=736, use_angle_cls=True)),
    ('rapidocr', 'min/320, cls off', dict(det_limit_type='min', det_limit_side_len=320)),
    ('rapidocr', 'max/960, cls on', dict(det_limit_type='max', det_limit_side_len=960, use_angle_cls=True)),
    ('rapidocr', 'max/960, cls off (default)', dict(det_limit_type='max', det_limit_side_len=960)),
    ('tesseract', 'psm 3 (default)', dict(psm=3)),
    ('tesseract', 'psm 11 (sparse text)', dict(psm=11)),
    ('paddleocr', 'local model dirs', dict()),
]

def load1(): return round(os.getloadavg()[0], 2)
def cores(): return len(os.sched_getaffinity(0))

def images_with_truth(root, suites_n, seed=1, split='test'):
    "[(suite, rel, drawn strings)] of the first sample of each image"
    out = []
    for s, n in suites_n:
        seen = set()
        for r in load_jsonl(generate_suite(s, root, n, seed=seed, split=split, workers=1, show_progress=False)):
            if r['image'] not in seen: seen.add(r['image']); out.append((s, r['image'], r['meta'].get('text') or []))
    return out

def accuracy_rows(root, items):
    "Every engine / setting on every image; images outer, settings inner, so load changes hit all settings alike"
    from PIL import Image
    rows, engines = [], []
    for name, label, kw in SETTINGS:
        try: engines.append((name, label, make_engine(name, num_threads=1, **kw)))
        except OCRSetupError as e:
            rows.append(dict(kind='accuracy', engine=name, settings=label, suite='all',
                             note='unavailable: ' + '; '.join(l.strip(' -') for l in str(e).splitlines()[1:] or [str(e)])))
            print(rows[-1], flush=True)
    per = {(name, label): {} for name, label, _ in engines}
    l0 = load1()
    for k, (s, rel, truth) in enumerate(items):
        img = Image.open(root/rel); img.load()
        for name, label, eng in engines:
            if k == 0: eng(img)  # warm-up
            t = time.perf_counter(); res = eng(img); dt = time.perf_counter() - t
            d = per[name, label].setdefault(s, dict(t=[], cer=[], rec=[]))
            d['t'].append(dt)
            if truth:
                d['rec'].append(string_recall(truth, res.text))
                if s == 'ocr': d['cer'].append(cer(' '.join(truth), res.text))
    l1 = load1()
    for (name, label), suites in per.items():
        allt = [x for d in suites.values() for x in d['t']]
        total = dict(t=allt, cer=suites.get('ocr', {}).get('cer', []), rec=[x for d in suites.values() for x in d['rec']])
        for s, d in [*suites.items(), ('all', total)]:
            rows.append(dict(kind='accuracy', engine=name, settings=label, suite=s, n_images=len(d['t']),
                             ms_per_image=round(1000*float(np.mean(d['t'])), 1), images_per_s=round(len(d['t'])/sum(d['t']), 2),
                             cer=round(float(np.mean(d['cer'])), 4) if d['cer'] else '', recall=round(float(np.mean(d['rec'])), 3) if d['rec'] else '',
                             processes=1, threads=1, load_avg_1m=max(l0, l1), cores=cores(),
                             note=f'{len(d["rec"])} images with drawn text' if s in ('vov', 'all') else ''))
        print(rows[-1], flush=True)
    return rows

SHARD = re.compile(r'shard (\d+)/(\d+): (\d+) images, (\d+) cached before, (\d+) read in ([\d.]+) s')

def timed_build(cmd, out):
    "Run one build; return (images read, seconds of the slowest shard's loop, wall seconds, CPU seconds of the children)"
    for f in out.parent.glob(out.stem + '*'): f.unlink()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN); t = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    wall = time.perf_counter() - t; ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode: raise RuntimeError(f"{cmd} failed:\n{r.stdout}\n{r.stderr}")
    shards = [m.groups() for m in SHARD.finditer(r.stdout)]
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return sum(int(g[4]) for g in shards), max(float(g[5]) for g in shards), wall, cpu

def throughput_rows(root, samples, n, repeats):
    "Each setup `repeats` times, interleaved (1 process, 2 shards, 1 process, ...) so that load changes hit them alike"
    out = root.parent/'tp'/'cache.jsonl'; out.parent.mkdir(exist_ok=True)
    base = ['build', '--jsonl', samples, '--image_root', root, '--out_path', out, '--no_progress']
    runs = [('1 process, 1 thread', 1, 1, [sys.executable, '-m', 'vlm_nb.ocr', *base, '--set', 'ocr.num_threads=1']),
            ('2 torchrun shards, 1 thread each', 2, 1, [BIN/'torchrun', '--standalone', '--nproc_per_node', '2', '-m', 'vlm_nb.ocr', *base, '--set', 'ocr.num_threads=1']),
            ('1 process, 2 threads', 1, 2, [sys.executable, '-m', 'vlm_nb.ocr', *base, '--set', 'ocr.num_threads=2'])]
    res = {label: [] for label, *_ in runs}
    for _ in range(repeats):
        for label, procs, threads, cmd in runs:
            l0 = load1(); got, secs, wall, cpu = timed_build(cmd, out)
            assert got == n, (got, n)
            res[label].append(dict(rate=got/secs, secs=secs, wall=wall, cpu=cpu, load=l0))
    one = res[runs[0][0]]
    rows = []
    for label, procs, threads, cmd in runs:
        rs = res[label]
        best = max(rs, key=lambda r: r['rate'])
        paired = float(np.median([r['rate'] / o['rate'] for r, o in zip(rs, one)]))
        ratios = ', '.join(f"{r['rate'] / o['rate']:.2f}" for r, o in zip(rs, one))
        rows.append(dict(kind='throughput', engine='rapidocr', settings='max/960, cls off (default)', suite='ocr+screens+charts',
                         n_images=n, ms_per_image=round(1000*best['secs']/n, 1), images_per_s=round(best['rate'], 2), processes=procs,
                         threads=threads, speedup_vs_1proc=round(paired, 2), load_avg_1m=round(float(np.mean([r['load'] for r in rs])), 2),
                         cores=cores(),
                         note=f"{label}; images/s of the best of {repeats} runs (loop time of the slowest shard; wall incl. start-up "
                              f"{best['wall']:.1f} s); speedup = median of the {repeats} interleaved paired ratios "
                              f"({ratios}); "
                              f"CPU {float(np.median([r['cpu'] for r in rs]))/n*1000:.0f} ms / image"))
        print(rows[-1], flush=True)
    return rows

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-ocr', type=int, default=24)
    ap.add_argument('--n-other', type=int, default=12, help='screens, charts and infographics items')
    ap.add_argument('--n-vov', type=int, default=24, help='vov items (one in three has printed text)')
    ap.add_argument('--n-throughput', type=int, default=96)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--skip-accuracy', action='store_true')
    ap.add_argument('--skip-throughput', action='store_true')
    ap.add_argument('--out', default=str(HERE/'results'/'ocr.csv'))
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if not a.skip_accuracy:
            items = images_with_truth(d/'acc', [('ocr', a.n_ocr)] + [(s, a.n_other) for s in ('screens', 'charts', 'infographics')] + [('vov', a.n_vov)])
            rows += accuracy_rows(d/'acc', items)
        if not a.skip_throughput:
            k = a.n_throughput
            parts = [generate_suite(s, d/'tp_images', n, seed=2, split='test', workers=1, show_progress=False)
                     for s, n in (('ocr', k // 2), ('screens', k // 4), ('charts', k - k // 2 - k // 4))]
            samples = write_jsonl(d/'tp_samples.jsonl', [r for p in parts for r in load_jsonl(p)])
            rows += throughput_rows(d/'tp_images', samples, k, a.repeats)
    if (a.skip_accuracy or a.skip_throughput) and Path(a.out).exists():  # keep the rows of the part not rerun
        skipped = {k for k, f in (('accuracy', a.skip_accuracy), ('throughput', a.skip_throughput)) if f}
        rows = [r for r in read_csv(a.out) if r['kind'] in skipped] + rows
    write_csv(a.out, rows, columns=COLUMNS)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
