import json
from dataclasses import asdict, dataclass

import pytest
import torch

from preforch.cli import main
from preforch.errors import ConfigError, ObjectiveMismatchError, WeightsError
from preforch.evaluation.config import EvaluateConfig
from preforch.evaluation.harness import run_evaluation
from preforch.generation.combined_reward import select_best
from preforch.generation.sampling import SamplingConfig
from preforch.serving.config import GenerateConfig
from preforch.serving.policies.folder import POLICY_FILE, load_preference_policy, save_preference_policy
from preforch.serving.policies.kinds import KINDS, kind_class
from preforch.serving.policies.policy import LoadOptions, PreferencePolicy
from tests.conftest import eval_config, make_wic_policy

OBJ = ("helpful", "harmless", "conciseness")


@dataclass(frozen=True)
class LoudestSettings:
    objectives: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "objectives", tuple(self.objectives))


class LoudestPolicy(PreferencePolicy):
    """A toy kind with no model: it answers with the name of the objective weighted most."""

    kind = "loudest"
    Settings = LoudestSettings

    @property
    def objectives(self):
        return self.settings.objectives

    def candidates(self, prompts, weightings, sampling):
        return [[self.objectives[int(w[p].argmax())]] * sampling.num_candidates
                for w in weightings for p in range(len(prompts))]


@dataclass(frozen=True)
class ListedSettings:
    objectives: tuple[str, ...]
    replies: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "replies", tuple(self.replies))


class ListedPolicy(PreferencePolicy):
    """A toy kind with no model: its candidates for every prompt are `replies`, in order."""

    kind, Settings, shares_candidates = "listed", ListedSettings, True

    @property
    def objectives(self):
        return self.settings.objectives

    def candidates(self, prompts, weightings, sampling):
        return [list(self.settings.replies[:sampling.num_candidates]) for _ in prompts]


def digits(prompts=None, completions=(), **kwargs) -> list[float | None]:
    """A rule that judges only replies with digits (how many): None, not applicable, on the others."""
    counts = [sum(ch.isdigit() for ch in c[-1]["content"]) for c in completions]
    return [float(n) if n else None for n in counts]


@pytest.fixture
def listed_dir(tmp_path, monkeypatch):
    """(a listed policy answering "ok" or "123", an ensemble of conciseness and `digits` with hand-set statistics)."""
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.normalization import ZScore
    from preforch.rewards.sources import RuleReward

    monkeypatch.setitem(KINDS, "listed", f"{__name__}:ListedPolicy")
    save_preference_policy(ListedPolicy(ListedSettings(("conciseness", "digits"), ("ok", "123")), LoadOptions()),
                           tmp_path / "base")
    RewardEnsemble([RuleReward("conciseness", "conciseness"), RuleReward("digits", f"{__name__}:digits")],
                   ZScore(torch.tensor([-2.0, 0.0]), torch.tensor([0.5, 1.0]), 10)).save(tmp_path / "ens")
    return str(tmp_path / "base"), str(tmp_path / "ens")


def test_best_of_n_ranks_by_the_objectives_that_apply_never_by_a_nan(listed_dir):
    """"ok" has no digits, so the digits rule does not apply to it. Before, its score was NaN, the combined reward
    NaN, and a descending sort put NaN first: best-of-N chose it for what it lacked. Now "ok" is judged by
    conciseness alone and "123", as concise and rich in digits, wins."""
    from preforch.serving.policies.best_of_n import BestOfNPolicy, BestOfNSettings

    policy = BestOfNPolicy(BestOfNSettings(*listed_dir, num_candidates=2), LoadOptions())
    prompts = [({"role": "user", "content": "count"},)]
    ranked = policy.respond(prompts, torch.tensor([[0.5, 0.5]]), SamplingConfig(num_candidates=2, temperature=1.0))
    assert ranked == [["123", "ok"]]
    scores = policy.ensemble.score(prompts * 2, ["ok", "123"])
    assert scores.applies.tolist() == [[True, False], [True, True]]
    assert select_best(scores.view(1, 2, 2), torch.tensor([[0.5, 0.5]])).tolist() == [1]


