"""The study's harness: the runs behind the book's pages, their figures, tables and targets.

It builds on the library (:mod:`npf`) and the library never imports it: models,
data, predictors and scores know nothing of notebooks or the book. The notebooks
in ``notebooks/`` call :mod:`npf.study.runs`.
"""
