"""A study plugs in from outside the package: the toy study in `tests/plugin_study/` (found through its
`vlm_nb.studies` entry point once that folder is on PYTHONPATH) registers a config section, a trainer hook, a
training step, an evaluation method, a figure recipe and a CLI command, and the shared entry points find
each by name; unknown names still get the nearest-name error. Every check runs in a fresh process, so
discovery starts from nothing, as for a user."""
import json, os
from pathlib import Path
import pytest
from conftest import BIN, ROOT, run_cmd

PLUGIN = ROOT/'tests'/'plugin_study'
ENV = {'PYTHONPATH': os.pathsep.join(p for p in (str(PLUGIN), os.environ.get('PYTHONPATH', '')) if p)}

CHECKS = r"""
import json, sys
from pathlib import Path
import pandas as pd
from vlm_nb.config import load_config
from vlm_nb.registry import discover_studies
from vlm_nb.train import STEPS, make_hooks
from vlm_nb.eval.matrix import make_method
from vlm_nb.figures import FIGURE_RECIPES, rebuild_figures
d, out = Path(sys.argv[1]), {}
(d/'toy.yaml').write_text('toy:\n  weight: 2.5\n  label: toy_v1\ntrain:\n  hooks: [toy]\n  step: toy\n')
cfg = load_config('tiny', d/'toy.yaml')  # the YAML names the section: discovery finds the toy study
out['section'] = [cfg.toy.weight, cfg.toy.label, type(cfg.toy).__module__]
out['hooks'] = [[type(h).__name__, h.weight] for h in make_hooks(cfg.train.hooks, cfg)]
out['step'] = STEPS.get(cfg.train.step, 'train.step').__name__
m = make_method('toy', None, None, cfg)
out['method'] = [m.name, m.settings]
run = d/'runs'/'toy'/'tiny-20260101-000000'/'10_eval'; run.mkdir(parents=True)
pd.DataFrame([dict(model='a', accuracy=0.5), dict(model='b', accuracy=0.7)]).to_csv(run/'results.csv', index=False)
out['figures'] = sorted(p.name for p in rebuild_figures(d/'runs', d/'figures')['toy'])
out['discovered'] = discover_studies()
errors = {'section': lambda: load_config('tiny', overrides=['toyy.weight=1']),
          'hook': lambda: make_hooks(['toyy'], cfg),
          'step': lambda: STEPS.get('toyy', 'train.step'),
          'method': lambda: make_method('toyy', None, None, cfg),
          'figure': lambda: FIGURE_RECIPES.get('toyy')}
for k, fn in errors.items():
    try: fn(); errors[k] = None
    except Exception as e: errors[k] = f'{type(e).__name__}: {e}'
out['errors'] = errors
print('RESULT ' + json.dumps(out, default=str))
"""

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('toy')
    r = run_cmd([BIN/'python', '-c', CHECKS, d], cwd=d, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(next(l for l in r.stdout.splitlines() if l.startswith('RESULT '))[len('RESULT '):])

def test_plugin_study_discovered_through_entry_point(toy):
    assert toy['discovered'].get('toystudy') == 'entry point toy', toy['discovered']

def test_plugin_config_section_from_yaml(toy):
    assert toy['section'] == [2.5, 'toy_v1', 'toystudy']

def test_plugin_trainer_hook_and_step(toy):
    assert toy['hooks'] == [['ToyHook', 2.5]]
    assert toy['step'] == 'ToyStep'

def test_plugin_eval_method(toy):
    assert toy['method'] == ['toy_v1', {'weight': 2.5}]

def test_plugin_figure_recipe(toy):
    assert toy['figures'] == ['toy_accuracy.pdf', 'toy_accuracy.png']

@pytest.mark.parametrize('what', ['section', 'hook', 'step', 'method', 'figure'])
def test_plugin_unknown_name_suggests_nearest(toy, what):
    err = toy['errors'][what]
    assert err is not None and "'toyy'" in err and "did you mean 'toy'?" in err, err

def test_plugin_cli_command():
    r = run_cmd([BIN/'vlm_nb', 'toy', 'hello', 'world'], env=ENV)
    assert r.returncode == 0 and r.stdout.strip() == 'toy says hello world', r.stdout + r.stderr
    r = run_cmd([BIN/'vlm_nb', '--help'], env=ENV)
    assert r.returncode == 0 and any(l.split()[:1] == ['toy'] and 'the toy study says hello' in l for l in r.stdout.splitlines()), r.stdout
    r = run_cmd([BIN/'vlm_nb', 'toyy'], env=ENV)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "unknown command 'toyy' (did you mean 'toy'?)" in r.stderr

def test_plugin_absent_without_path():
    "Without the folder on the path the toy study does not exist, and its command is an unknown one"
    r = run_cmd([BIN/'vlm_nb', 'toy'])
    assert r.returncode == 2 and "unknown command 'toy'" in r.stderr, r.stdout + r.stderr
