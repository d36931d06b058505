"""The class-conditional table: base DiT vs adapters, class accuracy and Fréchet distance.

A thin script over `thinkpix.analysis.class_table` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.class_table import main

if __name__ == "__main__":
    main()