def test_generate_writes_null_where_an_objective_does_not_apply(listed_dir, tmp_path):
    """The listed policy answers "ok", which the digits rule does not judge: null in the file (before: NaN, which is
    not JSON), and the combined reward is its conciseness score alone."""
    out = tmp_path / "gen.jsonl"
    assert main(["generate", "--prompt", "count", "--policy", listed_dir[0], "--ensemble", listed_dir[1],
                 "--weights", "conciseness=0.5,digits=0.5", "--output", str(out)]) == 0
    row = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    assert row["response"] == "ok" and row["rewards"]["digits"] is None
    assert row["combined_reward"] == pytest.approx(row["rewards"]["conciseness"])


@pytest.fixture
def loudest_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(KINDS, "loudest", f"{__name__}:LoudestPolicy")
    folder = tmp_path / "loudest"
    save_preference_policy(LoudestPolicy(LoudestSettings(OBJ), LoadOptions()), folder)
    return folder


def test_every_kind_is_registered_under_its_own_name():
    for name in KINDS:
        assert kind_class(name, "test").kind == name


def test_a_bare_folder_is_the_first_kind_in_the_table_whose_marker_file_it_holds(tmp_path):
    from preforch.serving.policies.folder import Stored, read_folder

    markers = {k: kind_class(k, "test").marker_file for k in KINDS}
    assert {k: m for k, m in markers.items() if m} == {"wic": "wic.json", "soups": "experts.json",
                                                      "moslim": "moslim.json", "mahalo": "mahalo.json"}
    assert read_folder(str(tmp_path), LoadOptions()).kind is None
    for kind in ("mahalo", "moslim", "soups", "wic"):  # each file added outranks the ones before it (wic first)
        (tmp_path / markers[kind]).write_text("{}")
        assert read_folder(str(tmp_path), LoadOptions()) == Stored(kind, {"policy": str(tmp_path)})


def test_a_kind_registered_in_the_table_is_evaluated_end_to_end(loudest_dir, tiny_ensemble_dir, tmp_path, capsys):
    r = run_evaluation(eval_config(tmp_path, str(loudest_dir), tiny_ensemble_dir))
    assert r["method"] == "loudest" and r["policy_settings"] == {"kind": "loudest", "objectives": list(OBJ)}
    assert r["num_candidates"] == 1 and r["alignment_gap"] == {} and r["tag_reading"] is None
    assert r["compute"]["generated"] == 6 * (6 + 1)  # prompts x (grid points + uniform), one generation call
    assert not r["compute"]["cache_hit"] and run_evaluation(eval_config(tmp_path, str(loudest_dir), tiny_ensemble_dir))["compute"]["cache_hit"]
    assert main(["generate", "--prompt", "hi", "--policy", str(loudest_dir), "--ensemble", tiny_ensemble_dir,
                 "--weights", "harmless=0.9,helpful=0.1", "--output", str(tmp_path / "gen.jsonl")]) == 0
    assert json.loads((tmp_path / "gen.jsonl").read_text())["response"] == "harmless"
    assert EvaluateConfig(method="loudest").method == "loudest"


def _policies(kind, tiny_policy_dir, tiny_ensemble_dir, tmp_path, experts=None):
    sources = {"wic": lambda: make_wic_policy(tiny_policy_dir, tmp_path, "pro-wic")[0], "soups": lambda: experts,
               "mod": lambda: experts}
    source = sources.get(kind, lambda: tiny_policy_dir)()
    return load_preference_policy(source, kind, objectives=OBJ, ensemble=tiny_ensemble_dir, num_candidates=3)


