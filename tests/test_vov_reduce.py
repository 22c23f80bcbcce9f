"Token-reduction baselines of the vov study: real drops, gathered M-RoPE positions, ToMe / FastV arithmetic, the FLOPs formula, one notebook end to end"
import json, math
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from conftest import ROOT, BIN, run_cmd
from vlm_nb.studies.vov.reduce import (TokenReduction, equivalent_tokens, fastv_schedule, lm_layout, n_keep, pool_plan,
                                       prefill_flops, stride_plan, tome_plan, topk_norm_plan, layer_flops)

@pytest.fixture(scope='module')
def tiny():
    "Random tiny Qwen3-VLs (2 decoder layers / 1 DeepStack layer, and 4 / 2 like Qwen3-VL-8B's layout), a processor, a left-padded batch"
    from transformers import Qwen3VLForConditionalGeneration
    from vlm_nb.models.tiny import train_tokenizer, tiny_vlm_config, tiny_processor
    from vlm_nb.prompt import SFTCollator
    from vlm_nb.data.schema import validate_sample
    torch.set_num_threads(1)
    tok = train_tokenizer(['what colour is the square', 'how many shapes are there', 'red green blue'] * 4, 300)
    proc = tiny_processor(tok)
    def model(layers, ds):
        torch.manual_seed(0)
        m = Qwen3VLForConditionalGeneration(tiny_vlm_config(tok, hidden_size=64, num_layers=layers, head_dim=16, intermediate_size=128,
                                                            vision_hidden_size=32, deepstack=ds))
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():  # larger weights, so that a wrong position or token changes the logits visibly
            for p in m.parameters():
                if p.dim() >= 2: p.normal_(0, 1.5 / p.shape[-1] ** 0.5, generator=g)
        return m.eval()
    def pic(i, w, h):
        rng = np.random.default_rng(i); img = Image.new('RGB', (w, h), 'white'); d = ImageDraw.Draw(img)
        for _ in range(5):
            x, y = rng.integers(0, min(w, h) - 30, 2); d.ellipse((int(x), int(y), int(x) + 30, int(y) + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        return img
    col = SFTCollator(proc)
    qs = ['what colour is the square', 'how many shapes are there in the picture today ?', 'red or blue']
    exs = [col.example(validate_sample(dict(id=f's{i}', dataset='t', split='test', image='x.png', question=q, answer='red', answer_type='span')),
                       [pic(i, *wh)], train=False) for i, (q, wh) in enumerate(zip(qs, [(224, 224), (160, 224), (288, 128)]))]
    batch = {k: v for k, v in col.prompt_batch(exs).items() if torch.is_tensor(v)}
    return dict(model=model(2, (0,)), deep=model(4, (0, 1)), proc=proc, batch=batch)

PLANS = {'stride': lambda x, g: stride_plan(x, g, .5), 'topk_norm': lambda x, g: topk_norm_plan(x, g, .25),
         'pool': lambda x, g: pool_plan(x, g, 2), 'tome': lambda x, g: tome_plan(x, g, .5)}

def layer_lengths(model, fn):
    "Tokens each decoder layer processes (read at its input norm, after every pre-hook) during `fn()`"
    seen = []
    hs = [l.input_layernorm.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1])) for l in lm_layout(model).layers]
    try: fn()
    finally:
        for h in hs: h.remove()
    return seen

