"""Ray tasks are named by what they train (issue 13, case 8: not all `bundle_task`)."""

from __future__ import annotations

from pipeline.execute.scheduler import task_name
from pipeline.spec.campaign import load_campaign


def test_a_bundle_task_is_named_by_its_width_alphas_train_size_and_seeds(stripe_spec):
    spec = load_campaign(stripe_spec(grid={"width": [8, 16], "seed": [0, 1, 2]}))
    bundle = [c for c in spec.cells() if c.model.width == 16 and c.alpha_tilde == 0.1]
    assert task_name(bundle) == "train h=16 α̃=0.1 P=64 seeds=0,1,2"
    assert task_name(spec.cells()) == "train h=8,16 α̃=0.1,100 P=64 seeds=0,1,2"
