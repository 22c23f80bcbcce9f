"""Synthetic suite generation speed: items/s of each suite with 1 and 2 worker processes, and one run of the
tiny recipe's entries for these suites (train + val sizes) with 2 workers. Writes bench/results/synth.csv.
Usage: python bench/bench_synth.py [--n 200] [--suites charts vov] [--workers 1 2] [--no-recipe]"""
import argparse, tempfile, time
from pathlib import Path
from vlm_nb.records import write_csv
from vlm_nb.data.synth import generate_suite

HERE = Path(__file__).resolve().parent
SUITES = ('screens', 'charts', 'infographics', 'vov', 'ocr', 'ocr_rotated')
MINE = ('screens', 'charts', 'infographics', 'vov', 'ocr')  # the suites of vlm_nb.data.synth in the tiny recipe

def tiny_entries() -> list[tuple]:
    "(suite, split, n) of the tiny recipe's entries for this module's suites"
    try:
        from vlm_nb.data.recipe import load_recipe
        return [(e.suite, e.split, e.n) for e in load_recipe('tiny').entries if e.suite in MINE]
    except ImportError:  # recipe module absent: its sizes as of 2026-11
        return [(s, sp, n) for s in MINE for sp, n in (('train', 1500 if s == 'vov' else 1000), ('val', 200 if s == 'vov' else 150))]

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200, help='items per suite and worker count')
    ap.add_argument('--suites', nargs='*', default=list(SUITES))
    ap.add_argument('--workers', nargs='*', type=int, default=[1, 2])
    ap.add_argument('--no-recipe', action='store_true', help='skip the whole tiny-recipe run')
    ap.add_argument('--out', default=str(HERE/'results'/'synth.csv'))
    a = ap.parse_args(argv)
    rows = []
    def add(suite, n, workers, secs):
        rows.append(dict(suite=suite, n=n, workers=workers, seconds=round(secs, 3), items_per_s=round(n / secs, 1)))
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as d:
        for s in a.suites:
            for w in a.workers:
                add(s, a.n, w, timed(lambda: generate_suite(s, Path(d)/f'{s}_w{w}', a.n, seed=0, workers=w, show_progress=False)))
        if not a.no_recipe:
            root = Path(d)/'recipe'
            entries = tiny_entries()
            def recipe():
                for s, split, n in entries: generate_suite(s, root, n, seed=0, split=split, workers=2, show_progress=False)
            add(f"tiny_recipe({'+'.join(dict.fromkeys(e[0] for e in entries))})", sum(e[2] for e in entries), 2, timed(recipe))
    write_csv(a.out, rows, columns=['suite', 'n', 'workers', 'seconds', 'items_per_s'])
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
