"""Book tooling, not research code: chapter helpers (:mod:`.notebook`), the papermill batch runner
(:mod:`.reproduce`), and the Sphinx extension that serves MathJax offline (:mod:`.sphinx_offline_mathjax`)."""
