"""Small command-line tools behind the top-level entry points (``preprocess_data.py``, ...)."""
