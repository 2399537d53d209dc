"""Decoding helpers that only preference-policy kinds use (mod and mahalo).

- `mixed_decoding.py`: several LMs (or heads) decoding as one, their log-probs mixed per row by w.
- `guided_decoding.py`: step-level best-of-N on a continuing KV cache.
- `step_scorers.py`: prefix scores for guided decoding (an ensemble's, the arithmetic objective's).
- `value_head.py`: the arithmetic objective's value head (a process reward model) and its fitting helpers;
  `serving/train_value_head.py` trains one.

May import preforch's layers below serving; nothing of serving itself.
"""
