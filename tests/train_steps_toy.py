"""Toy training steps for tests/test_train_step.py, imported by `python -m vlm_nb.train` workers as
`train.step=train_steps_toy:RolloutStep` (the tests folder is on their PYTHONPATH)."""
import torch
from vlm_nb.prompt import to_device
from vlm_nb.train import TrainStep

class RolloutStep(TrainStep):
    "GRPO-like: G sampled completions per prompt, rewards, group-normalised advantages, policy gradient on the sampled tokens, KL to the adapter-free model"
    G, N, BETA = 2, 4, 0.05  # completions per prompt, new tokens, KL weight
    def __init__(self, cfg=None): super().__init__(cfg); self.rollouts = 0
    def reward(self, text:str, answer:str, ids) -> float:
        "1 for the answer in the completion, plus the share of even token ids (varies between samples, so advantages do)"
        return float(answer.strip() in text) + float((ids % 2 == 0).float().mean()) if len(ids) else 0.0
    def __call__(self, trainer, module, batch, step):
        exs = [e for e in batch['examples'] for _ in range(self.G)]
        pb = to_device(trainer.collator.prompt_batch(exs), trainer.dist.device)
        P = pb['input_ids'].shape[1]
        ids = trainer.generate(module.model, pb, max_new_tokens=self.N, do_sample=True, pad_token_id=trainer.collator.pad_id)
        comp = ids[:, P:]
        eos = comp == trainer.collator.tok.eos_token_id
        cmask = ((eos.cumsum(1) - eos.long()) == 0).long()  # tokens up to and including the first end of turn
        texts = trainer.collator.tok.batch_decode(comp * cmask, skip_special_tokens=True)
        r = torch.tensor([self.reward(t, e['answer'], c[m.bool()]) for t, e, c, m in zip(texts, exs, comp, cmask)], device=ids.device)
        g = r.view(-1, self.G)
        adv = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-4)).view(-1)
        inputs = dict(input_ids=ids, attention_mask=torch.cat([pb['attention_mask'], cmask], 1),
                      pixel_values=pb['pixel_values'], image_grid_thw=pb['image_grid_thw'])
        if 'mm_token_type_ids' in pb: inputs['mm_token_type_ids'] = torch.cat([pb['mm_token_type_ids'], torch.zeros_like(comp)], 1)
        logp = torch.log_softmax(module.model(**inputs).logits[:, P - 1:-1].float(), -1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad(), module.model.disable_adapter():  # the frozen reference: the base without the adapter
            ref = torch.log_softmax(module.model(**inputs).logits[:, P - 1:-1].float(), -1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        n = cmask.sum().clamp(min=1)
        pg = -(adv[:, None] * logp * cmask).sum() / n
        kl = ((torch.exp(ref - logp) - (ref - logp) - 1) * cmask).sum() / n
        self.rollouts += len(exs)
        return pg + self.BETA * kl, {'pg': pg.detach(), 'kl': kl.detach(), 'reward': r.mean().detach(), 'new_tokens': cmask.sum(1).float().mean()}
    def state_dict(self): return {'rollouts': self.rollouts}
    def load_state_dict(self, d): self.rollouts = d['rollouts']
