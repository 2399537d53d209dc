"""Language-model backends: what samples a kind's candidates, behind one `sample(prompts, sampling)` interface.

- `lm.py`: a Hugging Face causal LM (transformers `generate`), loaded on first use.
- `vllm_lm.py`: the same through vLLM (`--backend vllm`, a GPU), and `causal_lm`, which picks one.

May import preforch's layers below serving; nothing of serving itself.
"""