def test_hooks_shorten_the_sequence_and_the_cache(tiny):
    m, b = tiny['model'], tiny['batch']
    L = b['input_ids'].shape[1]
    n_img = (b['input_ids'] == m.config.image_token_id).sum(1).tolist()
    assert n_img == [49, 35, 36]  # 7×7, 5×7 (160×224), 9×4 (288×128 → 288×128)
    with torch.no_grad():
        with TokenReduction(m, plan=PLANS['stride']) as r: seen = layer_lengths(m, lambda: m(**b))
        kept = [n_keep(n, .5) for n in n_img]
        assert r.records[0]['vision_lm'] == kept
        longest = max(int(b['attention_mask'][i].sum()) - (n - k) for i, (n, k) in enumerate(zip(n_img, kept)))  # rows re-padded
        assert seen == [longest, longest] and longest < L
        # FastV: layer 0 sees everything, layer K=1 the kept tokens; the cache of layer 1 is shorter by the dropped tokens
        with TokenReduction(m, fastv_k=1, fastv_ratio=.5) as r:
            seen = layer_lengths(m, lambda: None)
            out = m.generate(**b, max_new_tokens=3, min_new_tokens=3, do_sample=False, return_dict_in_generate=True)
        cache = out.past_key_values
        assert r.records[0]['vision_after_k'] == kept
        full0, short1 = cache.layers[0].keys.shape[2], cache.layers[1].keys.shape[2]
        assert full0 == L + 2 and short1 < full0  # prompt + 2 cached new tokens; layer 1 holds fewer keys for real
    assert sum(len(x._forward_pre_hooks) for x in m.modules()) == 0  # hooks removed

@pytest.mark.parametrize('name', [*PLANS, 'fastv'])
def test_keep_all_gives_identical_logits(tiny, name):
    for m, k in ((tiny['model'], 1), (tiny['deep'], 2)):
        b = tiny['batch']
        with torch.no_grad():
            ref = m(**b).logits[:, -1]
            kw = dict(fastv_k=k, fastv_ratio=1.0) if name == 'fastv' else dict(plan={'stride': lambda x, g: stride_plan(x, g, 1.0),
                'topk_norm': lambda x, g: topk_norm_plan(x, g, 1.0), 'pool': lambda x, g: pool_plan(x, g, 1), 'tome': lambda x, g: tome_plan(x, g, 1.0)}[name])
            with TokenReduction(m, **kw): out = m(**b).logits[:, -1]
        assert torch.allclose(out, ref, atol=1e-5), (name, (out - ref).abs().max())

def test_position_ids_are_gathered_not_renumbered(tiny):
    "The hooked model equals the decoder fed the kept tokens by hand with their original 3-row M-RoPE ids; renumbering differs"
    m = tiny['deep']; b = {k: v[:1] for k, v in tiny['batch'].items() if k not in ('pixel_values', 'image_grid_thw')}
    b['pixel_values'] = tiny['batch']['pixel_values'][:49 * 4]; b['image_grid_thw'] = tiny['batch']['image_grid_thw'][:1]
    lay, cap = lm_layout(m), {}
    h = lay.text.register_forward_pre_hook(lambda mod, a, kw: cap.update(kw), with_kwargs=True)
    with torch.no_grad():
        m(**b)
        h.remove()
        with TokenReduction(m, plan=PLANS['stride']): hooked = m(**b).logits[0, -1]
        vis = cap['visual_pos_masks'][0]; pos = vis.nonzero().squeeze(1)
        keep_img = pos[stride_plan(torch.zeros(len(pos), 1), None, .5)[0]]
        real = b['attention_mask'][0].bool()  # the row is left-padded: padding is dropped as well
        keep = torch.cat([(~vis & real).nonzero().squeeze(1), keep_img]).sort().values
        kept_vis = torch.isin(pos, keep_img)
        def run(position_ids):
            o = lay.text(inputs_embeds=cap['inputs_embeds'][:, keep], position_ids=position_ids, attention_mask=torch.ones(1, len(keep), dtype=torch.long),
                         visual_pos_masks=vis[keep][None], deepstack_visual_embeds=[d[kept_vis] for d in cap['deepstack_visual_embeds']])
            return m.lm_head(o.last_hidden_state)[0, -1]
        manual = run(cap['position_ids'][:, :, keep])
        renum = torch.arange(len(keep)).view(1, 1, -1).expand(4, 1, -1)
        wrong = run(renum)
    assert torch.allclose(hooked, manual, atol=1e-5), (hooked - manual).abs().max()
    assert not torch.allclose(hooked, wrong, atol=1e-3)  # positions matter: renumbering the kept tokens changes the answer

