"""Serving: answering prompts under a preference, in three parts and the commands that use them.

- `policies/`: the one interface every method answers through (`PreferencePolicy`), the table of kinds (`KINDS`),
  a policy folder's load and save, and one module per kind (plain, best-of-n, wic, soups, mod, mahalo, moslim).
- `decoding/`: decoding helpers only kinds use (mixed decoding, step-level guided decoding, prefix scorers, the
  arithmetic value head).
- `backends/`: the causal LMs that sample candidates (Hugging Face `generate`, vLLM).
- `server/`: `preforch serve`, the OpenAI-compatible HTTP server (app, wire schema, batcher, playground).
- here: `config.py` (the generate, serve and train-value-head configs), `generate.py` (`preforch generate`),
  `train_value_head.py` (`preforch train-value-head`).

Inside serving the parts stand on each other in this order (tests/test_layers.py): backends and decoding import
nothing of serving; policies may import them; config imports policies' kind table; generate, train_value_head and
server may import any of those; nothing in serving imports server, generate or train_value_head, and this file
only names them.

The names below are the public ones, importable from here whatever module holds them (loaded on first use, so
`import preforch.serving` stays cheap): e.g. `from preforch.serving import load_preference_policy`.
"""

from __future__ import annotations

from preforch.tables import load_attr

EXPORTS: dict[str, str] = {
    "PreferencePolicy": "preforch.serving.policies.policy:PreferencePolicy",
    "LoadOptions": "preforch.serving.policies.policy:LoadOptions",
    "KINDS": "preforch.serving.policies.kinds:KINDS",
    "load_preference_policy": "preforch.serving.policies.folder:load_preference_policy",
    "save_preference_policy": "preforch.serving.policies.folder:save_preference_policy",
    "run_generate": "preforch.serving.generate:run_generate",
    "Served": "preforch.serving.server.served:Served",
    "create_app": "preforch.serving.server.http:create_app",
    "load_served": "preforch.serving.server.serve:load_served",
}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'preforch.serving' has no attribute {name!r}")
    return load_attr(EXPORTS[name])
