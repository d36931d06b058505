"""The lake evaluator's must-show numbers on the committed set, and its robustness.

A thin script over `thinkpix.analysis.lake_evaluator` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.lake_evaluator import main

if __name__ == "__main__":
    raise SystemExit(main())
