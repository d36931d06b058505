"""What an RSR adapter learned, per layer; a run's instruments and their verdict.

A thin script over `thinkpix.analysis.inspect_adapter` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.inspect_adapter import main

if __name__ == "__main__":
    main()
