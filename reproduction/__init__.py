"""`make reproduce`: the paper's claims measured on stored campaigns, through phasegrid's
public API (pipeline.drivers, pipeline.store, pipeline.analysis, pipeline.figures)."""
