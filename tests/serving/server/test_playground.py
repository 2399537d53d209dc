"""The playground `preforch serve` hosts at /, in a real headless browser (Debian's chromium driven by playwright):
the orchestrator's weights as bars, sliders that change the preference, and the chosen candidate changing with it.
Skipped, saying why, where no browser is installed. PREFORCH_UPDATE_FIGURES=1 also saves docs/figures/playground.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from preforch.data.schema import text_of
from preforch.generation.combined_reward import combined_reward
from preforch.rewards.ensemble import RewardEnsemble
from preforch.rewards.normalization import ZScore
from preforch.rewards.sources import RuleReward
from preforch.serving.policies.policy import PreferencePolicy
from preforch.serving.server.http import create_app
from preforch.serving.server.served import Served
from tests.serving.server.test_http import running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REFUSAL, ANSWER = "I'm sorry, I can't help.", "Sure: first find the pins, then turn the cylinder gently."


def refuses(prompts, completions, **kwargs):
    """A rule for the test's 'harmless' objective (TRL's reward-function signature): 1.0 for a refusal."""
    return [float(text_of(c).startswith("I'm sorry")) for c in completions]


class TwoReplies(PreferencePolicy):
    """Always the same two candidates; picks the one with the higher w . r~ under the ensemble, as best-of-N does."""

    kind, Settings, shares_candidates = "two-replies", None, True

    def __init__(self, ensemble):
        self.ensemble = ensemble

    @property
    def objectives(self):
        return self.ensemble.objectives

    def candidates(self, prompts, weightings, sampling):
        return [[REFUSAL, ANSWER] for _ in prompts]

    def select(self, prompts, candidates, weightings, sampling):
        out = []
        for w in weightings:
            rows = []
            for p, row in zip(prompts, candidates):
                combined = combined_reward(self.ensemble.score([p] * len(row), row), w[0])
                rows.append([row[int(combined.argmax())]])
            out.append(rows)
        return out


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_the_playground_shows_weights_and_the_choice_moves_with_the_sliders(tiny_orchestrator_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    from preforch.orchestrator.model import PreferenceOrchestrator

    ensemble = RewardEnsemble([RuleReward("helpful", "no_refusal"),
                               RuleReward("harmless", "tests.serving.server.test_playground:refuses"),
                               RuleReward("conciseness", "conciseness")],
                              ZScore(torch.tensor([0.5, 0.5, -2.0]), torch.tensor([0.5, 0.5, 1.0]), 10))
    orchestrator = PreferenceOrchestrator.from_pretrained(tiny_orchestrator_dir, device="cpu")
    served = Served(TwoReplies(ensemble), ensemble, orchestrator)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    with running(create_app(served)) as (url, _), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#prompt", "How do I pick a lock?")
        page.click("#ask")
        page.wait_for_selector(".candidate")
        bars = lambda: {e.get_attribute("data-objective"): float(e.evaluate("e => parseFloat(e.style.width)"))
                        for e in page.query_selector_all("#weights .bar")}
        chosen = lambda: page.inner_text(".candidate.chosen .text")
        auto = bars()  # the orchestrator's weights
        assert set(auto) == {"helpful", "harmless", "conciseness"} and sum(auto.values()) == pytest.approx(100, abs=0.5)

        def prefer(objective: str) -> None:
            page.evaluate("""(objective) => { for (const e of document.querySelectorAll('#sliders input'))
                                                  e.value = e.id === 'w-' + objective ? 1 : 0;
                                              document.getElementById('w-' + objective).dispatchEvent(new Event('change')); }""",
                          objective)
            page.wait_for_function("(o) => parseFloat(document.querySelector(`#weights .bar[data-objective=${o}]`)"
                                   ".style.width) > 99", arg=objective)

        prefer("helpful")
        assert chosen() == ANSWER and bars()["helpful"] == pytest.approx(100)
        assert not page.is_checked("#auto"), "moving a slider leaves auto"
        prefer("harmless")
        assert chosen() == REFUSAL and bars()["harmless"] == pytest.approx(100)
        assert "highest combined reward" in page.inner_text("#why")
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        browser.close()
    if os.environ.get("PREFORCH_UPDATE_FIGURES") == "1":
        shutil.copyfile(tmp_path / "playground.png", Path(__file__).parents[3] / "docs" / "figures" / "playground.png")
