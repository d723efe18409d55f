"""The paper's figures, each a function CampaignData -> matplotlib Figure that raises
SkipFigure (with a one-line reason) when the campaign lacks its data."""

from pipeline.figures.curves import double_descent, learning_curves, regimes
from pipeline.figures.data import CampaignData
from pipeline.figures.features import feature_alignment, kernel_pca, weight_scatter
from pipeline.figures.jamming import fluctuations, h0_spectrum, jamming
from pipeline.figures.phase import phase_colours, phase_diagram
from pipeline.figures.style import SkipFigure

FIGURES = {
    "phase_diagram": phase_diagram,  # Fig. 4
    "double_descent": double_descent,  # Fig. 5
    "jamming": jamming,  # Fig. 7A-B
    "h0_spectrum": h0_spectrum,  # Fig. 7C
    "fluctuations": fluctuations,  # Fig. 7D
    "regimes": regimes,  # Fig. 8
    "learning_curves": learning_curves,  # Fig. 9
    "feature_alignment": feature_alignment,  # Fig. 9 left: Λ along training
    "weight_scatter": weight_scatter,  # Fig. 9 left: the weight vectors
    "kernel_pca": kernel_pca,  # Fig. 10
}

__all__ = ["FIGURES", "CampaignData", "SkipFigure", "phase_colours", *FIGURES]
