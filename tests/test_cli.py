"CLI and papermill paths of the foundation: run, reproduce, failing notebooks, parameter help"
import json, shutil
from pathlib import Path
import nbformat, pytest
from conftest import BIN, ROOT, run_cmd

EXAMPLE = ROOT/'nbs/experiments/example/00_example.ipynb'

def test_vlm_nb_run_writes_executed_notebook_and_results(tmp_path):
    r = run_cmd([BIN/'vlm_nb', 'run', EXAMPLE, '-p', 'lr', '0.1', '-p', 'max_steps', '12', '--runs-dir', tmp_path, '--no-progress'], check=True)
    runs = list((tmp_path/'example').glob('00_example-*'))
    assert len(runs) == 1, r.stdout
    out = runs[0]
    assert (out/'00_example.ipynb').exists()
    md = json.loads((out/'run_metadata.json').read_text())
    assert md['config']['train']['learning_rate'] == 0.1 and md['config']['train']['max_steps'] == 12
    assert md['status'] == 'ok' and md['end_time'] and md['git']['commit'] is not None
    assert len((out/'results.csv').read_text().splitlines()) == 13  # header + 12 steps
    assert json.loads((out/'summary.json').read_text())['run_metadata'] == 'run_metadata.json'
    assert (out/'loss.png').stat().st_size > 1000

def test_papermill_cli_and_help(tmp_path):
    out = tmp_path/'out.ipynb'
    run_cmd([BIN/'papermill', EXAMPLE, out, '-p', 'max_steps', '5', '-p', 'output_dir', str(tmp_path/'run'), '-k', 'vlm_nb'], check=True)
    assert len((tmp_path/'run'/'results.csv').read_text().splitlines()) == 6
    h = run_cmd([BIN/'papermill', '--help-notebook', EXAMPLE], check=True).stdout
    assert 'lr: float (default 0.05)' in h and 'train.learning_rate: SGD learning rate' in h
    assert 'max_steps: int (default 60)' in h

def _failing_nb(path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile: str = "tiny"  # config profile', metadata={'tags': ['parameters']}),
        nbformat.v4.new_code_cell('x = 1'),
        nbformat.v4.new_code_cell('raise RuntimeError("boom in cell two")')],
        metadata={'kernelspec': {'name': 'vlm_nb', 'language': 'python', 'display_name': 'vlm_nb'}})
    path.parent.mkdir(parents=True, exist_ok=True); nbformat.write(nb, path)
    return path

def test_run_failing_notebook_exits_nonzero_naming_cell(tmp_path):
    nb = _failing_nb(tmp_path/'experiments'/'bad'/'00_bad.ipynb')
    r = run_cmd([BIN/'vlm_nb', 'run', nb, '--runs-dir', tmp_path/'runs', '--no-progress'])
    assert r.returncode == 1
    assert "cell 2 (raise RuntimeError" in r.stderr and 'boom in cell two' in r.stderr

def test_unknown_parameter_and_study(tmp_path):
    r = run_cmd([BIN/'vlm_nb', 'run', EXAMPLE, '-p', 'lrr', '1', '--runs-dir', tmp_path])
    assert r.returncode == 1 and "unknown parameter 'lrr' (did you mean 'lr'?)" in r.stderr
    r = run_cmd([BIN/'vlm_nb', 'reproduce', '--study', 'exampel', '--runs-dir', tmp_path])
    assert r.returncode == 1 and "did you mean 'example'" in r.stderr

def test_reproduce_example(tmp_path):
    r = run_cmd([BIN/'vlm_nb', 'reproduce', '--study', 'example', '--profile', 'tiny', '--runs-dir', tmp_path, '--no-progress'], check=True)
    nbs = list((tmp_path/'example').glob('tiny-*/00_example/00_example.ipynb'))
    assert len(nbs) == 1, r.stdout
    executed = nbformat.read(nbs[0], as_version=4)
    assert any(o.get('output_type') == 'display_data' and 'image/png' in o.get('data', {})
               for c in executed.cells for o in c.get('outputs', [])), 'figure not shown inline'
    assert (ROOT/'figures/example/loss.png').exists()

def test_kernel_registered_when_missing():
    from jupyter_client.kernelspec import KernelSpecManager
    from vlm_nb.runner import ensure_kernel
    name = 'vlm-nb-test-kernel'
    ksm = KernelSpecManager()
    if name in ksm.find_kernel_specs(): ksm.remove_kernel_spec(name)
    try:
        assert ensure_kernel(name) == name
        assert name in KernelSpecManager().find_kernel_specs()
    finally: KernelSpecManager().remove_kernel_spec(name)

