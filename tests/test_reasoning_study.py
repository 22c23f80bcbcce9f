"""The reasoning study end to end at the smallest sizes: every experiment notebook of `nbs/experiments/reasoning/` in
`vlm_nb reproduce` order and folder layout, with small papermill parameters; then the AIME reports, the model
comparison and the figures (also redrawn by `vlm_nb figures` from the recorded results alone) are checked."""
import json, math
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run_cmd
from vlm_nb.runner import notebook_parameters, run_notebook, study_notebooks

# the smallest sizes, passed to each notebook only when its parameters cell declares the name
SMALL = dict(profile='tiny', seed=0,
             max_steps=2, sft_max_steps=2, grpo_max_steps=2, n_train=16, n_val=4, num_generations=2, max_completion_length=12,
             docs_per_format=1, num_pairs=1,  # qa generation
             num_samples=2, n_per_suite=3, max_new_tokens=12)  # AIME evaluation

@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "Run every notebook of the study like `vlm_nb reproduce --study reasoning --profile tiny`, with `SMALL` parameters"
    runs = tmp_path_factory.mktemp('runs')
    root = runs/'reasoning'/'tiny-20260101-000000'  # the `<profile>-<stamp>` folder `vlm_nb reproduce` makes (`study_runs`)
    figs = tmp_path_factory.mktemp('figures')
    # a random tiny LLM in place of the pre-trained maths LLM (data/models/tiny-qwen3-math: about 4 min to build)
    from vlm_nb.studies.reasoning.grpo import math_family, tiny_math_llm
    d = tmp_path_factory.mktemp('base')
    base = tiny_math_llm(d/'llm', [math_family(d/'data', 48, 'train', '')], seed=0, vocab_size=400)
    small = {**SMALL, 'base_model': str(base)}
    nbs = study_notebooks('reasoning', ROOT)
    for nb in nbs:
        declared = notebook_parameters(nb)
        params = {k: v for k, v in small.items() if k in declared}
        if 'figures_dir' in declared: params['figures_dir'] = str(figs)
        run_notebook(nb, params, runs_dir=runs, output_dir=root/nb.stem, progress=False, progress_every=0)
    return dict(root=root, figs=figs/'reasoning', runs=runs, stems=[nb.stem for nb in nbs])

def _has(stems, prefix): return any(s.startswith(prefix) for s in stems)

def test_reports_and_comparison(study):
    out = study['root']/'20_eval_aime'
    cmp = json.loads((out/'aime_model_comparison.json').read_text())
    trained = {m for m, p in (('sft', '10_'), ('grpo', '11_')) if _has(study['stems'], p)}
    # every model the earlier notebooks produced is evaluated; one that is not there is named, not skipped
    assert 'base' in cmp['models'] and trained <= set(cmp['models']), (cmp['models'].keys(), cmp['missing'])
    assert set(cmp['models']) | set(cmp['missing']) == {'base', 'sft', 'grpo'}, cmp['missing']
    assert cmp['best_model'] in cmp['models']
    assert set(cmp['improvement_over_base']) == set(cmp['models']) - {'base'}
    problems = [json.loads(l) for l in (out/'aime_combined.jsonl').read_text().splitlines()]
    assert [p['meta']['global_id'] for p in problems] == list(range(len(problems)))
    sources = {p['meta']['source_dataset'] for p in problems}
    assert {'gsm_synth', 'aime_synth'} <= sources, sources
    for m, v in cmp['models'].items():
        rep = json.loads((out/f'aime_eval_combined_{m}_t0.3_n2.json').read_text())
        res, recs = rep['results'], rep['records']
        assert len(recs) == res['n_problems'] == v['n_problems'] == len(problems)
        for r in recs.values():
            assert r['n_total'] == 2 == len(r['responses']) == len(r['extracted_answers']) == len(r['correct'])
            assert r['n_correct'] == sum(r['correct']) and r['is_correct'] == (r['n_correct'] > 0)
            assert all(a is None or 0 <= int(a) <= 999 for a in r['extracted_answers'])
        acc = sum(r['n_correct'] / r['n_total'] for r in recs.values()) / len(recs)
        assert math.isclose(res['accuracy'], acc, abs_tol=1e-5) and math.isclose(res['accuracy'], rep['core']['score'], abs_tol=1e-5)
        assert math.isclose(res['pass_at_k']['1'], res['accuracy'], abs_tol=1e-5)
        pk = [res['pass_at_k'][k] for k in ('1', '2')]
        assert pk == sorted(pk) and pk[-1] <= res['any_of_n'] + 1e-9, pk  # pass@k grows with k, pass@n == any-of-n
        for h in ('accuracy', 'any_of_n', 'maj_at_n'):
            lo, hi = res[f'{h}_ci']
            assert lo - 1e-9 <= res[h] <= hi + 1e-9, (h, res[h], lo, hi)
        assert set(res['source_accuracies']) == sources
        assert res['avg_input_tokens'] > 0 and 0 < res['avg_output_tokens'] <= 12
        assert res['baselines']['random_0_999']['accuracy'] == 0.001

def test_figures(study):
    pngs = {p.name for p in study['figs'].glob('*.png')}
    assert {'aime_pass_at_k.png', 'aime_per_source.png'} <= pngs, pngs
    if _has(study['stems'], '11_'): assert 'grpo_rewards.png' in pngs, pngs
    if _has(study['stems'], '10_'): assert 'sft_loss.png' in pngs, pngs
    # redrawn from the recorded results alone, without a model
    r = run_cmd([BIN/'vlm_nb', 'figures', '--study', 'reasoning', '--runs-dir', study['runs'], '--out', study['figs'].parent/'redrawn'], check=True)
    again = {p.name for p in (study['figs'].parent/'redrawn'/'reasoning').glob('*.png')}
    assert {'aime_pass_at_k.png', 'aime_per_source.png'} <= again, r.stdout
