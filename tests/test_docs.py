"""The documentation cannot drift from the code: the MkDocs site builds with --strict (a broken link, anchor or a page
missing from mkdocs.yml's nav fails), every `preforch <command> --flag` written in README.md and docs/ is in that
command's --help, every recipe the docs name exists, no user-facing text names an internal issue number (the
changelog may), and the built site renders in a real headless browser (Debian's chromium driven by playwright;
skipped, saying why, where there is none). PREFORCH_UPDATE_FIGURES=1 also saves docs/figures/docs_site.png."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path

import pytest

from preforch.cli import COMMANDS, main

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# "issue 13", "issues 40 and 43", "issue-12": this project's tracker. An upstream "issue #54" names its repository.
ISSUE = re.compile(r"\bissues?[ -]\d+", re.I)
CHANGELOG_PAGE = DOCS / "changelog.md"  # includes CHANGELOG.md, which may name issues


def _doc_files() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*.md") if p != CHANGELOG_PAGE)]


def _build(site: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(site)], cwd=root, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("docs") / "site"
    result = _build(site)
    assert result.returncode == 0, f"mkdocs build --strict failed (a new page goes in mkdocs.yml's nav):\n{result.stderr[-6000:]}"
    return site


def test_the_site_builds_strict(site):
    for page in ["index.html", "getting-started/index.html", "methods/pro-weights/index.html", "results/index.html",
                 "history/index.html", "api/orchestrator/index.html", "changelog/index.html"]:
        assert (site / page).is_file(), page
    api = (site / "api" / "orchestrator" / "index.html").read_text()
    assert "orchestrator_kl_loss" in api, "the API reference lost its docstrings"
    assert "0.1.0" in (site / "changelog" / "index.html").read_text(), "the changelog page no longer includes CHANGELOG.md"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The check has teeth: a copy of the docs with one dead link does not build."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    for name in ["mkdocs.yml", "CHANGELOG.md"]:
        shutil.copy(ROOT / name, copy / name)
    for name in ["scripts", "preforch"]:
        (copy / name).symlink_to(ROOT / name)
    (copy / "docs" / "index.md").write_text((DOCS / "index.md").read_text() + "\n[gone](no-such-page.md)\n")
    result = _build(tmp_path / "site", copy)
    assert result.returncode != 0 and "no-such-page.md" in result.stderr


def _help(command: str | None, capsys) -> str:
    argv = ["--help"] if command is None else [command, "--help"]
    try:
        assert main(argv) == 0
    except SystemExit as e:  # argparse's --help exits 0
        assert e.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_no_help_names_an_internal_issue(command, capsys):
    text = _help(command, capsys)
    assert text.strip()
    assert not ISSUE.search(text), f"preforch {command or ''} --help: {ISSUE.search(text).group()!r}"


def test_no_docs_page_names_an_internal_issue():
    found = [f"{p.relative_to(ROOT)}:{n}: {m.group()}" for p in _doc_files()
             for n, line in enumerate(p.read_text().splitlines(), 1) for m in [ISSUE.search(line)] if m]
    assert not found, "issue numbers belong in CHANGELOG.md only:\n" + "\n".join(found)


def test_no_report_or_docstring_names_an_internal_issue():
    """Reports and help are built from these files, and the API reference from their docstrings."""
    files = [*ROOT.glob("preforch/**/*.py"), *ROOT.glob("preforch/**/*.yaml"), *ROOT.glob("preforch/**/*.html")]
    found = [f"{p.relative_to(ROOT)}:{n}: {m.group()}" for p in sorted(files)
             for n, line in enumerate(p.read_text().splitlines(), 1) for m in [ISSUE.search(line)] if m]
    assert not found, "\n".join(found)


def _commands_in(text: str) -> list[tuple[str, list[str]]]:
    """(command, its --options) of every `preforch <command> ...` in a bash block (`$P`, `.venv/bin/preforch`,
    `-m preforch` after torchrun / accelerate; continuations joined) or in an inline code span."""
    out = []
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
    for line in lines:
        words = line.split("#")[0].split()
        for i, word in enumerate(words[:-1]):
            if word in ("$P", "preforch", ".venv/bin/preforch") and (i == 0 or words[i - 1] == "-m"):
                command = words[i + 1]
                if not command.startswith("-") and not command.startswith("<"):
                    out.append((command, [w.split("=")[0] for w in words[i + 2:] if w.startswith("--")]))
                break
    return out


def _documented() -> list[tuple[str, str, list[str]]]:
    return [(p.relative_to(ROOT).as_posix(), c, o) for p in _doc_files() for c, o in _commands_in(p.read_text())]


def test_every_documented_flag_is_in_its_commands_help(capsys):
    from trl import DPOConfig, GRPOConfig, RLOOConfig, SFTConfig

    trl_fields = {f"trl.{f.name}" for c in (GRPOConfig, RLOOConfig, SFTConfig, DPOConfig) for f in fields(c)}
    documented = _documented()
    assert sum(doc == "README.md" for doc, _, _ in documented) >= 5, "README lost its commands"
    assert len(documented) > 100, "the docs lost their recipes"
    helps: dict[str, set[str]] = {}
    problems = []
    for doc, command, options in documented:
        if command not in COMMANDS:
            problems.append(f"{doc}: unknown command preforch {command}")
            continue
        if command not in helps:
            helps[command] = set(re.findall(r"--[A-Za-z0-9_.-]+", _help(command, capsys)))
        known = helps[command]
        for option in options:
            if option.startswith("--trl.") and "--trl" in known and option[2:] in trl_fields:
                continue
            if option not in known:
                problems.append(f"{doc}: preforch {command} {option} is not in `preforch {command} --help`")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_recipe_the_docs_name_exists():
    named = {(p.relative_to(ROOT).as_posix(), r) for p in _doc_files()
             for r in re.findall(r"preforch/recipes/[\w.-]+\.ya?ml", p.read_text())}
    assert len(named) > 20
    missing = sorted(f"{doc}: {recipe}" for doc, recipe in named if not (ROOT / recipe).is_file())
    assert not missing, "\n".join(missing)


def test_the_docs_checks_see_inline_and_launcher_commands():
    text = ("Run `preforch train-rm --levels 2 2` or:\n```bash\nP=.venv/bin/preforch\n$P weights --orchestrator X \\\n"
            "  --output y\ntorchrun --standalone -m preforch train-rm --config r.yaml\n```\n")
    assert _commands_in(text) == [("weights", ["--orchestrator", "--output"]), ("train-rm", ["--config"]),
                                  ("train-rm", ["--levels"])]


@contextlib.contextmanager
def _serving(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_the_site_renders_in_a_browser(site, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    errors: list[str] = []
    with _serving(site) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        assert page.title().startswith("preforch")
        assert "Preference Orchestrator" in page.inner_text("article")
        nav = page.inner_text("nav.md-nav--primary")
        for entry in ["Getting started", "Methods", "Serving", "Results", "API reference", "Changelog"]:
            assert entry in nav, entry
        page.screenshot(path=str(tmp_path / "index.png"))
        page.goto(url + "/methods/pro-weights/")
        article = page.inner_text("article")
        assert "PRO weights" in article and "Current result" in article and "softmax" in article
        table = page.query_selector("article table")
        assert table is not None and table.bounding_box()["width"] > 300, "the options table did not render"
        page.click("text=Results: Quickstart")
        page.wait_for_url(re.compile(r"/results/#quickstart$"))
        page.goto(url + "/methods/pro-weights/")
        page.screenshot(path=str(tmp_path / "method.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert (tmp_path / "index.png").stat().st_size > 10_000 and (tmp_path / "method.png").stat().st_size > 10_000
    if os.environ.get("PREFORCH_UPDATE_FIGURES") == "1":
        shutil.copyfile(tmp_path / "index.png", DOCS / "figures" / "docs_site.png")
        shutil.copyfile(tmp_path / "method.png", DOCS / "figures" / "docs_site_method.png")
