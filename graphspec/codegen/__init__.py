"""Writing generated modules, for every code-generating backend: the one place text enters
generated source (text.py), the statements and their printing with values freed after
their last use (emit.py), and kernels copied with exactly the helpers they call (kernels.py).
Each backend brings its kernels and templates."""