def test_tome_arithmetic_and_weighted_mean():
    g = torch.Generator().manual_seed(3)
    for n in (1, 2, 7, 36, 49, 64):
        x = torch.randn(n, 6, generator=g) * torch.rand(n, 1, generator=g) * 3
        for r in (1.0, .75, .5, .25, .01):
            for weight in ('norm', 'mean'):
                keep, W = tome_plan(x, None, r, weight)
                want = max(1, n_keep(n, r))
                assert len(keep) == want and W.shape == (want, n)
                member = W > 0
                assert (member.sum(0) == 1).all()  # every original token in exactly one merged token
                assert torch.equal(keep, keep.sort().values) and all(member[i, k] for i, k in enumerate(keep.tolist()))
                w = x.norm(dim=-1) if weight == 'norm' else torch.ones(n)
                expect = torch.stack([(w[mm] [:, None] * x[mm]).sum(0) / w[mm].sum() for mm in member])
                assert torch.allclose(W @ x, expect, atol=1e-5)
        kp, Wp = tome_plan(x, None, .5, prune=True)
        assert len(kp) == max(1, n_keep(n, .5)) and ((Wp > 0).sum(1) == 1).all()

def test_fastv_keeps_ceil_and_equivalent_tokens(tiny):
    assert [n_keep(n, r) for n, r in ((49, .5), (35, .5), (36, .25), (576, .25), (5, .1), (10, .0))] == [25, 18, 9, 144, 1, 0]
    m, b = tiny['model'], tiny['batch']
    for r in (.75, .5, .25):
        with torch.no_grad(), TokenReduction(m, fastv_k=1, fastv_ratio=r) as red: m(**b)
        assert red.records[0]['vision_after_k'] == [math.ceil(r * n) for n in (49, 35, 36)]
    assert round(equivalent_tokens(fastv_schedule(576, 32, 2, .25))) == 171  # shared/ANCHORS.md §1.4
    assert fastv_schedule(49, 2, 1, .5) == [49, 25]
    assert layer_flops(2, 3, 5) == 4 * 2 * 9 + 2 * 4 * 3 + 2 * 2 * 3 * 5
    assert prefill_flops([10, 5], 4, 8) == layer_flops(10, 4, 8) + layer_flops(5, 4, 8)
    with pytest.raises(ValueError, match=r'fastv_k=1: must be in \[2, 4\]'): TokenReduction(tiny['deep'], fastv_k=1)

def test_fastv_notebook_writes_the_contract(tmp_path):
    "25_fastv through the runner on a small random base: contract columns, equivalent-token cost, ratio 1.0 = always-full"
    code = f"""
from vlm_nb.models.tiny import build_tiny_vlm
build_tiny_vlm({str(tmp_path/'model')!r}, ['what colour is the circle', 'how many shapes', 'what is 3 plus 4'] * 3, seed=0, vocab_size=300)
"""
    r = run_cmd([BIN/'python', '-c', code], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    over = json.dumps([f'model.name_or_path={tmp_path}/model', 'eval.max_new_tokens=4'])
    out = tmp_path/'runs'/'25_fastv'
    r = run_cmd([BIN/'vlm_nb', 'run', ROOT/'nbs'/'experiments'/'vov'/'25_fastv.ipynb', '--output-dir', out, '--no-progress',
                 '-p', 'n_eval', '6', '-p', 'pruning_ratio_list', '[1.0, 0.5]', '-p', 'overrides', over], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    c = pd.read_csv(out/'results_contract.csv')
    assert list(c.columns[:9]) == ['baseline_name', 'lambda_cost', 'threshold', 'pruning_ratio', 'action_ratio', 'accuracy', 'avg_cost', 'latency', 'mem']
    assert list(c['pruning_ratio']) == [1.0, 0.5] and list(c['avg_cost']) == [49.0, 37.0]  # (1·49 + 1·25) / 2 equivalent tokens
    assert (c['accuracy_ci_low'] <= c['accuracy']).all() and (c['accuracy'] <= c['accuracy_ci_high']).all()
    assert (out/'figures'/'25_fastv.png').stat().st_size > 5000
