"""Writing generated modules: the one place text enters generated source (text.py)."""
