"""`thinkpix serve`: a Gradio page over the bundled models (text to image with verdicts, RSR routing,
the lake, the class DiT). Gradio is an optional extra (`pip install -e '.[web]'`); every module here
computes what the page shows with the core install alone (`service` loads the models, `*_tab` run
each tab's action, `typed_prompt`, `drawing` and `lake_board` help them), and `app` is the only one that
imports gradio."""
