"""Lake diffusion runs trained in different precisions (and seeds), compared paired per map.

A thin script over `thinkpix.analysis.lake_precision_parity` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.lake_precision_parity import main

if __name__ == "__main__":
    main()
