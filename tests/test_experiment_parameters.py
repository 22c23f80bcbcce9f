"""Every parameter an experiment notebook declares is visible to papermill (`papermill --help-notebook`, `-p`,
`vlm_nb run -p`) with its type and help: papermill's parser silently drops annotations it cannot read
(`int | None`), which made the README's `vlm_nb run …02_stage2_text.ipynb -p max_steps 80` fail."""
import ast, json
from pathlib import Path
import papermill as pm
import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT/'nbs'/'experiments').glob('*/*.ipynb'))

def declared(nb:Path) -> dict:
    "name -> (annotation, help comment) of every assignment in the notebook's `parameters` cell, read with `ast`"
    cells = [c for c in json.loads(nb.read_text())['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(cells) == 1, f"{nb}: {len(cells)} parameters cells"
    src = ''.join(cells[0]['source'])
    lines, out = src.splitlines(), {}
    for node in ast.parse(src).body:
        if isinstance(node, (ast.AnnAssign, ast.Assign)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            ann = ast.unparse(node.annotation) if isinstance(node, ast.AnnAssign) else None
            line = lines[node.end_lineno - 1]
            out[target.id] = (ann, line.split('#', 1)[1].strip() if '#' in line[node.end_col_offset:] else '')
    return out

def test_notebooks_found():
    assert len(NOTEBOOKS) >= 10 and any(p.parent.name == 'r3' for p in NOTEBOOKS), NOTEBOOKS

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: f'{p.parent.name}/{p.stem}')
def test_every_parameter_visible_with_type_and_help(nb):
    want, got = declared(nb), pm.inspect_notebook(str(nb))
    assert want, f"{nb}: no parameters declared"
    assert list(got) == list(want), f"{nb}: papermill sees {list(got)}, the cell declares {list(want)}"
    for name, (ann, help_) in want.items():
        assert ann, f"{nb}: parameter {name!r} has no type annotation"
        assert help_, f"{nb}: parameter {name!r} has no help comment"
        assert got[name]['inferred_type_name'] == ann.replace(' ', ''), (nb, name, got[name], ann)
        assert got[name]['help'] == help_, (nb, name, got[name]['help'], help_)

def test_checker_catches_a_dropped_parameter(tmp_path):
    "The defect the test guards against: an `int | None` parameter is declared but invisible to papermill"
    nb = tmp_path/'x.ipynb'
    nb.write_text(json.dumps({'cells': [{'id': 'p1', 'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'outputs': [], 'execution_count': None,
                                         'source': 'a: int = 1  # kept\nb: int | None = None  # dropped'}],
                              'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'p'}},
                              'nbformat': 4, 'nbformat_minor': 5}))
    assert list(declared(nb)) == ['a', 'b'] and list(pm.inspect_notebook(str(nb))) == ['a']

def test_r3_stage_parameters_typed_on_the_command_line():
    "`vlm_nb run` types `-p` values by the declaration: an Optional[int] takes 80 or None, not a word"
    from vlm_nb.cli import typed_params
    nb = ROOT/'nbs/experiments/r3/02_stage2_text.ipynb'
    assert typed_params(nb, [['max_steps', '80'], ['learning_rate', '1e-5'], ['nproc_per_node', 'None']]) == \
        {'max_steps': 80, 'learning_rate': 1e-5, 'nproc_per_node': None}
    with pytest.raises(ValueError, match="parameter 'max_steps' is Optional\\[int\\], got 'many'"):
        typed_params(nb, [['max_steps', 'many']])
