"Killing a process while it rewrites results leaves the old file or the new one, never half a file"
import csv, io, json, os, signal, subprocess, sys, time
from pathlib import Path

WRITER = r'''
import sys, itertools
from vlm_nb.records import write_results
out = sys.argv[1]
for gen in itertools.count(1):
    rows = [{"gen": gen, "i": i, "text": "x" * 200} for i in range(5000)]
    write_results(out, rows, {"gen": gen, "n": len(rows)})
    print(gen, flush=True)
'''

def _check(out: Path):
    rows = list(csv.DictReader(io.StringIO((out/'results.csv').read_text())))
    assert len(rows) == 5000 and len({r['gen'] for r in rows}) == 1
    s = json.loads((out/'summary.json').read_text())
    assert s['n'] == 5000
    return int(rows[0]['gen']), s['gen']

def test_kill_during_result_writes(tmp_path):
    gens = []
    for trial in range(6):
        p = subprocess.Popen([sys.executable, '-c', WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        p.stdout.readline()                      # at least one complete generation exists
        time.sleep(0.05 + 0.037 * trial)         # then kill at varying points inside later writes
        p.send_signal(signal.SIGKILL); p.wait()
        csv_gen, summ_gen = _check(tmp_path)
        assert abs(csv_gen - summ_gen) <= 1      # the pair is at most one write apart
        gens.append(csv_gen)
    leftovers = [f.name for f in tmp_path.iterdir() if f.name not in ('results.csv', 'summary.json')]
    assert all(f.endswith('.tmp') for f in leftovers)  # only orphaned temp files, never a partial target
