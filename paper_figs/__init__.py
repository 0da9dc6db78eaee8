"""Figures and the claims ledger: one plot script per figure (``python -m paper_figs.plot_<name>``), the
criteria of every claim (``claims``) and the ledger writer (``make_ledger``)."""
