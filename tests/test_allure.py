"""Allure results for trials: the result files allure-pytest writes carry each trial's title,
labels, parameters, score and attachments (also under xdist), and the HTML report built from
them by the Allure command line shows a trial's score, labels and trajectory in headless
Chromium (driven by playwright-core; checked on a screenshot and the page's text).

Needs allure-pytest; the report test also needs java, ``allure`` (npm allure-commandline),
``chromium`` and playwright-core (all from ``.ci/allure.sh``). Missing tools skip the tests,
unless ``ALE_REQUIRE_ALLURE=1`` (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

REQUIRE = os.environ.get("ALE_REQUIRE_ALLURE") == "1"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# a real 2x2 RGB PNG (red, green / blue, white): the "screenshot" a trial leaves behind
SCREEN_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\x00\xff\x00\x00\x00\x00\xff\xff\xff\xff"))
    + _png_chunk(b"IEND", b"")
)

LOAN_MAIN = """
from pathlib import Path

INSTRUCTION = "Copy input/data.txt to output/data.txt, upper-cased."


def evaluate(output_dir: Path, reference_dir: Path, sandbox) -> tuple[float, str]:
    out = output_dir / "data.txt"
    if not out.is_file():
        return 0.0, "output/data.txt is missing"
    if out.read_text() == (reference_dir / "data.txt").read_text():
        return 1.0, "schedule matches the reference"
    return 0.0, "schedule differs from the reference"
