"""The differential test corpus (see `programs.py`)."""
