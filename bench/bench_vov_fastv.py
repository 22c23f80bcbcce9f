"""FastV at 50 % image tokens vs always-full on the same inputs: wall-clock ratio with accuracy beside it.
Both methods answer the same held-out `vov` questions (rendered at each `--long-sides` value, so the language model
receives more or fewer image tokens) through the one evaluation core for accuracy, then a timing loop runs greedy
`generate` (batch 1, exactly `--max-new-tokens` new tokens) and a prefill-only forward on each input, `--reps` times
with the methods interleaved; each input's best time per method is kept and summed (robust to load bursts on a
shared machine). Case `tiny_base`: the pre-trained tiny base (2 decoder layers, so FastV can prune in
one: K = 1). Case `lm_heavy`: a randomly initialised Qwen3-VL with a deeper, wider decoder (`--heavy-layers`, three
DeepStack layers as in Qwen3-VL-8B, so K = 3) where the language model dominates the cost, as at paper scale;
its accuracy is not meaningful (untrained) and is left empty. Writes bench/results/vov_fastv.csv.
Usage: python bench/bench_vov_fastv.py [--n 12] [--n-accuracy 150] [--long-sides 224 448] [--ratio 0.5] [--reps 5] [--max-new-tokens 8]
       [--threads 1] [--cases tiny_base lm_heavy] [--heavy-layers 12] [--heavy-hidden 512]"""
import argparse, sys, tempfile, time
import pandas as pd
from pathlib import Path
import torch
from vlm_nb.config import load_config
from vlm_nb.records import write_csv
from vlm_nb.data.schema import read_samples, load_image, resolve_image
from vlm_nb.data.synth import generate_suite
from vlm_nb.models.backbone import load_backbone
from vlm_nb.models.tiny import tiny_vlm_config
from vlm_nb.prompt import SFTCollator, to_device
from vlm_nb.eval.matrix import Method, evaluate_dataset, generation_config, eval_settings
from vlm_nb.figures import bootstrap_ci
from vlm_nb.pretrain import BASE_DIR
from vlm_nb.studies.vov.budget import VisionBudgetCfg, render
from vlm_nb.studies.vov.reduce import TokenReduction, fastv_layer, fastv_method, lm_layout, resolution_method

HERE = Path(__file__).resolve().parent

def heavy_model(proc, layers, hidden, seed=0):
    "A random Qwen3-VL whose decoder dominates: `layers` layers of width `hidden`, DeepStack after layers 0-2"
    from transformers import Qwen3VLForConditionalGeneration
    torch.manual_seed(seed)
    cfg = tiny_vlm_config(proc.tokenizer, hidden_size=hidden, num_layers=layers, num_heads=8, num_kv_heads=4, head_dim=hidden // 8,
                          intermediate_size=hidden * 3, deepstack=(0, 1, 2), vision_layers=3)
    return Qwen3VLForConditionalGeneration(cfg).eval()

def batches(proc, samples, image_root, long_side, device):
    "One prompt batch per sample, its image rendered with the given long side"
    col, vb, out = SFTCollator(proc), VisionBudgetCfg(full_long_side=long_side, max_pixels=4 * long_side ** 2), []
    for s in samples:
        imgs = [render(load_image(resolve_image(image_root, p)), 'FULL', vb) for p in s.image_paths]
        b = col.prompt_batch([col.example(s, imgs, train=False)])
        out.append(to_device({k: v for k, v in b.items() if torch.is_tensor(v)}, device))
    return out, col.pad_id

def timed(model, bs, gen_cfg, methods, reps):
    "Per method, seconds of greedy generate and of a prefill forward summed over the batches: each batch's best of `reps`, methods interleaved"
    sync = (lambda: torch.cuda.synchronize()) if torch.cuda.is_available() else (lambda: None)
    best = {n: [0.0, 0.0] for n in methods}
    with torch.inference_mode():
        for b in bs:
            one = {n: [float('inf'), float('inf')] for n in methods}
            for r in range(reps):
                for name in (list(methods) if r % 2 == 0 else list(methods)[::-1]):
                    for j, call in enumerate((lambda: model.generate(**b, generation_config=gen_cfg), lambda: model(**b, logits_to_keep=1))):
                        sync(); t = time.perf_counter()
                        with methods[name](): call()
                        sync(); one[name][j] = min(one[name][j], time.perf_counter() - t)
            for n in methods: best[n] = [best[n][0] + one[n][0], best[n][1] + one[n][1]]
    return best