"""

LOAN_SOLUTION = "tr a-z A-Z < input/data.txt > output/data.txt\ncp input/screen.png output/screen.png\n"


def _require(ok: object, reason: str) -> None:
    if ok:
        return
    if REQUIRE:
        pytest.fail(f"ALE_REQUIRE_ALLURE=1 but {reason}; run `bash .ci/allure.sh`")
    pytest.skip(reason)


def _require_allure_pytest() -> None:
    _require(
        importlib.util.find_spec("allure_pytest"),
        "allure-pytest is not installed (pip install -e '.[allure]')",
    )


@pytest.fixture
def suite(pytester: pytest.Pytester, make_task) -> Path:
    """finance/loan-amortization (its solution also leaves a screenshot) and a broken task."""
    folder = make_task("loan-amortization", domain="finance", main=LOAN_MAIN, solution=LOAN_SOLUTION)
    (folder / "input" / "screen.png").write_bytes(SCREEN_PNG)
    make_task("broken", main="INSTRUCTION = 'no grader here'\n")
    return pytester.path


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    """A subprocess run (allure-commons keeps global state an in-process run would share)."""
    results = pytester.path / "allure-results"
    run = pytester.runpytest_subprocess(
        "tasks", "--ale-agent=oracle", "--ale-agent=noop", f"--alluredir={results}", *args
    )
    return run, results


def _results(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*-result.json"):
        data = json.loads(path.read_text())
        assert data["name"] not in found, f"two results named {data['name']!r}"
        found[data["name"]] = data
    return found


def _labels(result: dict[str, Any]) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {}
    for label in result["labels"]:
        labels.setdefault(label["name"], []).append(label["value"])
    return labels


def _attachments(folder: Path, result: dict[str, Any]) -> dict[str, Path]:
    return {a["name"]: folder / a["source"] for a in result.get("attachments", [])}


def test_trial_results_carry_title_labels_parameters_score_and_attachments(
    pytester: pytest.Pytester, suite: Path
) -> None:
    _require_allure_pytest()
    run, folder = _run(pytester)
    run.assert_outcomes(passed=1, failed=1, errors=1)  # noop scores 0; the broken task errors
    run.stdout.no_fnmatch_line("*Allure: could not describe*")
    results = _results(folder)
    assert set(results) == {
        "loan-amortization [oracle base t1]",
        "loan-amortization [noop base t1]",
        "broken [broken task]",
    }

    oracle = results["loan-amortization [oracle base t1]"]
    assert oracle["status"] == "passed"
    labels = _labels(oracle)
    for name, value in {
        "agent": "oracle",
        "provider": "local",
        "domain": "finance",
        "tier": "near-term",
        "task": "loan-amortization",
        "parentSuite": "finance",
        "suite": "loan-amortization",
        "subSuite": "oracle",
        "feature": "loan-amortization",
    }.items():
        assert labels.get(name) == [value], (name, labels.get(name))
    params = {p["name"]: p for p in oracle["parameters"]}
    assert {n: p["value"] for n, p in params.items()} == {
        "agent": "'oracle'",
        "variant": "'base'",
        "trial": "1",
        "score": "'1.000'",
    }
    assert params["score"].get("excluded") is True  # a changing score keeps the test's history
    assert "score 1.000" in oracle["statusDetails"]["message"]
    assert "grader: schedule matches the reference" in oracle["statusDetails"]["message"]
    assert "<b>Score: 1.000</b>" in oracle["descriptionHtml"]
    assert "score 1.000" in oracle["description"]

    files = _attachments(folder, oracle)
    assert set(files) >= {
        "trajectory",
        "agent log",
        "grader explanation",
        "output listing",
        "result",
        "output/screen.png",
    }
    artifacts = Path(json.loads(files["result"].read_text())["artifacts"])
    trajectory = json.loads(files["trajectory"].read_text())
    assert trajectory == json.loads((artifacts / "trajectory.json").read_text())
    assert trajectory["steps"][0]["message"].startswith("Copy input/data.txt")
    assert files["grader explanation"].read_text() == "schedule matches the reference"
    listing = files["output listing"].read_text()
    assert "2 file(s) in output/" in listing
    assert "data.txt" in listing and "screen.png" in listing
    assert files["output/screen.png"].read_bytes() == SCREEN_PNG
    assert files["agent log"].read_text() == (artifacts / "agent.log").read_text()

    noop = results["loan-amortization [noop base t1]"]
    assert noop["status"] == "failed"
    assert _labels(noop)["subSuite"] == ["noop"]
    assert {p["name"]: p["value"] for p in noop["parameters"]}["score"] == "'0.000'"
    assert "grader: output/data.txt is missing" in noop["statusDetails"]["message"]
    noop_files = _attachments(folder, noop)
    assert noop_files["grader explanation"].read_text() == "output/data.txt is missing"
    assert noop_files["output listing"].read_text() == "(output/ is empty)"
    assert not any(name.endswith(".png") for name in noop_files)
    # one history per agent: otherwise Allure shows noop's trial as a retry of oracle's
    assert noop["historyId"] != oracle["historyId"]

    broken = results["broken [broken task]"]
    assert broken["status"] == "failed"
    assert _labels(broken)["suite"] == ["broken"]
    assert "evaluate" in broken["statusDetails"]["message"]
    error = _attachments(folder, broken)["error"].read_text()
    assert "evaluate" in error and "main.py" in error


def test_xdist_workers_write_into_one_alluredir(pytester: pytest.Pytester, make_task) -> None:
    _require_allure_pytest()
    _require(importlib.util.find_spec("xdist"), "pytest-xdist is not installed")
    make_task("upper")
    make_task("lower", domain="finance")
    run, folder = _run(pytester, "-n", "2")
    run.assert_outcomes(passed=2, failed=2)
    results = _results(folder)
    assert set(results) == {
        f"{task} [{agent} base t1]" for task in ("upper", "lower") for agent in ("oracle", "noop")
    }
    threads = {_labels(r)["thread"][0] for r in results.values()}
    assert len(threads) == 2, threads  # both workers wrote their own results
    for result in results.values():
        files = _attachments(folder, result)
        assert {"trajectory", "agent log", "grader explanation", "output listing"} <= set(files)
        assert all(path.is_file() for path in files.values())


def test_plugin_is_inert_without_allure(pytester: pytest.Pytester, make_task) -> None:
    blocked = (
        "import sys\n"
        "for name in ('allure', 'allure_commons', 'allure_pytest'):\n"
        "    sys.modules[name] = None\n"
        "import pytest_ale.reports.allure as plugin\n"
        "print(plugin.__name__)\n"
    )
    imported = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    make_task("upper")
    run = pytester.runpytest_subprocess("tasks", "-p", "no:allure_pytest")
    run.assert_outcomes(passed=1)
    run.stdout.no_fnmatch_line("*Allure*")
    assert not list(pytester.path.rglob("*-result.json"))


# --- the HTML report, in headless Chromium --------------------------------------------

BROWSE_JS = """
const { chromium } = require('playwright-core');
(async () => {
  const [url, shot, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           // the report has an analytics tag; keep the page off the network
           '--host-resolver-rules=MAP * ~NOTFOUND'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1200 } });
  await page.goto(url + '#suites');
  // the suite tree is the labels: parentSuite = domain > suite = task > subSuite = agent
  for (const name of ['finance', 'loan-amortization', 'oracle',
                      'loan-amortization [oracle base t1]', 'trajectory']) {
    await page.getByText(name, { exact: true }).first().click({ timeout: 15000 });
  }
  await page.getByText('"schema_version"').first().waitFor({ timeout: 15000 });
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ url: page.url(), text: await page.locator('body').innerText() }));
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the decoded pixel rows
    (a blank page decodes to two or three values: filter bytes and one colour)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def _playwright_node_path() -> str | None:
    """The global node_modules holding playwright-core, or None."""
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        return None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True).stdout.strip()
    return root if root and (Path(root) / "playwright-core" / "package.json").is_file() else None


