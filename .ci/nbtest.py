"""Run `nbdev_test` on every notebook, each in a process of its own, `--jobs` at a time.

Notebooks define classes that register themselves in process-wide registries (config sections, trainer hooks,
evaluation methods); when `nbdev_test` runs several notebooks in one worker process, one notebook's copy of a
class replaces the library's for the notebooks after it. One process per notebook keeps every run honest."""
import argparse, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def notebooks(root:Path) -> list[Path]:
    "Notebooks under `root`, skipping files and folders that start with '_' or '.' (nbdev's default)"
    return sorted(p for p in root.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(root).parts))

def run(nb:Path, flags:str) -> tuple[Path, int, float, str]:
    t0 = time.time()
    cmd = [str(Path(sys.executable).parent/'nbdev_test'), '--path', str(nb), '--n_workers', '0'] + (['--flags', flags] if flags else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    return nb, r.returncode, time.time() - t0, r.stdout + r.stderr

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--jobs', type=int, default=2); ap.add_argument('--flags', default=''); ap.add_argument('--root', default='nbs')
    a = ap.parse_args()
    nbs, failed = notebooks(Path(a.root)), []
    with ThreadPoolExecutor(a.jobs) as ex:
        for nb, rc, secs, out in ex.map(lambda n: run(n, a.flags), nbs):
            print(f"{'ok  ' if rc == 0 else 'FAIL'} {secs:6.1f}s  {nb}", flush=True)
            if rc: failed.append(nb); print(out[-6000:], flush=True)
    print(f"{len(nbs) - len(failed)}/{len(nbs)} notebooks passed" + (f"; failed: {', '.join(map(str, failed))}" if failed else ''))
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
