"""Figures the docs show (small, compressed PNGs under docs/figures/).

A thin script over `thinkpix.analysis.make_figures` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.make_figures import main

if __name__ == "__main__":
    main()
