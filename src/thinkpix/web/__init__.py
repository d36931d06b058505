"""`thinkpix serve`: a Gradio page over the bundled models (text to image with verdicts, RSR routing,
the lake, the class DiT). Gradio is an optional extra (`pip install -e '.[web]'`); the modules here
that compute what the page shows (`prompts`, `drawing`, `actions`, `lake_board`) need only the core
install, and `app` is the only one that imports gradio."""
