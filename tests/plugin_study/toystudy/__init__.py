"""A toy study package that lives outside `vlm_nb` (installed only by putting this folder on the path).

It adds a config section, a trainer hook, a training step, an evaluation method, a figure recipe and a CLI
command, each through the shared registries, without any edit of the shared modules; `vlm_nb` finds it
through the entry point declared in `toystudy-0.1.dist-info/entry_points.txt` (group `vlm_nb.studies`)."""
from vlm_nb.config import section
from vlm_nb.registry import COMMANDS
from vlm_nb.train import STEPS, SFTStep, TrainHook, train_hook
from vlm_nb.eval.matrix import Method, eval_method
from vlm_nb.figures import figure_recipe, metric_bars_figures

@section('toy')
class ToyCfg:
    "The toy study's settings"
    weight: float = 0.5  # weight of the toy loss
    label: str = 'toy'  # the method's name in results

class ToyHook(TrainHook):
    "A hook that adds nothing"
    def __init__(self, cfg): self.weight = cfg.toy.weight

@train_hook('toy')
def toy_hook(cfg) -> ToyHook:
    "`train.hooks=[toy]`"
    return ToyHook(cfg)

@STEPS.register('toy')
class ToyStep(SFTStep):
    "The SFT step under the toy study's name"

@eval_method('toy')
def toy_method(model, processor, cfg=None) -> Method:
    "The toy evaluation method"
    return Method(model, processor, cfg.toy.label, settings=dict(weight=cfg.toy.weight))

@figure_recipe('toy')
def toy_figures(run_dir, out_dir) -> list:
    "Accuracy bars per model"
    return metric_bars_figures(run_dir, out_dir, metrics=('accuracy',), name='toy_accuracy')

def main(argv:list) -> int:
    "`vlm_nb toy …`: echo the arguments"
    print('toy says', ' '.join(argv))
    return 0

COMMANDS.register('toy', main, help='the toy study says hello')
