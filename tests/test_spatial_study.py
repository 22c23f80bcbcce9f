"""The spatial study's model through the shared trainer, in process and at the smallest sizes: the aggregator's
interface, loading official-format VGGT weights, the collator's image slot, a short `train.model=spatial` run
(frozen aggregator untouched, projector trained, saved model reloads to the same outputs) and stop / resume.
The whole study (every notebook of nbs/experiments/spatial) runs in `vlm_nb reproduce --study spatial`."""
import json
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
from vlm_nb.config import load_config
from vlm_nb.train import SampleDataset, load_samples, train
from vlm_nb.studies.spatial.aggregator import (Aggregator, AggregatorCfg, CheckpointKeyError, generated_vggt_state_dict,
                                               load_vggt_checkpoint, official_aggregator_shapes)
from vlm_nb.studies.spatial.model import SpatialCollator, load_spatial, load_spatial_tokenizer, num_visual_tokens, spatial_model
from vlm_nb.studies.spatial.study import rooms_qa, stage_config, tiny_spatial_llm, tiny_vggt_checkpoint


def test_aggregator_shapes_and_patch_start_idx():
    cfg = AggregatorCfg.tiny(num_register_tokens=2, depth=3, embed_dim=24, num_heads=3)
    outs, start = Aggregator(cfg)(torch.rand(2, 5, 3, 28, 42))
    assert start == 1 + 2
    assert len(outs) == 3 and all(o.shape == (2, 5, start + 2 * 3, 48) for o in outs)
    # camera / register tokens come first: the first view's differ from the other views' (two learned copies)
    agg = Aggregator(cfg)
    with torch.no_grad(): agg.camera_token[:, 1] += 1.0
    o = agg(torch.zeros(1, 3, 3, 28, 28))[0][0]
    assert not torch.allclose(o[0, 0, 0], o[0, 1, 0]) and torch.allclose(o[0, 1, 0], o[0, 2, 0])


def test_official_keys_round_trip_and_errors(tmp_path):
    cfg = AggregatorCfg.tiny(patch_embed='dinov2_vits14_reg', patch_embed_depth=1)
    sd = {f'module.{k}': v for k, v in generated_vggt_state_dict(cfg, seed=3).items()}  # as a DDP-wrapped save writes it
    torch.save(sd, tmp_path/'model.pt')
    agg = load_vggt_checkpoint(Aggregator(cfg), tmp_path/'model.pt')
    got = agg.state_dict()
    assert set(got) == set(official_aggregator_shapes(cfg))
    for k, v in got.items(): assert torch.equal(v, sd[f'module.aggregator.{k}']), k
    bad = dict(sd); del bad['module.aggregator.frame_blocks.1.attn.q_norm.weight']; bad['module.aggregator.bogus'] = torch.zeros(1)
    with pytest.raises(CheckpointKeyError, match=r'missing keys: frame_blocks\.1\.attn\.q_norm\.weight; unexpected keys: bogus'):
        load_vggt_checkpoint(Aggregator(cfg), bad)
    with pytest.raises(CheckpointKeyError, match='neither aggregator nor VGGT heads'):
        load_vggt_checkpoint(Aggregator(cfg), {**sd, 'encoder.x': torch.zeros(1)})


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('spatial')
    files = rooms_qa(d/'data', 4, 'train', seed=0, workers=1)
    llm = tiny_spatial_llm(d/'llm', files, vocab_size=400, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=32, intermediate_size=128)
    ck = tiny_vggt_checkpoint(d/'vggt'/'model.pt', seed=1)
    ov = [f'model.name_or_path={llm}', f'spatial.vggt_checkpoint={ck}', f'data.image_root={d/"data"}',
          'train.train_jsonl=[' + ','.join(map(str, files)) + ']', 'train.backend=single', 'train.batch_size=4', 'train.max_steps=4',
          'train.log_every=1', 'train.warmup_steps=0', 'spatial.num_latents=4', 'spatial.perceiver_layers=1', 'run.progress=false']
    return dict(dir=d, files=files, ck=ck, ov=ov)


def test_collator_places_tokens_at_image_slot(tiny):
    cfg = stage_config('stage1', 'tiny', tiny['ov'])
    model, tok = spatial_model(cfg)
    samples = load_samples(tiny['files'])[:3]
    ds = SampleDataset(samples, tiny['dir']/'data')
    for use in (None, 1):
        b = SpatialCollator(tok, cfg.spatial, use_views=use)([ds[i] for i in range(3)])
        slot = b['input_ids'] == model.image_token_id
        assert slot.sum(1).tolist() == [num_visual_tokens(cfg.spatial)] * 3
        first = slot.int().argmax(1)  # the slot is one run right after <|vision_start|>, inside the user turn, before any label
        assert (b['input_ids'][torch.arange(3), first - 1] == tok.convert_tokens_to_ids('<|vision_start|>')).all()
        assert (b['labels'][slot] == -100).all() and ((b['labels'] != -100).sum(1) > 0).all()
        assert b['view_mask'].sum(1).tolist() == [float(use or 4)] * 3 and (b['geom_mask'] <= b['view_mask']).all()
    emb = model.embed(b['input_ids'], b['images'], b['view_mask'], b['geom'], b['geom_mask'])
    vis = model.encode_views(b['images'], b['view_mask'], b['geom'], b['geom_mask'])
    assert torch.allclose(emb[slot].reshape(vis.shape), vis)


def test_training_run_saves_trains_projector_not_aggregator(tiny):
    cfg = stage_config('stage1', 'tiny', [*tiny['ov'], f"run.output_dir={tiny['dir']/'run'}"])
    s = train(cfg)
    assert s['status'] == 'ok' and s['steps'] == 4 and s['final_loss'] < s['first_loss'], s
    model_dir = Path(s['checkpoint'])/'model'
    m, tok = load_spatial(model_dir), load_spatial_tokenizer(model_dir)
    official = torch.load(tiny['ck'], weights_only=True)
    for k, v in m.aggregator.state_dict().items(): assert torch.equal(v, official[f'aggregator.{k}']), k  # frozen: untouched
    trained = load_file(str(Path(s['checkpoint'])/'trainable.safetensors'))
    assert not any('aggregator' in k for k in trained) and any(k.startswith('model.projector.') for k in trained)
    fresh, _ = spatial_model(cfg)
    assert not torch.allclose(fresh.projector.latents, m.projector.latents)  # the projector moved
    samples = load_samples(tiny['files'])[:2]
    b = SpatialCollator(tok, m.sc)([SampleDataset(samples, tiny['dir']/'data')[i] for i in range(2)])
    inp = {k: v for k, v in b.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad(): a, c = m(**inp).logits, load_spatial(model_dir)(**inp).logits
    assert torch.allclose(a, c, atol=1e-6)


def test_stop_and_resume_continues_the_run(tiny):
    out = tiny['dir']/'resume'
    s1 = train(stage_config('stage1', 'tiny', [*tiny['ov'], f'run.output_dir={out}', 'train.stop_after=2']))
    assert s1['steps'] == 2 and (out/'step_2').is_dir()
    s2 = train(stage_config('stage1', 'tiny', [*tiny['ov'], f'run.output_dir={out}', 'train.resume_from=latest']))
    assert s2['steps'] == 4 and (out/'step_4').is_dir()
    state = json.loads((out/'step_4'/'trainer_state.json').read_text())
    assert state['step'] == 4 and state['position'] == 4 * 4
