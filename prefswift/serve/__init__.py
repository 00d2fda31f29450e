"""Serving: the generation engine (`engine`) and the OpenAI-compatible HTTP layer on it (`app`)."""
