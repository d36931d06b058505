"""Run the evaluator of another git revision beside this one: before/after scores and speeds.

A thin script over `thinkpix.analysis.evaluator_versions` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.evaluator_versions import main

if __name__ == "__main__":
    raise SystemExit(main())
