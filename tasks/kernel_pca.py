"""Kernel PCA of the NTK on the kernel set and how its top eigenvectors see the labels
(paper Sec. 5, Fig. 10; Paccolat et al. 2020).

Θ [P_K, P_K] = Σ_λ λ φ_λ φ_λᵀ with orthonormal eigenvectors φ_λ [P_K], λ descending. The
Gram matrix is decomposed as measured (not centred), as in the paper's Fig. 10. For the
top ``rank`` eigenvalues:

    label projection  ω_λ = (φ_λ · y)² / ‖y‖²   (Σ over all λ of ω_λ = 1)
    mutual information  I(φ_λ; y) in bits, between the components φ_λ(x_μ) and the
                        labels y_μ over the kernel points μ (k-NN estimator,
                        `tasks.mutual_information`, k = 5)

Both are unchanged by the sign of φ_λ. In the feature regime the top eigenvectors become
informative on the labels (ω and I grow from Θ₀ to Θ_end); in the lazy regime they do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from tasks.mutual_information import DEFAULT_NEIGHBOURS, knn_mutual_information

DEFAULT_RANK = 100


@dataclass(frozen=True)
class KernelPCA:
    """Top-``rank`` kernel PCA of one Gram matrix; arrays [min(rank, P_K)], rank order."""

    eigenvalues: np.ndarray = field(repr=False)  # λ, descending
    label_projection: np.ndarray = field(repr=False)  # ω_λ = (φ_λ·y)²/‖y‖²
    mutual_information: np.ndarray = field(repr=False)  # I(φ_λ; y), bits

    @classmethod
    def empty(cls) -> KernelPCA:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))


def kernel_pca(
    gram: Tensor, labels: Tensor, rank: int = DEFAULT_RANK, neighbours: int = DEFAULT_NEIGHBOURS
) -> KernelPCA:
    """Kernel PCA of ``gram`` [n, n] (symmetric) against ``labels`` [n] (±1).

    Empty if ``rank`` is 0 or the Gram matrix is not finite (a diverged flow)."""
    n = gram.shape[0]
    if gram.shape != (n, n) or labels.shape != (n,):
        raise ValueError(
            f"kernel_pca needs a square Gram matrix and one label per row, got "
            f"{tuple(gram.shape)} and {tuple(labels.shape)}"
        )
    if rank < 0:
        raise ValueError(f"rank must be ≥ 0, got {rank}")
    if rank == 0 or n == 0 or not bool(torch.isfinite(gram).all()):
        return KernelPCA.empty()
    g = gram.detach().to(torch.float64)
    eigenvalues, vectors = torch.linalg.eigh((g + g.T) / 2)  # ascending
    top = min(rank, n)
    eigenvalues = eigenvalues.flip(0)[:top].cpu().numpy()
    vectors = vectors.flip(1)[:, :top].cpu().numpy()  # [n, top], φ_λ columns
    y = labels.detach().to(torch.float64).cpu().numpy()
    projection = (vectors.T @ y) ** 2 / (y @ y)
    information = np.array(
        [knn_mutual_information(vectors[:, i], y, neighbours) for i in range(top)]
    )
    return KernelPCA(eigenvalues, projection, information)


def kernel_pca_columns(
    initial: Tensor | None, final: Tensor | None, labels: Tensor, rank: int = DEFAULT_RANK
) -> dict[str, np.ndarray]:
    """The `tasks.records.CellResult` fields ``kpca_{eigenvalues, label_projection,
    mutual_information}_{initial, final}`` from Θ₀ and Θ_end (None: not measured → empty)."""
    columns = {}
    for when, gram in (("initial", initial), ("final", final)):
        result = KernelPCA.empty() if gram is None else kernel_pca(gram, labels, rank)
        columns[f"kpca_eigenvalues_{when}"] = result.eigenvalues
        columns[f"kpca_label_projection_{when}"] = result.label_projection
        columns[f"kpca_mutual_information_{when}"] = result.mutual_information
    return columns
