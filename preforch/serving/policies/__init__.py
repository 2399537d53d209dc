"""The preference-policy kinds: how each method answers prompts under per-prompt weights w [P, K].

- `policy.py`: the one interface (`PreferencePolicy`: candidates + select, respond) and `LoadOptions`.
- `kinds.py`: `KINDS`, the table of kind name -> "module:Class" (a new kind is one module here and one row there).
- `folder.py`: a policy folder's preference_policy.json, read and written; bare folders by their marker files.
- one module per kind: plain.py, best_of_n.py, wic.py, soups.py, mod.py, mahalo.py, moslim.py; experts.py is what
  soups and mod share.

May import preforch's layers below serving, `serving.backends` (what samples) and `serving.decoding` (mixed and
guided decoding); never `serving.config`, `serving.server` or the commands beside them.
"""
