"""Accuracy of lake arms by path length, grid size and split, paired differences, and the T sweep.

A thin script over `thinkpix.analysis.lake_arms` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.lake_arms import main

if __name__ == "__main__":
    raise SystemExit(main())
