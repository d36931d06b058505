"""How much two arms' images differ: the mean absolute pixel difference over shared samples.

A thin script over `thinkpix.analysis.folder_difference` (its docstring tells the usage); run it from a clone.
"""

from thinkpix.analysis.folder_difference import main

if __name__ == "__main__":
    main()