def test_help_lists_every_command_and_unknown_names_nearest():
    r = run_cmd([BIN/'vlm_nb', '--help'], check=True)
    listed = {l.split()[0]: l for l in r.stdout.splitlines() if l.startswith('  ') and l.split()}
    for cmd in ('run', 'reproduce', 'data', 'ocr', 'retrieval', 'train', 'figures', 'r3'):  # built-in, shared modules', a study's
        assert cmd in r.stdout, (cmd, r.stdout)
    for cmd in ('ocr', 'retrieval', 'train', 'figures', 'r3'):
        assert cmd in listed and len(listed[cmd].split()) > 1, (cmd, listed.get(cmd))  # with its help line
    r = run_cmd([BIN/'vlm_nb', 'figurs', '--study', 'x'])
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "unknown command 'figurs' (did you mean 'figures'?)" in r.stderr
    r = run_cmd([BIN/'vlm_nb', 'figures', '--runs-dir', 'no/such/runs'])
    assert r.returncode == 1 and 'no runs folder' in r.stderr, r.stderr

# --- issue 18: one-line errors, help, arguments checked before a run ---

def _main(argv, capsys):
    "exit status, stdout and stderr lines of `vlm_nb.cli.main(argv)` in this process (argparse's exits included)"
    from vlm_nb.cli import main
    try: rc = main(argv)
    except SystemExit as e: rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err.strip().splitlines()

@pytest.mark.parametrize('argv, want', [
    (['train', 'train.learnin_rate=1'], "unknown key 'train.learnin_rate' (did you mean 'learning_rate'?)"),
    (['train', '--config', 'no/such/bad.yaml'], 'config file not found: no/such/bad.yaml'),
    (['train', '--profile', 'tnyi'], "unknown profile 'tnyi' (did you mean 'tiny'?)"),
    (['r3', 'stage', 'nosuch'], "unknown r3 stage 'nosuch'"),
    (['r3', 'eval', '--checkpoint_dir', 'nosuch/step_3'], 'nosuch/step_3'),
    (['run', 'nbs/experiments/example'], 'is a folder, not a notebook (00_example.ipynb)'),
    (['run', str(EXAMPLE), '-p', 'n_points', 'abc'], "parameter 'n_points' is int, got 'abc'"),
    (['data', 'check-leakage', '--data-root', 'no/such/data'], 'no manifest, so no prepared data to check'),
    (['reproduce', '--study', 'nosuchstudy'], "unknown study 'nosuchstudy'"),
])
def test_ordinary_mistakes_are_one_line_exit_1(argv, want, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, err = _main(argv, capsys)
    assert rc == 1 and len(err) == 1 and err[0].startswith('[vlm_nb] error: ') and want in err[0], (rc, err)

def test_a_bug_keeps_its_traceback(capsys):
    from vlm_nb.cli import one_line_errors
    with pytest.raises(TypeError): one_line_errors(lambda argv: 1 + None, [])

PLANNED = {'holo': 'holographic scene QA'}  # a made-up planned study: real ones leave the list when they land

def test_planned_study_and_bad_arguments_make_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr('vlm_nb.cli.planned_studies', lambda path=None: PLANNED)
    for argv, want in ((['--study', 'holo'], 'is planned, not built yet; studies that run: '),
                       (['--study', 'example', '--only', 'zz'], "--only 'zz' matches no notebook of study 'example'"),
                       (['--study', 'example', '--profile', 'tnyi'], "unknown profile 'tnyi'")):
        rc, out, err = _main(['reproduce', *argv, '--runs-dir', str(tmp_path)], capsys)
        assert rc == 1 and len(err) == 1 and want in err[0], err
    assert list(tmp_path.iterdir()) == []

@pytest.mark.parametrize('argv, usage', [(['r3', '--help'], 'usage: vlm_nb r3 stage'), (['r3', 'eval', '--help'], 'usage: vlm_nb r3 eval'),
                                         (['r3', 'stage', '--help'], 'usage: vlm_nb r3 stage'), (['ocr', '--help'], 'usage: vlm_nb ocr'),
                                         (['retrieval', '--help'], 'usage: vlm_nb retrieval'), (['train', '--help'], 'usage: vlm_nb train'),
                                         (['reproduce', '--help'], 'usage: vlm_nb reproduce')])
def test_help_of_every_command_names_it_and_exits_0(argv, usage, capsys):
    rc, out, err = _main(argv, capsys)
    assert rc == 0 and out.startswith(usage) and 'python -m' not in out.split('\n')[0], (rc, out[:300], err)

def test_reproduce_help_lists_studies_and_profiles(capsys, monkeypatch):
    monkeypatch.setattr('vlm_nb.cli.planned_studies', lambda path=None: PLANNED)
    rc, out, _ = _main(['reproduce', '--help'], capsys)
    text = ' '.join(out.split())
    for word in ('example', 'r3', 'tiny', 'paper', 'planned, not built yet: holo'): assert word in text, (word, text)
    rc, out, _ = _main(['run', '--help'], capsys)
    for opt in ('--runs-dir', '--name', '--output-dir', '--no-progress', '--parameter'):
        line = next(l for l in out.splitlines() if opt in l)
        assert len(' '.join(out.split(opt, 1)[1].split('\n  -')[0].split())) > 10, (opt, out)  # each option has help text
