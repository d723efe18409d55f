"""Cell ids: a stable hash of the fully resolved configuration."""

import dataclasses

from tasks.specs import CellSpec, DataSpec, LossSpec, ModelSpec


def test_cell_id_is_stable_and_round_trips():
    cell = CellSpec(alpha_tilde=1.0, seed=3, model=ModelSpec(width=64))
    again = CellSpec.from_dict(cell.to_dict())
    assert again == cell
    assert again.cell_id == cell.cell_id
    assert len(cell.cell_id) == 16


def test_cell_id_changes_with_any_fixed_setting():
    base = CellSpec(alpha_tilde=1.0, seed=0)
    changed = [
        dataclasses.replace(base, loss=LossSpec(beta=10.0)),
        dataclasses.replace(base, seed=1),
        dataclasses.replace(base, alpha_tilde=2.0),
        dataclasses.replace(base, data=DataSpec(test_seed=7)),
    ]
    ids = {c.cell_id for c in changed}
    assert base.cell_id not in ids and len(ids) == len(changed)


def test_cell_id_ignores_where_data_lives():
    base = CellSpec(alpha_tilde=1.0, seed=0)
    moved = dataclasses.replace(base, data=DataSpec(data_dir="/elsewhere"))
    assert moved.cell_id == base.cell_id


def test_alpha_follows_eq8():
    cell = CellSpec(alpha_tilde=8.0, seed=0, model=ModelSpec(width=16))
    assert cell.alpha == 2.0