def bench_case(case, model, proc, samples, image_root, a, device, d, with_accuracy):
    rows = []
    k = fastv_layer(model)
    cfg = load_config('tiny', overrides=['run.progress=false', f'eval.max_new_tokens={a.max_new_tokens}', 'eval.batch_size=8'])
    gen_cfg = generation_config(model, eval_settings(cfg), proc.tokenizer.pad_token_id)
    gen_cfg.min_new_tokens = a.max_new_tokens  # the same number of decoding steps for both methods
    for ls in a.long_sides:
        bs, _ = batches(proc, samples[:a.n], image_root, ls, device)
        methods = {'always_full': lambda: TokenReduction(model), f'fastv@{a.ratio:g}': lambda: TokenReduction(model, fastv_k=k, fastv_ratio=a.ratio)}
        acc = {}
        if with_accuracy:
            for name in methods:
                m = resolution_method(model, proc, cfg, vision_budget=ls)
                if name != 'always_full': m.generate_fn, m.name = fastv_method(model, proc, cfg, pruning_ratio=a.ratio).generate_fn, 'fastv'
                s = evaluate_dataset(m, samples, d/case/f'{ls}'/name, cfg, image_root=image_root)
                sc = pd.read_csv(d/case/f'{ls}'/name/'results.csv')['score']
                acc[name] = (s['score'], *bootstrap_ci(sc.to_numpy(float)))
        timed(model, bs[:1], gen_cfg, methods, 1)  # warm-up
        best = timed(model, bs, gen_cfg, methods, a.reps)
        with TokenReduction(model, fastv_k=k, fastv_ratio=a.ratio) as red, torch.inference_mode(): model(**bs[0], logits_to_keep=1)
        n_img, n_kept = red.records[0]['vision_lm'][0], red.records[0]['vision_after_k'][0]
        L = lm_layout(model).num_layers
        for name in methods:
            eq = n_img if name == 'always_full' else (k * n_img + (L - k) * n_kept) / L
            ac = acc.get(name, ('', '', ''))
            rows.append(dict(case=case, long_side=ls, method=name, n=len(bs), n_accuracy=len(samples) if with_accuracy else '', layers=L, fastv_k=k if name != 'always_full' else '',
                             image_tokens=n_img, image_tokens_after_k=n_kept if name != 'always_full' else n_img, equivalent_tokens=round(eq, 2),
                             accuracy=ac[0], accuracy_ci_low=ac[1], accuracy_ci_high=ac[2],
                             generate_s=round(best[name][0], 4), prefill_s=round(best[name][1], 4),
                             generate_ratio_vs_full=round(best[name][0] / best['always_full'][0], 4),
                             prefill_ratio_vs_full=round(best[name][1] / best['always_full'][1], 4),
                             max_new_tokens=a.max_new_tokens, reps=a.reps, threads=torch.get_num_threads(), device=str(device)))
            print({k2: rows[-1][k2] for k2 in ('case', 'long_side', 'method', 'equivalent_tokens', 'accuracy', 'generate_s', 'generate_ratio_vs_full', 'prefill_ratio_vs_full')}, flush=True)
    return rows

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=12, help='held-out vov questions timed (a multiple of 3)')
    ap.add_argument('--n-accuracy', type=int, default=150, help='held-out vov questions whose accuracy is reported (the timed ones first)')
    ap.add_argument('--long-sides', type=int, nargs='+', default=[224, 448], help='image long sides in px (224: 49 tokens, 448: 196)')
    ap.add_argument('--ratio', type=float, default=0.5, help="FastV's keep share of image tokens")
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--max-new-tokens', type=int, default=8)
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    ap.add_argument('--cases', nargs='+', default=['tiny_base', 'lm_heavy'])
    ap.add_argument('--heavy-layers', type=int, default=12)
    ap.add_argument('--heavy-hidden', type=int, default=512)
    ap.add_argument('--out', default=str(HERE/'results'/'vov_fastv.csv'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if not (Path(BASE_DIR)/'config.json').exists(): sys.exit(f"no tiny base at {BASE_DIR}: run `make models` (vlm_nb.pretrain.ensure_base_model) first")
    model, proc = load_backbone(load_config('tiny', overrides=[f'model.name_or_path={BASE_DIR}']))
    model = model.to(device).eval()
    rows = []
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        p = generate_suite('vov', d/'data', max(a.n, a.n_accuracy), seed=0, split='test', workers=1, show_progress=False)
        samples = read_samples(p)
        if 'tiny_base' in a.cases: rows += bench_case('tiny_base', model, proc, samples, d/'data', a, device, d, True)
        if 'lm_heavy' in a.cases:
            rows += bench_case('lm_heavy', heavy_model(proc, a.heavy_layers, a.heavy_hidden).to(device), proc, samples, d/'data', a, device, d, False)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_csv(a.out, rows)
    print(f"wrote {a.out}")
    return 0

if __name__ == '__main__': sys.exit(main())
