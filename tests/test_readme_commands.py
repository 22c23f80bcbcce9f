"""Every command the README shows in its `sh` blocks is checked here, so a README command that fails is a failing test.

Cheap commands run for real (`vlm_nb run` of the example notebook, `papermill --help-notebook`). Long ones are checked
for argument validity only: `make` targets with `make -n` (and `make reproduce`'s `vlm_nb reproduce` line with
`--dry-run`, which checks study, profile and notebooks and runs nothing), `vlm_nb run` of a training stage and
`vlm_nb reproduce` with `--dry-run` (notebook, parameter names and types), `vlm_nb figures` for real on a copy of a
recorded run (tests/fixtures/recorded_runs), `vlm_nb r3 eval` by parsing its flags
into the evaluation config, `vlm_nb data rebuild` by parsing its flags. A README command this file has no check
for fails `test_every_readme_command_is_checked`."""
import os, re, shlex
from pathlib import Path
import pytest
from conftest import ROOT, run_cmd

def readme_commands() -> list[str]:
    "Command lines of the README's sh code blocks, comments stripped"
    text = (ROOT/'README.md').read_text()
    out = []
    for block in re.findall(r'```sh\n(.*?)```', text, flags=re.S):
        for line in block.splitlines():
            line = re.split(r'\s+#\s', line, maxsplit=1)[0].strip()
            if line and not line.startswith('#'): out.append(line)
    return out

COMMANDS = readme_commands()

def _kind(cmd:str) -> str:
    a = shlex.split(cmd)
    if a[0] == 'make': return f'make {a[1]}'
    if a[0].endswith('/vlm_nb'): return f'vlm_nb {a[1]}' + (f' {a[2]}' if a[1] in ('r3', 'data') else '')
    if a[0].endswith('/papermill') and '--help-notebook' in a: return 'papermill --help-notebook'
    return cmd

CHECKED = {'make reproduce', 'make test', 'make lab', 'make bench', 'make docs', 'make models', 'vlm_nb run', 'vlm_nb reproduce', 'vlm_nb r3 eval',
           'vlm_nb data rebuild', 'vlm_nb figures', 'papermill --help-notebook'}

def test_readme_has_commands():
    assert len(COMMANDS) >= 8 and 'make reproduce' in COMMANDS, COMMANDS

def test_every_readme_command_is_checked():
    assert [c for c in COMMANDS if _kind(c) not in CHECKED] == []

def _of(kind): return [c for c in COMMANDS if _kind(c) == kind]

def _ok(r, what):
    assert r.returncode == 0, f"{what} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r

def test_make_targets_exist_and_reproduce_arguments_valid():
    for cmd in _of('make reproduce') + _of('make test') + _of('make bench') + _of('make lab') + _of('make docs') + _of('make models'):
        r = _ok(run_cmd(['make', '-n', *shlex.split(cmd)[1:]]), f'make -n for {cmd!r}')
        if 'reproduce' in cmd:
            line = next(l for l in r.stdout.splitlines() if 'vlm_nb reproduce' in l)
            _ok(run_cmd([*shlex.split(line), '--dry-run']), f'{line} --dry-run')
        if 'lab' in cmd:  # as root, JupyterLab refuses to start without --allow-root
            assert ('--allow-root' in r.stdout) == (os.geteuid() == 0), r.stdout
        if 'bench' in cmd: assert (ROOT/'bench'/'run.py').exists()
        if 'docs' in cmd: assert 'docs/build.py' in r.stdout and (ROOT/'docs'/'build.py').exists(), r.stdout  # built for real in test_docs
        if 'models' in cmd:
            line = next(l for l in r.stdout.splitlines() if 'vlm_nb models build' in l)
            _ok(run_cmd([*shlex.split(line), '--help']), f'{line} --help')
            _ok(run_cmd([shlex.split(line)[0], 'models', 'list', '--root', str(ROOT/'tests')]), 'vlm_nb models list')

def test_vlm_nb_run_commands(tmp_path):
    cmds = _of('vlm_nb run')
    assert cmds
    for cmd in cmds:
        a = shlex.split(cmd)
        if 'example' in a[2]:  # cheap: run it for real
            _ok(run_cmd([*a, '--runs-dir', tmp_path, '--no-progress'], timeout=300), cmd)
            assert len(list(tmp_path.glob('example/00_example-*/results.csv'))) == 1
        else:  # a training stage: notebook, parameter names and types only
            r = _ok(run_cmd([*a, '--dry-run']), cmd)
            assert 'would run' in r.stdout, r.stdout

def test_vlm_nb_reproduce_commands():
    for cmd in _of('vlm_nb reproduce'):
        r = _ok(run_cmd([*shlex.split(cmd), '--dry-run']), cmd)
        assert 'would run' in r.stdout and '.ipynb' in r.stdout, r.stdout

def test_vlm_nb_figures_commands(tmp_path):
    "Run for real on a copy of one recorded run (tests/fixtures/recorded_runs/r3): figures, tables and headline numbers"
    import shutil
    shutil.copytree(ROOT/'tests'/'fixtures'/'recorded_runs'/'r3', tmp_path/'runs'/'r3')
    cmds = _of('vlm_nb figures')
    assert cmds
    for cmd in cmds:
        r = _ok(run_cmd([*shlex.split(cmd), '--runs-dir', tmp_path/'runs', '--out', tmp_path/'figures']), cmd)
        assert {'corruption.png', 'corruption.pdf', 'corruption.csv', 'headline.csv'} <= {p.name for p in (tmp_path/'figures'/'r3').iterdir()}, r.stdout

def test_r3_eval_command_arguments():
    "The flags parse into the evaluation config (running it needs trained data and a model: a long step)"
    from vlm_nb.config import load_config
    from vlm_nb.studies.r3.study import parse_eval_args, stage_files
    for cmd in _of('vlm_nb r3 eval'):
        own, ov = parse_eval_args(shlex.split(cmd)[3:])
        cfg = load_config(own['profile'], *stage_files('stage5_full', own['profile']), *own['configs'], overrides=ov)
        assert cfg.r3.eval_mode in ('base', 'r3')
        if '--eval_mode' in cmd and 'base' in cmd: assert cfg.r3.eval_mode == 'base'  # no checkpoint needed
    r = _ok(run_cmd([ROOT/'.venv/bin/vlm_nb', 'r3', 'eval', '--help']), 'vlm_nb r3 eval --help')
    assert r.stdout.startswith('usage: vlm_nb r3 eval'), r.stdout

def test_data_rebuild_command_arguments():
    from vlm_nb.unified import parse_args
    for cmd in _of('vlm_nb data rebuild'):
        args = parse_args(shlex.split(cmd)[3:], prog='vlm_nb data rebuild')
        assert args.overrides == [] and vars(args), cmd

def test_papermill_help_notebook_commands():
    from vlm_nb.runner import notebook_parameters
    for cmd in _of('papermill --help-notebook'):
        a = shlex.split(cmd)
        r = _ok(run_cmd(a), cmd)
        nb = a[a.index('--help-notebook') + 1]
        for name, p in notebook_parameters(ROOT/nb).items():
            assert f"{name}: {p['inferred_type_name']}" in r.stdout, (name, r.stdout)
