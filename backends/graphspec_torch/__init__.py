"""graphspec's PyTorch backend (CUDA when present)."""
