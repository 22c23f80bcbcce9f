"""The r3 hook under torchrun: 2 gloo workers on CPU with DDP, every r3 part on (retrieval, soft prefix, memories,
latent tokens, gate, alignment loss, corruption curriculum, EMA teacher), started with the runbook's flags through
`python -m vlm_nb.train`; the loss is finite and falls, and the checkpoint holds the r3 modules and the EMA."""
import json, math
from pathlib import Path
import pytest
from conftest import BIN, ROOT, run_cmd

ENV = {'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
STEPS = 8

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "Synthetic screens and charts with OCR text, their text and image indices, and a tiny Qwen3-VL"
    from vlm_nb.config import load_config
    from vlm_nb.data.synth import generate_suite
    from vlm_nb.models.tiny import build_tiny_vlm, sample_texts
    from vlm_nb.records import load_jsonl, write_jsonl
    from vlm_nb.retrieval import build_indices, train_tiny_clip, tiny_clip_config, TINY_CLIP_WEIGHTS
    d = tmp_path_factory.mktemp('r3')
    recs = [dict(r, ocr=' '.join(r['meta']['text'])) for s in ('screens', 'charts')
            for r in load_jsonl(generate_suite(s, d/'data', 3, seed=0, split='train', workers=1, show_progress=False))]
    train = d/'train.jsonl'; write_jsonl(train, recs)
    val = d/'val.jsonl'
    write_jsonl(val, [dict(r, ocr=' '.join(r['meta']['text'])) for r in load_jsonl(generate_suite('screens', d/'data', 1, seed=0, split='val', workers=1, show_progress=False))])
    small = tiny_clip_config(image_size=32, layers=1, text_layers=1, width=64, text_width=64, embed_dim=64, context_length=16)
    clip = train_tiny_clip([train], d/'data', d/'clip', steps=5, batch_size=8, arch=small, show_progress=False)/TINY_CLIP_WEIGHTS
    retr = [f'retrieval.image_pretrained={clip}', f'retrieval.index_dir={d}/idx', 'retrieval.text_field=ocr', 'retrieval.batch_size=16']
    build_indices(train, d/'idx', load_config('tiny', overrides=[*retr, f'data.image_root={d}/data']), image_root=d/'data', show_progress=False)
    vlm = build_tiny_vlm(d/'vlm', list(sample_texts(train, val)) * 3, seed=0, vocab_size=400, max_pixels=128*128)
    return dict(root=d, train=train, val=val, vlm=vlm, retr=retr)

def r3_run(tiny, out, backend, steps, *more):
    "`python -m vlm_nb.train` under torchrun (2 gloo workers) with every r3 part on, through the runbook's flags"
    argv = ['--backend', backend, '--model_name', tiny['vlm'], '--image_root', f"{tiny['root']}/data", '--output_dir', out,
            '--train_jsonl', tiny['train'], '--val_jsonl', tiny['val'], '--use_lora', '--lora_r', 4, '--batch_size', 2,
            '--learning_rate', '3e-3', '--warmup_steps', 1, '--max_steps', steps, 'retrieval.top_k=2', '--max_length', 512,
            '--max_corruption', '0.5', '--corruption_warmup_steps', 1, '--corruption_total_steps', steps,
            '--teacher_mode', 'ema', '--teacher_ema_decay', '0.9', '--r3_lr_mult', '0.5', '--r3_fp32',
            'train.hooks=[r3]', 'run.progress=false', *tiny['retr'], *more]
    r = run_cmd([BIN/'python', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', 2, '-m', 'vlm_nb.train', *argv],
                env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert 'terminate called' not in r.stderr
    return r

PARTS = ['loss', 'loss_lm', 'loss_r3_align', 'loss_r3_gate_conf', 'loss_r3_gate_entropy', 'loss_r3_distill']

def test_r3_ddp_all_parts(tiny):
    import torch
    from safetensors.torch import load_file
    from vlm_nb.records import read_csv, load_jsonl
    out = tiny['root']/'run_ddp'
    r3_run(tiny, out, 'ddp', STEPS, '--eval_every', STEPS, '--sample_every', STEPS, '--sample_count', 2)
    rows = [x for x in read_csv(out/'metrics.csv') if x['loss']]
    assert [int(x['step']) for x in rows] == list(range(1, STEPS + 1))
    assert all(math.isfinite(float(x[k])) for x in rows for k in PARTS), rows[-1]
    lm = [float(x['loss_lm']) for x in rows]
    assert sum(lm[-3:]) < sum(lm[:3]), lm
    s = json.loads((out/'summary.json').read_text())
    assert s['status'] == 'ok' and s['world_size'] == 2 and math.isfinite(s['final_eval_loss'])
    samples = load_jsonl(out/'samples.jsonl')  # generated with the r3 tokens in their slots
    assert len(samples) == 2 and all(x['prompt'].count('<|vision_pad|>') == 8 for x in samples)
    ck = out/f'step_{STEPS}'
    w = load_file(str(ck/'trainable.safetensors'))
    assert {k.split('.')[2] for k in w if k.startswith('extras.r3.')} == {'prefix', 'text_memory', 'visual_memory', 'latent', 'gate', 'align'}
    hooks = torch.load(ck/'hooks.pt', weights_only=True)
    ema = hooks['0:R3Hook']['ema']
    assert set(ema) == {k for k in w if k.startswith('model.')} | {'r3.' + k[len('extras.r3.'):] for k in w if k.startswith('extras.r3.')}
    assert all(ema[k].shape == (w[k] if k.startswith('model.') else w['extras.r3.' + k[3:]]).shape for k in ema)
    assert 'r3: 0.5' in (out/'config.yaml').read_text()  # r3_lr_mult reached train.lr_mult

def test_r3_fsdp_resume_is_exact(tiny):
    "FSDP2 shards the backbone and the r3 modules; the sharded EMA is gathered for the checkpoint and re-sharded on resume"
    from vlm_nb.records import read_csv
    full, part = tiny['root']/'fsdp_full', tiny['root']/'fsdp_part'
    r3_run(tiny, full, 'fsdp', 4)
    r3_run(tiny, part, 'fsdp', 4, '--stop_after', 2)
    r3_run(tiny, part, 'fsdp', 4, '--resume_from', 'latest')
    cols = [*PARTS, 'r3_ema_updates']
    a, b = read_csv(full/'metrics.csv'), read_csv(part/'metrics.csv')
    assert [[x[c] for c in cols] for x in b] == [[x[c] for c in cols] for x in a]
    assert float(a[-1]['loss_r3_distill']) > 0
