"""Lake figures (small PNGs under docs/figures/).

A thin script over `thinkpix.analysis.lake_figures` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.lake_figures import main

if __name__ == "__main__":
    main()
