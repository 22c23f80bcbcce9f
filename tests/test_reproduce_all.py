"""`reproduce_all` / `--resume` on a two-notebook study in a scratch repository: the second notebook fails, the
study is resumed in the same run folder (the finished notebook is skipped, the failed one runs again there), a
second resume runs nothing; the summary table lists the study's headline number with a link to its run folder,
also after the failure. The stage and evaluation caches that a resumed notebook reuses are tested with the trainer
(tests/test_train_step.py) and the evaluation core (tests/test_eval_resume.py)."""
import json
from pathlib import Path
import nbformat
import pytest
from vlm_nb.figures import headline_recipe
from vlm_nb.runner import NotebookFailed, reproduce_all, study_runs, notebook_status

STUDY = 'resume_demo'

PARAMS = 'profile: str = "tiny"  # config profile\noutput_dir: str = ""  # run folder'
NB_A = """from pathlib import Path
root = Path(output_dir).parent
with open(root/'a_runs.txt', 'a') as f: f.write('a\\n')"""
NB_B = """import json
from pathlib import Path
root = Path(output_dir).parent
with open(root/'b_tries.txt', 'a') as f: f.write('b\\n')
assert (root/'go').exists(), 'not yet'
(Path(output_dir)/'summary.json').write_text(json.dumps({'accuracy': 0.75, 'n': 8}))"""

def _nb(path:Path, code:str):
    cells = [nbformat.v4.new_code_cell(PARAMS, metadata={'tags': ['parameters']}), nbformat.v4.new_code_cell(code)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'vlm_nb', 'language': 'python', 'display_name': 'vlm_nb'}}), path)

@headline_recipe(STUDY)
def _headline(run_dir):
    "the accuracy notebook 10_b recorded"
    f = Path(run_dir)/'10_b'/'summary.json'
    if not f.exists(): return []
    s = json.loads(f.read_text())
    return [dict(setting='demo', metric='accuracy', value=s['accuracy'], n=s['n'], source='10_b/summary.json')]

@pytest.fixture
def repo(tmp_path):
    (tmp_path/'settings.ini').write_text('[DEFAULT]\nlib_name = scratch\n')
    d = tmp_path/'nbs'/'experiments'/STUDY; d.mkdir(parents=True)
    _nb(d/'00_a.ipynb', NB_A); _nb(d/'10_b.ipynb', NB_B)
    return tmp_path

def test_resume_continues_the_interrupted_study(repo):
    runs = repo/'runs'
    with pytest.raises(NotebookFailed, match='not yet'):
        reproduce_all([STUDY], runs_dir=runs, progress=False, root=repo)
    (run,) = study_runs(STUDY, runs)
    assert (notebook_status(run, '00_a'), notebook_status(run, '10_b')) == ('ok', 'failed')
    md = (runs/'summary.md').read_text()   # written after the failure too, saying how far it got
    assert f'[{run.name}]({STUDY}/{run.name}/)' in md and 'failed in 10_b' in md, md

    (run/'go').write_text('')
    outs = reproduce_all([STUDY], runs_dir=runs, resume=True, progress=False, root=repo)[STUDY]
    assert study_runs(STUDY, runs) == [run] and [o.parent for o in outs] == [run/'00_a', run/'10_b']
    assert (run/'a_runs.txt').read_text() == 'a\n' and (run/'b_tries.txt').read_text() == 'b\nb\n'   # 00_a skipped, 10_b again
    assert (notebook_status(run, '00_a'), notebook_status(run, '10_b')) == ('ok', 'ok')
    csv = (runs/'summary.csv').read_text().splitlines()
    assert csv[0].startswith('study,run,status,notebooks,minutes,setting,metric,value,ci_low,ci_high,n,'), csv[0]
    assert csv[1].startswith(f'{STUDY},{STUDY}/{run.name},ok,2/2,') and ',demo,accuracy,0.75,,,8,' in csv[1], csv[1]
    assert f'| {STUDY} | [{run.name}]({STUDY}/{run.name}/) | ok |' in (runs/'summary.md').read_text()

    reproduce_all([STUDY], runs_dir=runs, resume=True, progress=False, root=repo)   # finished: nothing runs again
    assert (run/'b_tries.txt').read_text() == 'b\nb\n' and len(study_runs(STUDY, runs)) == 1
