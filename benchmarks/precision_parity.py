"""Loss parity of runs trained in different precisions from the same config and seed.

A thin script over `thinkpix.analysis.precision_parity` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.precision_parity import main

if __name__ == "__main__":
    main()