def test_html_report_in_headless_chromium_shows_score_labels_and_trajectory(
    pytester: pytest.Pytester, suite: Path, tmp_path: Path
) -> None:
    _require_allure_pytest()
    _require(shutil.which("java"), "no Java runtime (java) for the Allure command line")
    _require(shutil.which("allure"), "the Allure command line is missing (npm allure-commandline)")
    chromium = shutil.which("chromium")
    _require(chromium, "chromium is missing (Debian package chromium)")
    node_path = _playwright_node_path()
    _require(node_path, "node with a global playwright-core is missing (npm i -g playwright-core)")
    assert chromium is not None and node_path is not None

    run, results = _run(pytester)
    run.assert_outcomes(passed=1, failed=1, errors=1)
    report = tmp_path / "report"
    generate = subprocess.run(
        ["allure", "generate", "--single-file", "--clean", "-o", str(report), str(results)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generate.returncode == 0, generate.stdout + generate.stderr
    index = report / "index.html"
    assert index.is_file()

    script = tmp_path / "browse.js"
    script.write_text(BROWSE_JS)
    shot = tmp_path / "trial.png"
    browse = subprocess.run(
        ["node", str(script), index.as_uri(), str(shot), chromium],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NODE_PATH": node_path},
    )
    assert browse.returncode == 0, browse.stdout + browse.stderr
    page = json.loads(browse.stdout.strip().splitlines()[-1])
    text: str = page["text"]
    assert "#suites/" in page["url"]
    # the score (status line and description), the labels (description table), the trajectory
    assert "score 1.000 (threshold 1.000, status passed)" in text
    assert "Score: 1.000" in text
    for label, value in [
        ("agent", "oracle"),
        ("provider", "local"),
        ("domain", "finance"),
        ("tier", "near-term"),
        ("task", "loan-amortization"),
    ]:
        assert f"{label}\t{value}" in text, (label, value)
    assert '"schema_version": "ATIF-v1.4"' in text
    assert '"message": "Copy input/data.txt to output/data.txt, upper-cased."' in text
    width, height, distinct = _png_facts(shot)
    assert (width, height) == (1600, 1200)
    assert distinct > 50, f"the screenshot {shot} looks blank ({distinct} distinct byte values)"
