"The ocr study end to end at its smallest: data, base evaluation, LoRA through the launcher (and its reuse), saved forms from disk, limits sweep, figures"
import json, subprocess
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, run_cmd

NB = ROOT/'nbs'/'experiments'/'ocr'

@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "A raw tiny Qwen3-VL (built from a few OCR lines' texts) and the study's notebooks run on it into one run folder"
    d = tmp_path_factory.mktemp('ocr')
    code = f"""
import torch; torch.set_num_threads(1)
from pathlib import Path
from vlm_nb.studies.ocr.core import line_set
from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
f = line_set(Path({str(d)!r})/'vocab', 64, split='vocab')
build_tiny_vlm(Path({str(d)!r})/'model', list(sample_texts(f)) * 3, seed=0, vocab_size=400, max_pixels=128*128)
"""
    r = subprocess.run([str(BIN/'python'), '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    over = json.dumps([f'model.name_or_path={d}/model', 'train.batch_size=4', 'eval.max_new_tokens=12'])
    runs = d/'run'
    def run(nb, *params, configured=True):
        args = [BIN/'vlm_nb', 'run', NB/f'{nb}.ipynb', '--output-dir', runs/nb, '--no-progress'] + (['-p', 'overrides', over] if configured else [])
        for k, v in params: args += ['-p', k, str(v)]
        r = run_cmd(args, timeout=600)
        assert r.returncode == 0, f"{nb}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r
    run('00_data', ('train_items', 48), ('heldout_items', 6), ('build_base', False))
    run('10_base_eval')
    run('20_lora', ('max_steps', 6), ('eval_every', 3))
    again = run('20_lora', ('max_steps', 6), ('eval_every', 3))
    run('30_forms')
    run('40_limits', ('points', 2), ('font_px', '[16, 28]'), ('words', '[2]'), ('scale', '[1.0]'))
    run('50_figures', configured=False)
    return runs, again

def test_forms_compared_from_disk(study):
    runs, _ = study
    t = pd.read_csv(runs/'ocr_model_comparison.csv', keep_default_na=False)
    assert t['form'].tolist() == ['base', 'lora', 'merged', 'merged_16bit', 'merged_4bit']
    ok = t[t['status'] == 'ok'].drop(columns=['form', 'status']).replace('', 'nan').astype(float)
    assert (ok['n'] == 6).all() and ok['cer_corpus'].between(0, 10).all()
    assert (ok['cer_corpus_lo'] <= ok['cer_corpus']).all() and (ok['cer_corpus'] <= ok['cer_corpus_hi']).all()
    merged = t.set_index('form').loc['merged']
    assert float(merged['agree_with_lora']) == 1.0   # the merged weights transcribe exactly as the adapter model
    assert t.set_index('form').loc['merged_4bit', 'status'].startswith(('ok', 'unavailable'))
    forms = json.loads((runs/'forms'/'forms.json').read_text())['forms']
    assert (Path(forms['lora'])/'adapter_config.json').exists() and (Path(forms['merged'])/'config.json').exists()
    eff = json.loads((runs/'effect.json').read_text())
    assert set(eff) >= {'cer_base', 'cer_lora', 'cer_lora_no_image', 'halved', 'reads', 'merged_agrees'}

def test_per_sample_tables_and_summary(study):
    runs, _ = study
    rows = pd.read_csv(runs/'eval'/'base'/'results.csv', keep_default_na=False)
    assert {'answer', 'prediction', 'cer', 'wer', 'exact', 'guard_fired', 'hit_cap'} <= set(rows.columns) and len(rows) == 6
    s = json.loads((runs/'eval'/'base'/'ocr_summary.json').read_text())
    assert 0 <= s['guard_fired_rate'] <= 1 and 'whitespace' in s['normalisation']
    b = json.loads((runs/'eval'/'baselines.json').read_text())
    assert b['trivial']['empty']['cer'] == 1.0

def test_lora_stage_reused_and_curves(study):
    runs, again = study
    executed = (runs/'20_lora'/'20_lora.ipynb').read_text()   # the second run of the stage notebook
    assert 'already finished' in executed and "'action': 'done'" in executed
    m = pd.read_csv(runs/'checkpoints'/'lora'/'metrics.csv')
    assert m['loss'].notna().sum() >= 1 and m['eval_ocr'].notna().sum() == 2   # held-out CER at steps 3 and 6

def test_limits_and_figures(study):
    runs, _ = study
    lim = pd.read_csv(runs/'limits'/'limits.csv')
    assert sorted(zip(lim['property'], lim['value'].astype(float))) == [('font_px', 16.0), ('font_px', 28.0), ('scale', 1.0), ('words', 2.0)]
    for name in ('ocr_model_comparison', 'ocr_limits'):
        assert (ROOT/'figures'/'ocr'/f'{name}.png').stat().st_size > 5000
