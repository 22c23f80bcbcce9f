"""The vov study: unit checks of the policy's training pieces (straight-through estimator, cost accounting, random-matched
ratios, fallback, collapse warning), then the chain of vov-core experiment notebooks the tables depend on (00 data →
10 train → 11 λ sweep → 20 baselines → 70 oracle → 90 tables) in `vlm_nb reproduce` order at the smallest sizes, with
the spec's sanity checks read back from what they wrote. `VLM_NB_SLOW=1` runs every vov-core notebook (12 seeds, 30
generalization, 40 ablations, 50 fallback, 51 error slices, 61 cache reuse too: ~4 min on 2 cores); the whole study is
`vlm_nb reproduce --study vov`. The token-reduction notebooks (21-25, 60) have their own test, tests/test_vov_reduce.py."""
import json, math, os, warnings
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from vlm_nb.studies.vov.budget import render, VisionBudgetCfg
from vlm_nb.studies.vov.policy import PolicyCfg, apply_fallback
from vlm_nb.studies.vov.step import CollapseWarning, action_cost, action_weights, collapse_check, vov_objective
from vlm_nb.studies.vov.baselines import CONTRACT_COLUMNS, draw_action
from vlm_nb.runner import notebook_parameters, run_notebook, study_notebooks

def test_straight_through():
    torch.manual_seed(1)
    lg = torch.randn(6, 3, requires_grad=True)
    y = action_weights(lg, tau=0.5, straight_through=True)
    assert torch.equal(y, torch.nn.functional.one_hot(y.argmax(1), 3).float())  # hard forward
    L = torch.tensor([[3., 1., 0.5]]).repeat(6, 1)
    (y * L).sum().backward()
    assert (lg.grad.abs().sum(1) > 0).all()  # soft backward: every row's logits move
    lg.grad = None
    ys = action_weights(lg, tau=0.5, straight_through=False)
    assert not torch.equal(ys, torch.nn.functional.one_hot(ys.argmax(1), 3).float())

def test_cost_accounting():
    tok = torch.tensor([[0, 4, 49], [0, 4, 28]])
    assert torch.allclose(action_cost(tok), torch.tensor([[0, 4 / 49, 1], [0, 4 / 28, 1]]))
    # the expected cost is pi-weighted: a policy certain of NO pays nothing, one certain of FULL pays 1 per example
    pc = PolicyCfg(lambda_cost=1.0)
    for a, want in ((0, 0.0), (2, 1.0)):
        logits = torch.full((2, 3), -30.); logits[:, a] = 30.
        _, parts = vov_objective(logits, torch.zeros(2, 3), tok, pc)
        assert math.isclose(float(parts['exp_cost']), want, abs_tol=1e-6)
    from PIL import Image
    assert render(Image.new('RGB', (300, 150)), 'COARSE', VisionBudgetCfg()).size == (64, 32)

def test_random_matched_ratios():
    target = [0.5, 0.1, 0.4]
    d = np.bincount([draw_action(target, 7, f's{i}') for i in range(5000)], minlength=3) / 5000
    assert np.abs(d - target).max() < 0.025, d
    assert draw_action(target, 7, 's3') == draw_action(target, 7, 's3') and draw_action([1, 0, 0], 0, 'x') == 0

def test_fallback_and_collapse():
    a, trig = apply_fallback(torch.tensor([0, 0, 1, 0]), torch.tensor([2.0, 0.1, 2.0, 3.0]), torch.tensor([.1, .9, .1, .0]),
                             PolicyCfg(fallback_mode='coarse', fallback_entropy_threshold=1.0))
    assert a.tolist() == [1, 0, 1, 1] and trig.float().mean().item() == 0.5  # fallback_trigger_rate
    assert collapse_check([0.01, 0.01, 0.98], [1/3, 1/3, 1/3]) and collapse_check([0.01, 0.01, 0.98], [0, 0, 1]) is None
    from vlm_nb.studies.vov.step import VoVStep, _track
    st = VoVStep(None); st.pc = PolicyCfg(log_every=1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        _track(st, None, 0, torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 2, 2]))
    assert any(issubclass(x.category, CollapseWarning) for x in w) and st.rows[-1]['collapse'] == 1

# the smallest sizes, passed to a notebook only when its parameters cell declares the name
SMALL = dict(profile='tiny', seed=0, n_train=48, n_val=6, n_test=30, max_steps=4, stage1_steps=2, batch_size=4,
             lambdas=[0.0, 0.2, 2.0], key_lambda=0.2, fit_steps=60, seeds=[0, 1], random_seeds=[42],
             threshold_quantiles=[0.3, 0.7], modes=['full'], quantiles=[0.5], repeats=1, methods=['always_no'],
             build_base=False, overrides=['policy.log_every=1'])
