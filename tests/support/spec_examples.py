"""The example spec of issue 3 and helpers to parse mutated copies of it (tests/spec/); the
relu cells the paper controller stalls on (tests/tasks/test_stalls.py and
tests/drivers/test_stalled_campaign.py)."""

from __future__ import annotations

import copy
import tomllib

import pytest

from pipeline.spec.campaign import CampaignSpec, SpecError, parse_campaign

# The example of issue 3, verbatim.
ISSUE_EXAMPLE = """
name = "stripe-demo"
[data]
dataset = "stripe"        # mnist, fashion-mnist, cifar10, stripe, sphere, random-labels
dimension = 5             # d: PCA components for images, input dimension for synthetic data
train_size = 256          # P (may instead be swept in [grid])
test_size = 1024
kernel_size = 128
[model]
arch = "fc"
depth = 2
activation = "swish"
activation_beta = 10.0
bias = false
[loss]
kind = "softhinge"
beta = 20.0
[flow]
max_steps = 20000         # also max_time, max_wall_seconds
[grid]
width = [8, 32, 128]
alpha_tilde = [1e-2, 1.0, 1e2, 1e4]   # also {logspace = [start_exp, stop_exp, n]}
seed = [0, 1, 2]                       # also {range = [0, 15]}
[resources]
cpus_per_task = 1
gpus_per_task = 0
"""
EXAMPLE = tomllib.loads(ISSUE_EXAMPLE)


def parse(mutate=None, source: str = "campaigns/x.toml") -> CampaignSpec:
    data = copy.deepcopy(EXAMPLE)
    if mutate:
        mutate(data)
    return parse_campaign(data, source)


def rejected(mutate) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(mutate)
    return info.value


# relu + soft hinge under the paper controller: the α̃ = 1 cells stall within 100 steps.
RELU_PAPER = """
name = "relu-paper"
[data]
dataset = "stripe"
dimension = 3
train_size = 32
test_size = 100
kernel_size = 16
[model]
arch = "one-hidden"
activation = "relu"
[loss]
kind = "softhinge"
[flow]
integrator = "paper"
max_steps = 1300
[grid]
width = [8, 32]
alpha_tilde = [1.0, 1e4]
seed = [0, 1]
"""


def relu_paper_cells() -> list:
    """The cells of RELU_PAPER (2 widths × 2 α̃ × 2 seeds)."""
    return parse_campaign(tomllib.loads(RELU_PAPER)).cells()
