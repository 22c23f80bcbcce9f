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
