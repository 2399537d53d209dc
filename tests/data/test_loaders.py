import gzip
import json

import pytest

from preforch.data.hh import parse_dialogue, split_pair
from preforch.data.loaders import (BUNDLED, load_bundled, load_file, load_hf_dataset, load_many, load_preferences,
                                    user_turns)
from preforch.errors import DataError


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_sets_load_with_sources(name):
    data = load_bundled(name, "test")
    assert len(data) >= 190
    assert {p.source for p in data} == {BUNDLED[name][1]}
    for p in data.pairs[:50]:
        assert p.prompt[-1]["role"] == "user" and p.prompt[-1]["content"].strip()
        assert p.chosen.strip() and p.rejected.strip()


def test_hh_dialogue_becomes_messages_and_replies():
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Pick a lock?\n\nAssistant: I can't help with that."
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Pick a lock?\n\nAssistant: Sure, take a pin."
    prompt, c, r = split_pair(chosen, rejected, "x")
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
    assert prompt[-1]["content"] == "Pick a lock?"
    assert (c, r) == ("I can't help with that.", "Sure, take a pin.")


def test_hh_parse_rejects_non_dialogue():
    with pytest.raises(DataError, match="not an HH-RLHF dialogue"):
        parse_dialogue("just text", "f.jsonl:3")


def test_jsonl_string_and_conversational_shapes(tmp_path):
    f = tmp_path / "prefs.jsonl"
    rows = [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}],
         "rejected": [{"role": "assistant", "content": "Go away"}], "source": "chat"},
        {"chosen": "\n\nHuman: Q\n\nAssistant: good", "rejected": "\n\nHuman: Q\n\nAssistant: bad"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_file(f)
    assert [p.chosen for p in data] == ["4", "Hello", "good"]
    assert data[1].source == "chat" and data[0].source == "prefs"


def test_csv_and_gzip_and_json_list(tmp_path):
    (tmp_path / "p.csv").write_text("prompt,chosen,rejected\nhello,hi there,go away\n")
    assert load_file(tmp_path / "p.csv")[0].chosen == "hi there"
    with gzip.open(tmp_path / "p.jsonl.gz", "wt") as f:
        f.write(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    assert len(load_file(tmp_path / "p.jsonl.gz")) == 1
    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "c"}]))
    assert len(load_file(tmp_path / "p.json")) == 1


def test_hf_dataset_loads():
    from datasets import Dataset

    ds = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}] * 3)
    assert len(load_hf_dataset(ds, source="mine")) == 3
    assert load_hf_dataset(ds, source="mine")[0].source == "mine"


def test_round_trip_through_trl_format(pairs):
    again = load_hf_dataset(pairs.to_hf())
    assert [p.chosen for p in again] == [p.chosen for p in pairs]
    assert again[1].source == pairs[1].source


def test_malformed_jsonl_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        load_file(f)


def test_missing_column_names_line_and_field(tmp_path):
    f = tmp_path / "cols.jsonl"
    f.write_text('{"prompt": "a", "chosen": "b"}\n')
    with pytest.raises(DataError, match=r"cols.jsonl:1: missing field\(s\) \['rejected'\]"):
        load_file(f)


def test_missing_column_in_csv(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("prompt,chosen\nhello,hi\n")
    with pytest.raises(DataError, match=r"c.csv:2: missing field"):
        load_file(f)


@pytest.mark.parametrize("prompt", ["", "   ", []])
def test_empty_prompt_is_rejected(tmp_path, prompt):
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"prompt": prompt, "chosen": "b", "rejected": "c"}) + "\n")
    with pytest.raises(DataError, match=r"e.jsonl:1.*prompt is empty"):
        load_file(f)


def test_empty_reply_and_bad_roles(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"prompt": "a", "chosen": "", "rejected": "c"}) + "\n")
    with pytest.raises(DataError, match=r"r.jsonl:1: field 'chosen' is empty"):
        load_file(f)
    f.write_text(json.dumps({"prompt": [{"role": "robot", "content": "x"}], "chosen": "b", "rejected": "c"}) + "\n")
    with pytest.raises(DataError, match="unknown role 'robot'"):
        load_file(f)


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "nope.jsonl")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match="unsupported file type"):
        load_file(tmp_path / "x.parquet")


def test_specs_join_and_unknown_bundled_split():
    both = load_preferences("hh-helpful:test+hh-harmless:test", limit=5)
    assert both.sources == ["hh-helpful"] * 5 + ["hh-harmless"] * 5
    assert len(load_many(["hh-helpful:test", "ultrafeedback:test"], limit=3)) == 6


def test_load_many_keeps_prompts_up_to_max_user_turns_before_capping():
    everything = load_many(["hh-helpful:test"])
    assert max(user_turns(p) for p in everything) > 1  # HH dialogues have follow-up turns
    single = load_many(["hh-helpful:test", "hh-harmless:test"], limit=5, max_user_turns=1)
    assert len(single) == 10 and all(user_turns(p) == 1 for p in single)
    assert single.sources == ["hh-helpful"] * 5 + ["hh-harmless"] * 5
    assert len(load_many(["hh-helpful:test"], max_user_turns=2)) == sum(user_turns(p) <= 2 for p in everything)


def test_all_replies_lists_chosen_then_rejected_each_with_its_prompt():
    data = load_many(["hh-helpful:test"], limit=3)
    prompts, replies = data.all_replies()
    assert prompts == data.prompts * 2
    assert replies == [p.chosen for p in data] + [p.rejected for p in data]
    with pytest.raises(DataError, match="split must be"):
        load_preferences("hh-helpful:validation")


def _rows(n: int, bad_row: int | None = None) -> list[dict]:
    return [{"prompt": f"question {i}", "chosen": "" if i == bad_row else f"good {i}", "rejected": f"bad {i}"}
            for i in range(n)]


def test_parquet_arrow_and_saved_folders_load_through_datasets(tmp_path):
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_list(_rows(4))
    ds.to_parquet(str(tmp_path / "pairs.parquet"))
    assert [p.chosen for p in load_preferences(str(tmp_path / "pairs.parquet"))] == [f"good {i}" for i in range(4)]
    ds.save_to_disk(str(tmp_path / "saved"))
    assert len(load_preferences(str(tmp_path / "saved"), limit=3)) == 3
    assert load_preferences(str(tmp_path / "saved"))[0].source == "saved"
    DatasetDict(train=ds, test=Dataset.from_list(_rows(2))).save_to_disk(str(tmp_path / "dict"))
    assert len(load_preferences(f"{tmp_path / 'dict'}:test")) == 2
    with pytest.raises(DataError, match=r"has splits \['test', 'train'\]; name one as .*dict:SPLIT"):
        load_preferences(str(tmp_path / "dict"))
    with pytest.raises(DataError, match=r"no split 'dev'"):
        load_preferences(f"{tmp_path / 'dict'}:dev")
    # a malformed row is named, as a file's line is
    Dataset.from_list(_rows(3, bad_row=2)).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=r"bad.parquet: row 2: field 'chosen' is empty"):
        load_preferences(str(tmp_path / "bad.parquet"))


def test_a_hub_id_not_in_the_offline_cache_fails_with_one_line(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as e:
        load_preferences("someone/no-such-preference-set:train")
    message = str(e.value)
    assert message.startswith("someone/no-such-preference-set:train: could not load it with datasets.load_dataset (offline")
    assert "\n" not in message
    with pytest.raises(DataError, match="missing.jsonl: no such file"):  # a file name stays a file name
        load_preferences("missing.jsonl")
