"""The analysis behind the benchmark scripts and the docs' tables and figures: comparing arms on identical
prompts and noise, what an adapter learned, the class and lake tables, figures. `benchmarks/NAME.py` runs
`thinkpix.analysis.NAME.main` from a clone; tests import these modules as any other."""
