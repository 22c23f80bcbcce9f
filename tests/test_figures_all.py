"""`vlm_nb figures --all` rebuilds every study's figures (PNG + PDF), the tables beside them (CSV) and its headline
numbers (`headline.csv`) from recorded runs alone (`tests/fixtures/recorded_runs`, see its README): no torch module is
ever constructed (so no model is built or loaded), every figure has axis labels in words, a legend where it shows
several series and intervals where its numbers have them, and deleting the output folder and redrawing it in a new
process gives the same bytes."""
import hashlib, json, shutil
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run_cmd

RUNS = ROOT/'tests'/'fixtures'/'recorded_runs'
STUDIES = sorted(p.name for p in RUNS.iterdir() if p.is_dir())

NO_MODEL = """import sys, torch
def _no_model(*a, **k): raise RuntimeError('a torch module was built while redrawing figures')
torch.nn.Module.__init__ = _no_model
"""

INSPECT = NO_MODEL + """import json
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from vlm_nb.figures import rebuild_all
res = rebuild_all(sys.argv[1], sys.argv[2])
out = {}
for s, r in res.items():
    figs = []
    for f in r['figures']:
        axes = [a for a in f.axes if a.has_data()]
        series = [a for a in axes if len([h for h in a.get_legend_handles_labels()[1] if not h.startswith('_')]) > 1]
        tab = getattr(f, 'data_table', None)
        figs.append(dict(name=f.saved[0].stem, xlabels=[a.get_xlabel() for a in axes], ylabels=[a.get_ylabel() for a in axes],
                         series_without_legend=bool(series) and not f.legends and not any(a.get_legend() for a in f.axes),
                         intervals=sum(isinstance(c, ErrorbarContainer) for a in axes for c in a.containers)
                                   + sum(isinstance(c, PolyCollection) for a in axes for c in a.collections),
                         table_has_ci=tab is not None and 'ci_low' in tab.columns and bool(tab['ci_low'].notna().any())))
    out[s] = dict(files=[str(p) for p in r['files']], figures=figs, headline=r['headline'])
print('JSON' + json.dumps(out, default=str))
"""

CLI = NO_MODEL + """from vlm_nb.cli import main
sys.exit(main(sys.argv[1:]))
"""

def _digest(folder:Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def drawn(tmp_path_factory):
    "Every study's figures drawn once from the recorded runs, with what each figure shows"
    figs = tmp_path_factory.mktemp('redraw')/'figures'
    r = run_cmd([BIN/'python', '-c', INSPECT, RUNS, figs], check=True, timeout=300)
    info = json.loads(r.stdout.split('JSON', 1)[1])
    return dict(figs=figs, info=info, first=_digest(figs))

def test_every_study_gets_figures_tables_and_headline(drawn):
    assert sorted(drawn['info']) == STUDIES == ['ocr', 'r3', 'reasoning'], drawn['info'].keys()
    for s in STUDIES:
        names = {Path(p).name for p in drawn['info'][s]['files']}
        assert {Path(p).parent for p in drawn['info'][s]['files']} == {drawn['figs']/s}, s
        for ext in ('png', 'pdf', 'csv'): assert any(n.endswith(f'.{ext}') for n in names), (s, ext, names)
        assert 'headline.csv' in names and drawn['info'][s]['headline'], s
        for png in (n for n in names if n.endswith('.png')): assert png[:-4] + '.pdf' in names, (s, png)
    assert {'ocr_model_comparison.png', 'ocr_limits.png', 'ocr_limits.csv'} <= {Path(p).name for p in drawn['info']['ocr']['files']}
    assert {'aime_pass_at_k.png', 'aime_pass_at_k.csv', 'grpo_rewards.png'} <= {Path(p).name for p in drawn['info']['reasoning']['files']}
    assert {'corruption.png', 'corruption.csv', 'clean_accuracy.png'} <= {Path(p).name for p in drawn['info']['r3']['files']}

def test_headline_numbers_match_the_recorded_results(drawn):
    ocr = {(h['setting'], h['metric']): h for h in drawn['info']['ocr']['headline']}
    rec = {r.split(',')[0]: r.split(',') for r in (next(RUNS.glob('ocr/*/ocr_model_comparison.csv'))).read_text().splitlines()[1:]}
    assert ocr[('lora', 'CER (corpus)')]['value'] == float(rec['lora'][3]) and ocr[('lora', 'CER (corpus)')]['n'] == int(rec['lora'][2])
    cmp = json.loads(next(RUNS.glob('reasoning/*/20_eval_aime/aime_model_comparison.json')).read_text())
    rs = {(h['setting'], h['metric']): h for h in drawn['info']['reasoning']['headline']}
    for m, v in cmp['models'].items():
        assert (rs[(m, 'pass@1')]['value'], [rs[(m, 'pass@1')]['ci_low'], rs[(m, 'pass@1')]['ci_high']]) == (v['accuracy'], v['accuracy_ci'])

def test_figures_have_labels_legends_and_intervals(drawn):
    for s in STUDIES:
        for f in drawn['info'][s]['figures']:
            assert any(drawn['info'][s]['figures']), s
            assert any(x.strip() for x in f['xlabels']) and any(y.strip() for y in f['ylabels']), (s, f)
            assert not any('_' in l for l in f['xlabels'] + f['ylabels']), (s, f)   # words, not column names
            assert not f['series_without_legend'], (s, f)   # several series: a legend (one for all panels is enough)
            if f['table_has_ci']: assert f['intervals'] > 0, (s, f)   # numbers with intervals are drawn with them
    with_ci = [f['name'] for s in STUDIES for f in drawn['info'][s]['figures'] if f['intervals']]
    assert {'corruption', 'clean_accuracy', 'ocr_model_comparison', 'ocr_limits', 'aime_pass_at_k'} <= set(with_ci), with_ci

def test_delete_and_redraw_is_byte_identical(drawn):
    "figures/ deleted, then redrawn by the command in a fresh process: the same files with the same bytes"
    shutil.rmtree(drawn['figs'])
    r = run_cmd([BIN/'python', '-c', CLI, 'figures', '--all', '--runs-dir', RUNS, '--out', drawn['figs']], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for s in STUDIES: assert f"[vlm_nb] {s}: " in r.stdout and ' PNG, ' in r.stdout, r.stdout
    again = _digest(drawn['figs'])
    assert sorted(again) == sorted(drawn['first'])
    assert [k for k in again if again[k] != drawn['first'][k]] == []
