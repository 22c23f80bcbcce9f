"Interrupted, failed and killed `vlm_nb run`s: short output, honest statuses, progress lines on the terminal"
import json, os, re, signal, subprocess, sys, time
from pathlib import Path
import nbformat, pytest
from conftest import BIN, ROOT
from vlm_nb.records import pid_alive, run_status

def _notebook(path, *cells):
    "An experiment notebook with an `output_dir` parameter and `cells`"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("output_dir: str = ''  # run folder", metadata={'tags': ['parameters']}),
        *[nbformat.v4.new_code_cell(c) for c in cells]],
        metadata={'kernelspec': {'name': 'vlm_nb', 'language': 'python', 'display_name': 'vlm_nb'}})
    path.parent.mkdir(parents=True, exist_ok=True); nbformat.write(nb, path)
    return path

SUB_RUN = ("import os, pathlib\nfrom vlm_nb.config import load_config\nfrom vlm_nb.records import start_run\n"
           "sub = start_run(load_config('tiny'), pathlib.Path(output_dir)/'sub')  # a run inside the notebook, left running")
def _sleep_cell(ignore_sigint=False):
    return ("import signal, time\n" + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignore_sigint else "")
            + "pathlib.Path(output_dir, 'sleeping').write_text(str(os.getpid()))\ntime.sleep(120)")

def _start(nb, out, env=None):
    return subprocess.Popen([BIN/'vlm_nb', 'run', nb, '--output-dir', out, '--no-progress'], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})

def _wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f'{path} not written'
        time.sleep(0.1)
    return int(path.read_text())

def _statuses(nb_out):
    return [c.metadata.get('papermill', {}).get('status') for c in nbformat.read(nb_out, as_version=4).cells
            if 'injected-parameters' not in c.metadata.get('tags', []) and c.cell_type == 'code']

def _check_interrupted(p, out, t0):
    stdout, stderr = p.communicate(timeout=30)
    lines = (stdout + stderr).strip().splitlines()
    assert p.returncode == 130, (p.returncode, stdout, stderr)  # the shell's code for Ctrl-C (communicate above fails a hang)
    assert len(lines) <= 2 and 'Traceback' not in stderr and 'ZMQError' not in stderr, stdout + stderr
    nb_out = out/'00_sleep.ipynb'
    assert 'interrupted' in stderr and 'cell 2 (import signal, time)' in stderr and str(nb_out) in stderr, stderr
    for folder in (out, out/'sub'):  # the run folder and the run the notebook started
        md = json.loads((folder/'run_metadata.json').read_text())
        assert run_status(folder) == 'interrupted' and md['end_time'], md
        assert md['failed_cell'] == 'cell 2 (import signal, time)', md
    assert json.loads((out/'sub'/'run_metadata.json').read_text())['runner']['pid'] == p.pid
    st = _statuses(nb_out)  # parameters, sub-run, sleep, never run
    assert st[:2] == ['completed', 'completed'] and st[2] in ('failed', 'interrupted') and st[3] == 'pending', st
    assert not nbformat.read(nb_out, as_version=4).cells[-1].get('outputs'), 'a never-run cell has outputs'

def test_ctrl_c_stops_the_kernel_cell_and_says_so_in_one_line(tmp_path):
    nb = _notebook(tmp_path/'experiments'/'demo'/'00_sleep.ipynb', SUB_RUN, _sleep_cell(), "print('after')")
    out, t0 = tmp_path/'run', time.time()
    p = _start(nb, out)
    _wait_for(out/'sleeping', p)
    assert run_status(out) == 'running' and run_status(out/'sub') == 'running'
    p.send_signal(signal.SIGINT)
    _check_interrupted(p, out, t0)

def test_second_ctrl_c_stops_a_kernel_that_ignores_the_first(tmp_path):
    nb = _notebook(tmp_path/'experiments'/'demo'/'00_sleep.ipynb', SUB_RUN, _sleep_cell(ignore_sigint=True), "print('after')")
    out, t0 = tmp_path/'run', time.time()
    p = _start(nb, out)
    kernel = _wait_for(out/'sleeping', p)
    p.send_signal(signal.SIGINT); time.sleep(1.5)
    assert p.poll() is None  # still waiting for the kernel
    p.send_signal(signal.SIGINT)
    _check_interrupted(p, out, t0)
    t = time.time()
    while pid_alive(kernel) and time.time() - t < 10: time.sleep(0.2)
    assert not pid_alive(kernel), 'the kernel outlived the runner'

def test_killed_runner_reads_dead_not_running(tmp_path):
    nb = _notebook(tmp_path/'experiments'/'demo'/'00_sleep.ipynb', SUB_RUN, _sleep_cell())
    out = tmp_path/'run'
    p = _start(nb, out)
    kernel = _wait_for(out/'sleeping', p)
    assert run_status(out) == 'running'
    p.kill(); p.communicate(timeout=30)
    assert run_status(out) == 'dead' and run_status(out/'sub') == 'dead'
    assert json.loads((out/'run_metadata.json').read_text())['status'] == 'running'  # nobody could write
    t = time.time()
    while pid_alive(kernel) and time.time() - t < 15: time.sleep(0.2)  # the kernel follows its parent
    assert not pid_alive(kernel)

PROGRESS_NB = (
    "import sys, time, pathlib\nfrom vlm_nb.records import progress\n"
    "bar = progress(total=12, desc='steps')\n"
    "for i in range(12):\n    time.sleep(0.25); bar.update(1); bar.set_postfix(loss=1/(i+1))\nbar.close()",
    "from vlm_nb.launch import launch\n"
    "w = pathlib.Path(output_dir)/'w.py'\n"
    "w.write_text('import time\\nfrom vlm_nb.launch import progress_line\\n'\n"
    "             'for i in range(1, 11): time.sleep(0.25); print(progress_line(i, 10, loss=2/i), flush=True)\\n')\n"
    "launch(script=str(w), launcher='none', device='cpu', log_dir=pathlib.Path(output_dir)/'logs', desc='worker')")

def test_progress_inside_the_notebook_reaches_the_runner_terminal(tmp_path):
    nb = _notebook(tmp_path/'experiments'/'demo'/'00_prog.ipynb', *PROGRESS_NB)
    p = _start(nb, tmp_path/'run', env={'VLM_NB_PROGRESS_EVERY': '0.5'})
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stdout + stderr
    bar = re.findall(r'^\[vlm_nb\] 00_prog: steps (\d+)/12 \(\d+%\) loss=[\d.]+ \| \d+s, (?:ETA \d+s|done)$', stderr, re.M)
    work = re.findall(r'^\[vlm_nb\] 00_prog: worker (\d+)/10 \(\d+%\) loss=[\d.]+ \| \d+s(?:, ETA \d+s|, done)?$', stderr, re.M)
    assert len(bar) >= 2 and bar[-1] == '12', stderr  # lines while it runs and when it ends
    assert len(work) >= 2 and work[-1] == '10', stderr
    assert 'ETA' in stderr
    r = subprocess.run([BIN/'vlm_nb', 'run', nb, '--output-dir', tmp_path/'quiet', '--no-progress'], cwd=ROOT, text=True,
                       capture_output=True, env={**os.environ, 'VLM_NB_PROGRESS_EVERY': '0'})
    assert r.returncode == 0 and '00_prog: ' not in r.stderr, r.stderr  # 0 turns the lines off
