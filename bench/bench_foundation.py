"""Foundation costs: config resolution, JSONL write/read, schema validation, papermill overhead."""
import json, tempfile, time
from pathlib import Path
import nbformat
from vlm_nb.config import load_config
from vlm_nb.records import write_jsonl, load_jsonl, write_csv, write_results
from vlm_nb.data.schema import read_samples
from vlm_nb.runner import run_notebook

def timeit(fn, repeat=3):
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best

rows = []
def add(name, n, secs, unit):
    rows.append(dict(bench=name, n=n, seconds=round(secs, 5), per_s=round(n / secs, 1) if secs else '', unit=unit))
    print(rows[-1], flush=True)

add('load_config', 100, timeit(lambda: [load_config('tiny', overrides=['train.learning_rate=1e-5']) for _ in range(100)]), 'configs')
N = 20000
recs = [dict(id=f'x/val/{i}', dataset='x', split='val', image=f'x/{i}.png', question='What is shown?', answer=str(i), answer_type='span')
        for i in range(N)]
with tempfile.TemporaryDirectory() as d:
    p = Path(d)/'a.jsonl'
    add('write_jsonl', N, timeit(lambda: write_jsonl(p, recs)), 'records')
    add('load_jsonl', N, timeit(lambda: load_jsonl(p)), 'records')
    add('read_samples(validate)', N, timeit(lambda: read_samples(p)), 'records')
    add('write_results(csv+json)', N, timeit(lambda: write_results(d, recs, {'n': N})), 'rows')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x: int = 1', metadata={'tags': ['parameters']})],
                                  metadata={'kernelspec': {'name': 'vlm_nb', 'language': 'python', 'display_name': 'vlm_nb'}})
    nbp = Path(d)/'experiments'/'b'/'empty.ipynb'; nbp.parent.mkdir(parents=True); nbformat.write(nb, nbp)
    add('run_notebook(empty)', 1, timeit(lambda: run_notebook(nbp, runs_dir=Path(d)/'runs', progress=False), repeat=2), 'notebooks')

out = Path('bench/results'); out.mkdir(parents=True, exist_ok=True)
write_csv(out/'foundation.csv', rows)
