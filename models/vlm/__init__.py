"""``vlm``: a vision-language model (transformers, MiniCPM-V by default) whose answer is
forced by outlines into the catalog's JSON Schema of an image analysis (KServe predictor)."""
