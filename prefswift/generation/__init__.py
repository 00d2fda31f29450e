"""The one generation engine of prefswift: continuous batching over a transformers model, several LoRA adapters per
batch, per-request sampling (temperature, top_k, top_p, repetition penalty, seed), stops, streaming.

Used by `prefswift deploy` and `prefswift web` (through their HTTP layers in `prefswift.serve` / `prefswift.web`) and,
without HTTP, by `prefswift infer`, `prefswift eval --mode winrate` and `prefswift sample` (`generation.local`).
"""
