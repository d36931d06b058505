"""Base vs adapters on the committed GenEval-style set: accuracy with intervals, paired differences.

A thin script over `thinkpix.analysis.compare_adapters` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.compare_adapters import main

if __name__ == "__main__":
    main()
