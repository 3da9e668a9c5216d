"""``reason``: a language model (Mistral Small 3.2 on Ollama, or a transformers model
in-process) infers context from one device's utterances and from archived documents,
answering in the catalog's schema of ``analysis.inferred_context.mistral_results``."""