ALL_CORE = ('00_', '10_', '11_', '12_', '20_', '30_', '40_', '50_', '51_', '61_', '70_', '90_')
CORE = ALL_CORE if os.environ.get('VLM_NB_SLOW') == '1' else ('00_', '10_', '11_', '20_', '70_', '90_')

@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "Run the vov-core notebooks like `vlm_nb reproduce --study vov --profile tiny`, with `SMALL` parameters"
    runs = tmp_path_factory.mktemp('runs')
    root = runs/'vov'/'tiny-test'
    figs = tmp_path_factory.mktemp('figures')
    # a random tiny VLM whose tokenizer knows the vov suite, in place of the pre-trained base (a clean clone has none)
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    d = tmp_path_factory.mktemp('base')
    texts = sample_texts(generate_suite('vov', d/'data', 60, seed=0, split='train', workers=1, show_progress=False))
    base = build_tiny_vlm(d/'model', list(texts) * 3, seed=0, vocab_size=400)
    small = {**SMALL, 'overrides': [*SMALL['overrides'], f'model.name_or_path={base}']}
    nbs = [nb for nb in study_notebooks('vov', ROOT) if nb.stem.startswith(CORE)]
    for nb in nbs:
        declared = notebook_parameters(nb)
        params = {k: v for k, v in small.items() if k in declared}
        if 'figures_dir' in declared: params['figures_dir'] = str(figs)
        run_notebook(nb, params, runs_dir=runs, output_dir=root/nb.stem, progress=False, progress_every=0)
    return dict(root=root, figs=figs/'vov', runs=runs, stems=[nb.stem for nb in nbs])

def test_every_core_notebook_ran(study):
    assert [s[:3] for s in study['stems']] == list(CORE), study['stems']

def test_contract_and_tables(study):
    root = study['root']
    for nb in [s for s in study['stems'] if not s.startswith(('51_', '90_'))]:
        df = pd.read_csv(root/nb/'results_contract.csv')
        assert list(df.columns[:len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS), (nb, list(df.columns))
        assert df['accuracy'].between(0, 1).all() and (df['avg_cost'] >= 0).all(), nb
    main = pd.read_csv(root/'90_tables_figures'/'main_table.csv')
    assert len(main) == sum(len(pd.read_csv(p)) for p in root.glob('*/results_contract.csv'))
    ar = pd.read_csv(root/'90_tables_figures'/'action_ratio.csv')
    full = ar[(ar.notebook == '20_policy_baselines') & (ar.baseline_name == 'always_full')].iloc[0]
    assert (full.action_rate_no, full.action_rate_coarse, full.action_rate_full) == (0, 0, 1)
    sweep = pd.read_csv(root/'11_lambda_sweep'/'results_contract.csv').sort_values('lambda_cost')
    assert sweep['avg_cost'].iloc[-1] <= sweep['avg_cost'].iloc[0] + 0.5, sweep[['lambda_cost', 'avg_cost']]
    ok = json.loads((root/'70_oracle'/'oracle_check.json').read_text())
    assert ok['oracle_accuracy'] >= ok['vov_accuracy'] and ok['oracle_cost_at_vov_accuracy'] <= ok['vov_cost']
    head = json.loads((root/'90_tables_figures'/'headline.json').read_text())
    assert {'goal_95pct_at_60pct', 'beats_random_matched', 'accuracy_ratio', 'cost_ratio'} <= set(head)
    rat = pd.read_csv(root/'10_train'/'run'/'action_ratios.csv')
    assert set(rat['stage']) == {1, 2} and {'action_rate_full', 'oracle_rate_full', 'collapse'} <= set(rat.columns)

def test_figures_redrawn(study):
    pngs = {p.stem for p in study['figs'].glob('*.png')}
    assert {'vov_pareto', 'vov_action_ratio', 'vov_profiling'} <= pngs, pngs
    from vlm_nb.figures import FIGURE_RECIPES  # what `vlm_nb figures --study vov` calls: from the recorded tables alone
    again = {p.stem for p in FIGURE_RECIPES.get('vov')(study['root'], study['figs'].parent/'redrawn'/'vov')}
    assert {'vov_pareto', 'vov_action_ratio', 'vov_train_ratios_10_train'} <= again, again
