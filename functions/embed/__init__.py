"""``embed``: sentence embeddings (all-MiniLM-L6-v2, run in numpy) of calendar events,
emails and Hacker News pages, for semantic search over them."""
