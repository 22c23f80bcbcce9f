"The spatial study's evaluation on real suite outputs: oracle vs baselines, constrained decoding of the study's own random-init model, the scannet-views command"
import json
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run_cmd

@pytest.fixture(scope='module')
def suites(tmp_path_factory):
    "Two rooms of the `rooms` suite and two of the `roomplan` suite (views rendered), as unified dicts"
    from vlm_nb.studies.spatial.study import roomplan_actions
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.records import load_jsonl
    d = tmp_path_factory.mktemp('spatial_eval')
    qa = generate_suite('rooms', d, 2, seed=0, split='val', workers=1, show_progress=False)
    acts = roomplan_actions(d, 2, 'val', seed=0, workers=1)
    return d, load_jsonl(qa), load_jsonl(acts), acts

@pytest.fixture(scope='module')
def spatial_llm(suites):
    "The study's tiny random LLM whose tokenizer was trained on the roomplan suite's texts"
    from vlm_nb.studies.spatial.study import tiny_spatial_llm
    d, _, _, acts_file = suites
    return tiny_spatial_llm(d/'llm', [acts_file], seed=0)

def test_qa_oracle_beats_majority(suites):
    from vlm_nb.studies.spatial.evaluate import qa_scores, qa_rows, majority_baseline, paired_difference
    _, qa, _, _ = suites
    gold = [a if isinstance(a, str) else a[0] for a in (s['answer'] for s in qa)]
    top = qa_scores(gold, qa, n_boot=100)
    assert (top['n'], top['exact'], top['em'], top['partial']) == (len(qa), 1.0, 1.0, 1.0)
    assert set(top['by_type']['rooms']) >= {'count', 'situated'} and top['caption']['cider'] > 0
    maj = qa_scores(majority_baseline(qa, qa), qa, n_boot=100)
    assert maj['em'] < 1.0 and maj['em_hi'] <= 1.0 and maj['em_lo'] <= maj['em']
    assert maj['caption']['cider'] < top['caption']['cider']
    d = paired_difference(qa_rows(gold, qa), qa_rows(majority_baseline(qa, qa), qa), 'em', n_boot=200)
    assert d['diff'] == pytest.approx(1.0 - maj['em']) and d['diff_lo'] > 0 and set(d['by']) == set(top['by_type']['rooms'])

def test_actions_oracle_beats_mean_action(suites):
    from vlm_nb.studies.spatial.evaluate import action_scores, mean_action_baseline
    _, _, acts, _ = suites
    top = action_scores([s['answer'] for s in acts], acts, n_boot=100)
    assert (top['valid_json'], top['schema_valid'], top['exact'], top['center_l2'], top['extent_iou']) == (1.0, 1.0, 1.0, 0.0, 1.0)
    lay = top['layout']
    assert (lay['n_scenes'], lay['f1@0.25'], lay['f1@0.5'], lay['n_pred']) == (2, 1.0, 1.0, len(acts))
    base = action_scores(mean_action_baseline(acts, acts), acts, n_boot=100)
    assert base['valid_json'] == 1.0 and base['center_l2'] > 0.3 and base['layout']['f1@0.5'] < 0.5

def test_constrained_decoding_of_random_spatial_model(suites, spatial_llm):
    "The study's own model (random aggregator, projector and LLM) with its views: constrained output always parses"
    import torch
    torch.set_num_threads(1); torch.manual_seed(0)   # one thread: several spin against each other on a shared CPU
    from vlm_nb.studies.spatial.study import stage_config
    from vlm_nb.studies.spatial.model import build_spatial, SpatialCollator
    from vlm_nb.studies.spatial.evaluate import constrained_generate, roomplan_schema, schema_errors, canonical_json
    from vlm_nb.data.schema import Sample
    from vlm_nb.train import SampleDataset
    d, _, acts, _ = suites
    llm = spatial_llm
    model, tok = build_spatial(stage_config('stage2', 'tiny', overrides=[f'model.name_or_path={llm}']))
    model.eval()
    recs = acts[:8]
    coll = SpatialCollator(tok, model.sc, hooks=())
    ds = SampleDataset([Sample(**r) for r in recs], d, train=False)
    b = coll.prompt_batch(coll.examples([ds[i] for i in range(len(recs))]))
    b = {k: v for k, v in b.items() if k in ('input_ids', 'attention_mask', 'images', 'view_mask', 'geom', 'geom_mask')}
    schemas = [roomplan_schema(r['meta']['scene_id']) for r in recs]
    free = constrained_generate(model, tok, b, None, max_new_tokens=48)
    out = constrained_generate(model, tok, b, schemas, max_new_tokens=120)
    assert [schema_errors(o, s) for o, s in zip(out, schemas)] == [[]]*len(recs)
    assert [json.loads(o)['scene'] for o in out] == [r['meta']['scene_id'] for r in recs]
    assert [canonical_json(json.loads(o)) for o in out] == out  # the training targets' exact text shape (key order, number shape)
    assert sum(bool(schema_errors(o, s)) for o, s in zip(free, schemas)) == len(recs)  # unconstrained: none valid

