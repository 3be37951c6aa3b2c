"""Code generators: LLVM (CPU) and CUDA (GPU)."""