@pytest.mark.parametrize("kind", ["plain", "best-of-n", "wic", "soups", "mod"])
def test_every_kind_round_trips_and_answers_through_evaluate_and_generate(kind, tiny_policy_dir, tiny_ensemble_dir,
                                                                          tiny_experts_dir, tmp_path):
    policy = _policies(kind, tiny_policy_dir, tiny_ensemble_dir, tmp_path, tiny_experts_dir)
    folder = tmp_path / "served"
    save_preference_policy(policy, folder)
    stored = json.loads((folder / POLICY_FILE).read_text())
    again = load_preference_policy(str(folder))
    assert stored["kind"] == again.kind == kind and again.settings == policy.settings
    assert again.objectives == OBJ

    r = run_evaluation(eval_config(tmp_path, str(folder), tiny_ensemble_dir, num_candidates=None, output_dir=str(tmp_path / "e")))
    assert r["method"] == kind and r["num_candidates"] == (3 if kind == "best-of-n" else 1)
    out = tmp_path / "gen.jsonl"
    assert main(["generate", "--prompt", "How do I bake bread?", "--policy", str(folder), "--ensemble", tiny_ensemble_dir,
                 "--weights", "helpful=0.8,harmless=0.2", "--max_new_tokens", "4", "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    assert set(row["rewards"]) == set(OBJ) and row["prompt"].endswith("How do I bake bread?")
    assert row["prompt"].startswith("<preference ") == (kind == "wic")


def test_best_of_n_samples_once_for_every_weighting_and_picks_by_the_weighted_reward(tiny_policy_dir, tiny_ensemble_dir):
    policy = _policies("best-of-n", tiny_policy_dir, tiny_ensemble_dir, None)
    prompts = [({"role": "user", "content": f"question {i}"},) for i in range(3)]
    weightings = [torch.tensor([[1.0, 0.0, 0.0]] * 3), torch.tensor([[0.0, 0.0, 1.0]] * 3)]
    sampling = SamplingConfig(num_candidates=2, max_new_tokens=4)
    assert policy.shares_candidates
    candidates = policy.candidates(prompts, weightings, sampling)
    assert len(candidates) == 3 and all(len(row) == 3 for row in candidates)  # [P][N]: one row per prompt
    picks = policy.select(prompts, candidates, weightings, sampling)
    scores = policy.ensemble.score([p for p in prompts for _ in range(3)], [c for row in candidates for c in row]).view(3, 3, -1)
    for w, pick in zip(weightings, picks):
        assert [row[0] for row in pick] == [candidates[p][i] for p, i in enumerate(select_best(scores, w).tolist())]
        assert all(len(row) == 2 for row in pick)  # the two best
    assert policy.respond(prompts, weightings[0], sampling) == picks[0]  # seeded: the same candidates again


def test_best_of_n_reranks_a_wic_policy_and_a_policy_folder_may_hold_its_model(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    wic, _ = make_wic_policy(tiny_policy_dir, tmp_path, "ric")
    reranked = load_preference_policy(wic, "best-of-n", ensemble=tiny_ensemble_dir)
    assert reranked.base.kind == "wic" and not reranked.shares_candidates
    prompts = [({"role": "user", "content": "hi"},)]
    assert reranked.conditioned(prompts, torch.tensor([[1.0, 0.0, 0.0]]))[0][-1]["content"].startswith("<scores ")
    # a best-of-n policy saved into its own model folder: its base is the model there, not the file again
    save_preference_policy(load_preference_policy(tiny_policy_dir, "best-of-n", ensemble=tiny_ensemble_dir), tmp_path / "bon")
    stored = json.loads((tmp_path / "bon" / POLICY_FILE).read_text())
    import shutil

    shutil.copytree(tiny_policy_dir, tmp_path / "both")
    (tmp_path / "both" / POLICY_FILE).write_text(json.dumps({**stored, "policy": "."}))
    policy = load_preference_policy(str(tmp_path / "both"))
    assert policy.kind == "best-of-n" and policy.base.kind == "plain"
    assert policy.base.settings.policy == str(tmp_path / "both")


def _write(folder, **data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / POLICY_FILE).write_text(json.dumps(data))
    return str(folder)


def test_bad_policy_files_name_the_file_and_field(tiny_policy_dir, tmp_path):
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: field 'kind': unknown kind 'soup'; registered kinds: plain"):
        load_preference_policy(_write(tmp_path / "a", kind="soup", policy=tiny_policy_dir))
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: field 'kind' missing"):
        load_preference_policy(_write(tmp_path / "b", policy=tiny_policy_dir))
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: field 'num_candidates' is not a setting of kind 'plain'"):
        load_preference_policy(_write(tmp_path / "c", kind="plain", policy=tiny_policy_dir, objectives=OBJ, num_candidates=2))
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: field 'ensemble' missing"):
        load_preference_policy(_write(tmp_path / "d", kind="best-of-n", policy=tiny_policy_dir))
    with pytest.raises(ConfigError, match=rf"{POLICY_FILE}: kind 'plain', but method 'wic' was asked for"):
        load_preference_policy(_write(tmp_path / "e", kind="plain", policy=tiny_policy_dir, objectives=OBJ), "wic")
    with pytest.raises(ConfigError, match="method: unknown kind 'soup'"):
        load_preference_policy(tiny_policy_dir, "soup")
    with pytest.raises(ConfigError, match="method: unknown kind 'soup'; registered kinds: plain, best-of-n, wic"):
        GenerateConfig(method="soup")


def test_weights_off_the_simplex_or_of_the_wrong_size_are_refused(tiny_policy_dir):
    policy = load_preference_policy(tiny_policy_dir, objectives=OBJ)
    prompts = [({"role": "user", "content": "hi"},)] * 2
    for weights, message in [(torch.tensor([[0.5, 0.5]] * 2), "expected 3 weights"),
                             (torch.tensor([[0.7, 0.2, 0.0]] * 2), "must sum to 1"),
                             (torch.tensor([[1.0, 0.0, 0.0]]), r"one row per prompt, \[2, 3\]")]:
        with pytest.raises(WeightsError, match=message):
            policy.respond(prompts, weights)


def test_a_policy_with_other_objectives_is_refused_before_anything_is_written(tiny_policy_dir, tiny_ensemble_dir, tmp_path, capsys):
    wic, _ = make_wic_policy(tiny_policy_dir, tmp_path, "pro-wic", objectives=("helpful", "harmless"))
    plain = _write(tmp_path / "plain", kind="plain", policy=tiny_policy_dir, objectives=["helpful", "harmless"])
    for policy in (wic, plain):
        with pytest.raises(ObjectiveMismatchError, match="do not match the reward ensemble's"):
            run_evaluation(eval_config(tmp_path, policy, tiny_ensemble_dir))
        assert not (tmp_path / "eval").exists()
        assert main(["generate", "--prompt", "hi", "--policy", policy, "--ensemble", tiny_ensemble_dir,
                     "--weights", "helpful=1", "--output", str(tmp_path / "gen.jsonl")]) == 2
        assert "do not match the reward ensemble's" in capsys.readouterr().err
        assert not (tmp_path / "gen.jsonl").exists()


def test_settings_are_json_and_given_settings_override_the_file(tiny_policy_dir, tiny_ensemble_dir, tmp_path):
    folder = _write(tmp_path / "bon", kind="best-of-n", policy=tiny_policy_dir, ensemble=tiny_ensemble_dir, num_candidates=8)
    assert load_preference_policy(folder).settings.num_candidates == 8
    assert load_preference_policy(folder, num_candidates=None).settings.num_candidates == 8  # None: not given
    assert load_preference_policy(folder, num_candidates=2, temperature=0.5).settings.num_candidates == 2
    assert json.loads(json.dumps(asdict(load_preference_policy(folder).settings)))["num_candidates"] == 8