def test_gold_targets_pass_the_constrained_decoder(suites, spatial_llm):
    "Every training target (the roomplan suite's answers) is canonical_json text and the logits mask allows its every token within the eval budget"
    import torch
    from transformers import AutoTokenizer
    from vlm_nb.studies.spatial.evaluate import SchemaLogitsProcessor, canonical_json, roomplan_schema, token_pieces
    _, _, acts, _ = suites
    golds = [s['answer'] for s in acts]
    assert [canonical_json(json.loads(g)) for g in golds] == golds
    tok = AutoTokenizer.from_pretrained(spatial_llm)
    pieces, eos = token_pieces(tok), tok.eos_token_id
    budget = 96   # 40_eval_actions' max_new_tokens
    ids = [tok(g, add_special_tokens=False)['input_ids'] for g in golds]
    assert [''.join(pieces[i] for i in x) for x in ids] == golds
    proc = SchemaLogitsProcessor([roomplan_schema(s['meta']['scene_id']) for s in acts], pieces, [eos], budget)
    n = max(map(len, ids)) + 1
    rows = torch.tensor([x + [eos]*(n - len(x)) for x in ids])
    prompt = torch.zeros(len(ids), 1, dtype=torch.long)
    for t in range(n):
        scores = proc(torch.cat([prompt, rows[:, :t]], 1), torch.zeros(len(ids), len(tok)))
        blocked = [(b, t, pieces.get(int(rows[b, t]))) for b in range(len(ids)) if torch.isinf(scores[b, rows[b, t]])]
        assert not blocked, f"the mask forbids gold tokens (row, step, token): {blocked[:3]}"
    assert [proc.templates[b].done(proc.states[b]) for b in range(len(ids))] == [True]*len(ids)
    jt = proc.templates[0]
    st = jt.feed(jt.start, golds[0][:golds[0].index('[') + 1] + '2')   # '2' may start a number but not end one
    proc.states[0] = st
    nxt = [pieces[i][0] for i in proc.allowed(0, budget)]
    assert '.' in nxt and not set(nxt) & {',', ']'}

def test_scannet_views_command(tmp_path):
    "`vlm_nb scannet-views` (registered by the study) names a scan missing from the export; skipping attaches the others' views"
    fx = ROOT/'data'/'fixtures'
    from vlm_nb.data.sources import convert_source
    src, _ = convert_source('scanqa', fx/'scanqa', tmp_path/'val.jsonl', 'val')
    bad = tmp_path/'bad.jsonl'
    bad.write_text(src.read_text().replace('scene0011_00', 'scene0999_00', 1))
    r = run_cmd([BIN/'vlm_nb', 'scannet-views', bad, '--scans', fx/'scannet'/'scans', '--num-views', '2', '--out', tmp_path/'o.jsonl'], timeout=300)
    assert r.returncode != 0
    assert "sample 'scanqa/val/val-scene0011-0': scene scene0999_00: not in the ScanNet export" in r.stdout + r.stderr
    from vlm_nb.studies.spatial.evaluate import scannet_views_main   # the skip path in-process (the CLI start costs seconds)
    assert scannet_views_main([str(bad), '--scans', str(fx/'scannet'/'scans'), '--num-views', '2', '--out', str(tmp_path/'o.jsonl'), '--on-bad-sample', 'skip']) == 0
    out = [json.loads(l) for l in (tmp_path/'o.jsonl').read_text().splitlines()]
    assert len(out) == 3 and all(o['images'] == ['scans/scene0011_00/color/0.jpg', 'scans/scene0011_00/color/180.jpg'] for o in out)
