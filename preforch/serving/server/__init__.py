"""`preforch serve`: any preference policy behind an OpenAI-compatible HTTP endpoint.

- `http.py`: the FastAPI app and its routes (chat and text completions, scoring, OpenRLHF's /get_reward,
  explain, the playground at /).
- `api_schema.py`: request and response shapes, limits, OpenAI's error body.
- `batcher.py`: a bounded queue turned into batched `respond` calls.
- `served.py`: what the routes answer with (weights, generation, scoring, explaining) and its caches.
- `prompt_text.py`: formatted prompt texts read back into chat messages by a chat template.
- `serve.py`: loads the policy, ensemble and orchestrator and runs uvicorn.
- `playground.html`: the page at /.

May import preforch's layers below serving and `serving.policies`, `serving.backends`, `serving.config`; nothing in
serving imports it.
"""
