"""Rated pairs (scores per reply) and their binning into intensity levels."""

import json

import pytest

from preforch.data.ratings import load_rated, score_level
from preforch.errors import DataError


def test_score_bins_are_equal_width_over_one_to_ten():
    assert [score_level(s, 5) for s in (1, 2.79, 2.8, 5, 6.4, 8.19, 8.2, 10)] == [0, 0, 1, 2, 3, 3, 4, 4]
    assert [score_level(s, 2) for s in (1, 5.49, 5.5, 10)] == [0, 0, 1, 1]


def test_bundled_ultrafeedback_has_ratings():
    rated = load_rated("ultrafeedback:test", limit=5)
    assert len(rated) == 5 and all(1 <= r.score_rejected <= r.score_chosen <= 10 for r in rated)


@pytest.mark.parametrize("record, message", [
    ({"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": 7}, r"r.jsonl:2: missing field 'score_rejected'"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "metadata": {"score_chosen": 11, "score_rejected": 2}},
     r"r.jsonl:2: field 'score_chosen' = 11 is outside the score range \[1, 10\]"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": "high", "score_rejected": 2},
     r"r.jsonl:2: field 'score_chosen' must be a number"),
])
def test_bad_ratings_name_file_line_and_field(tmp_path, record, message):
    good = {"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": 8, "score_rejected": 3}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=message):
        load_rated(str(path))
