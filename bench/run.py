"""Run every benchmark script `bench/bench_*.py`; each writes its CSV under bench/results/.
Usage: python bench/run.py [name-substring ...]"""
import subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).parent

def main(argv):
    (HERE/'results').mkdir(exist_ok=True)
    scripts = sorted(HERE.glob('bench_*.py'))
    if argv: scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    failed = []
    for s in scripts:
        t = time.perf_counter()
        print(f"[bench] {s.stem} ...", flush=True)
        r = subprocess.run([sys.executable, str(s)], cwd=HERE.parent)
        print(f"[bench] {s.stem}: {'ok' if r.returncode == 0 else 'FAILED'} in {time.perf_counter()-t:.1f}s", flush=True)
        if r.returncode: failed.append(s.stem)
    for f in sorted((HERE/'results').glob('*.csv')): print(f"[bench] wrote {f}")
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
