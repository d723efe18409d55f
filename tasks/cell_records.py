"""The records of one cell at a point of its flow, shared by both engines
(`tasks.train_cell.run_cell` and `tasks.train_bundle.run_bundle`): the `Measurement` at a
checkpoint and the final `CellResult`. Built from the flow's own train outputs (never
recomputed); the test outputs, NTK and H₀ spectrum are evaluated here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from tasks.alignment import layer_weights_on_host, weight_alignment_at
from tasks.cell import Cell
from tasks.flow import FlowState
from tasks.kernel_pca import kernel_pca_columns
from tasks.losses import loss_function
from tasks.observables import (
    chunked_outputs,
    h0_eigenvalues,
    margin_statistics,
    measurement,
    ntk_at,
)
from tasks.records import CellResult, Measurement
from tasks.synthetic import informative_directions


def relative_change(before: Tensor, after: Tensor) -> float:
    """‖after − before‖_F / ‖before‖_F."""
    return float(torch.linalg.norm(after - before) / torch.linalg.norm(before))


def measure(
    cell: Cell, state: FlowState, train_outputs: Tensor, wall_seconds: float
) -> Measurement:
    """The Measurement at ``state`` (NTK change only if asked for at checkpoints, the
    weight alignment Λ where the data have informative directions); ``train_outputs``
    are f(x_train) at state.theta [P]."""
    loss = loss_function(cell.spec.loss)
    test = chunked_outputs(cell.objective, state.theta, cell.task.x_test, cell.test_initial)
    ntk_change = math.nan
    if cell.spec.observables.ntk_at_checkpoints and cell.ntk_initial is not None:
        ntk_change = relative_change(
            cell.ntk_initial, ntk_at(cell.model, state.theta, cell.task.x_kernel)
        )
    record = measurement(
        state,
        margin_statistics(train_outputs, cell.task.y_train, loss),
        margin_statistics(test, cell.task.y_test, loss),
        cell.theta0,
        cell.n_params,
        wall_seconds,
        ntk_change,
    )
    alignment = weight_alignment_at(cell.model, state.theta, informative_directions(cell.spec.data))
    return dataclasses.replace(record, weight_alignment=alignment)


def final_result(
    cell: Cell, state: FlowState, reason: str, last: Measurement, train_outputs: Tensor
) -> CellResult:
    """The CellResult: summary (from the final Measurement ``last``), NTK change, test
    outputs, H₀, the kernel PCA of Θ₀ and Θ_end and (if asked for) the layer weights at
    start and end. A stalled cell is never fitted (its N_Δ is not a result of the flow)."""
    obs, task = cell.spec.observables, cell.task
    ntk_change = norm0 = norm1 = math.nan
    ntk_final = None
    if cell.ntk_initial is not None:
        ntk_final = ntk_at(cell.model, state.theta, task.x_kernel)
        ntk_change = relative_change(cell.ntk_initial, ntk_final)
        norm0, norm1 = (
            float(torch.linalg.norm(cell.ntk_initial)),
            float(torch.linalg.norm(ntk_final)),
        )
    test_outputs = chunked_outputs(cell.objective, state.theta, task.x_test, cell.test_initial)
    h0 = (
        h0_eigenvalues(
            cell.model,
            state.theta,
            task.x_train[~(task.y_train * train_outputs >= 1.0)],
            cell.objective.alpha,
        )
        if obs.h0_spectrum
        else np.zeros(0)
    )
    return CellResult(
        stop_reason=reason,
        fitted=last.n_unsatisfied == 0 and reason != "stalled",
        steps=state.step,
        flow_time=state.flow_time,
        wall_seconds=last.wall_seconds,
        gradient_evaluations=state.evaluations,
        forward_evaluations=state.forward_evaluations,
        n_params=cell.n_params,
        train_loss=last.train_loss,
        train_error=last.train_error,
        n_unsatisfied=last.n_unsatisfied,
        test_loss=last.test_loss,
        test_error=last.test_error,
        ntk_change=ntk_change,
        ntk_norm_initial=norm0,
        ntk_norm_final=norm1,
        test_outputs=test_outputs.cpu().numpy(),
        test_labels=task.y_test.cpu().numpy(),
        h0_eigenvalues=h0,
        **kernel_pca_columns(cell.ntk_initial, ntk_final, task.y_kernel, obs.kernel_pca_rank),
        weights_initial=layer_weights_on_host(cell.model, cell.theta0, obs.weights),
        weights_final=layer_weights_on_host(cell.model, state.theta, obs.weights),
    )
