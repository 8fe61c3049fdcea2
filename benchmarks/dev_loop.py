"""How long the development loop takes: the whole test suite, a strict site build, a live-reload rebuild.

Run: ``uv run python benchmarks/dev_loop.py`` (needs what the suite needs: the local services,
Chromium, Prometheus). It clones the commit (``--commit``, default ``HEAD``) into a scratch
folder and runs there what a contributor runs after a fresh clone, taking each command from
``examples/commands/development.sh`` (the *Development commands* page):

* the set-up ``.ci/run`` does first, ``uv sync --locked --compile-bytecode`` (a new venv);
* ``test-required``: the whole suite, wall-clock, its slowest tests listed from its JUnit report;
* ``build``: ``mkdocs build --strict`` (``--site-dir`` moved to the scratch folder), the median
  of ``--rounds`` builds; the same for ``build-zensical`` where the commit has it;
* ``serve``: the dev server on a free port; then, ``--rounds`` times each, one page edited and
  one example file that page includes edited, each timed from the write until the served page
  shows the change.

``--skip`` leaves a part out (a label's earlier result for it stays). ``--here`` measures this
working tree instead of a clone (the test suite does that, at a tiny
scale): the suite and the MkDocs build run in place, the dev server and Zensical in a copy of
the site's sources, with this venv's tools. Each run is kept under its ``--label``
(``before``, ``after``) in ``benchmarks/results/dev_loop.json``; ``dev_loop.md`` shows the
labels side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publishing import OUTPUT, stamp

from docs_tooling.site_sources import copy_site_sources
from docs_tooling.snippet_guard import read_section, scan_page, sections_in
from reference_system.waiting import Aborted, eventually_blocking

ROOT = Path(__file__).resolve().parents[1]
SETUP = "uv sync --locked --compile-bytecode"  # as .ci/run installs, before the suite
# A pattern page and the first example file it includes (which the API reference page does not
# document: editing one it does also re-renders that 1.4 MB page, about 4 s more).
EDITED_PAGE = "docs/patterns/data-services/repository.md"
SLOWEST = 15
UNSEEN_AFTER = 60  # seconds after which an edit the dev server has not shown counts as never shown


@dataclass(frozen=True)
class Target:
    """What is measured: ``project`` runs the suite and the MkDocs build; ``sources`` holds site
    sources that may be edited and built next to (the project itself, or a copy)."""

    project: Path
    sources: Path

    def command(self, name: str) -> str:
        """A section of the project's development.sh, as the page shows it; "" if it has none."""
        try:
            return read_section(self.project / "examples" / "commands" / "development.sh", name).strip()
        except KeyError:
            return ""

    def in_sources(self, name: str) -> str:
        """The command, to run in ``sources``: with this venv's tools where that is a copy (no project)."""
        line = self.command(name)
        if self.sources == self.project:
            return line
        return line.replace("uv run ", str(Path(sys.executable).parent) + "/", 1)


def sh(script: str, cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``script`` with bash in ``cwd``; return (wall seconds, result)."""
    started = time.perf_counter()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return time.perf_counter() - started, result


def checked(timed: tuple[float, subprocess.CompletedProcess[str]], what: str) -> float:
    seconds, result = timed
    if result.returncode != 0:
        tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        sys.exit(f"{what} failed (exit {result.returncode}):\n{tail}")
    return seconds


def suite(target: Target, scratch: Path, tests: str | None) -> dict[str, Any]:
    """The README's test command, timed; the slowest tests from its JUnit report."""
    report = scratch / "junit.xml"
    line = target.command("test-required") + (f" {tests}" if tests else "")
    timed = sh(f"{line} -p no:cacheprovider --junitxml={report}", target.project, timeout=3600)
    seconds = checked(timed, line)
    cases = ET.parse(report).getroot().iter("testcase")  # noqa: S314 - pytest's own report, written just now
    durations = sorted(
        ((float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}") for case in cases),
        reverse=True,
    )
    return {
        "command": line,
        "seconds": round(seconds, 1),
        "summary": timed[1].stdout.strip().splitlines()[-1].strip("= "),
        "tests": len(durations),
        "slowest": [{"test": name, "seconds": round(t, 1)} for t, name in durations[:SLOWEST]],
    }


def builds(target: Target, scratch: Path, rounds: int) -> dict[str, Any]:
    """The page's strict build ``rounds`` times (into the scratch folder), and Zensical's."""
    mkdocs = f"{target.command('build')} --site-dir {scratch / 'site'}"
    measured = {
        "mkdocs build --strict": spread(
            [checked(sh(mkdocs, target.project, 600), mkdocs) for _ in range(rounds)]
        )
    }
    if zensical := target.in_sources("build-zensical"):
        timings = [checked(sh(zensical, target.sources, 600), zensical) for _ in range(rounds)]
        measured["zensical build"] = spread(timings)
    return measured


def rebuilds(target: Target, rounds: int) -> dict[str, Any]:
    """The page's dev server; each edit of a page, then of an example file the page includes,
    timed until the served page shows it."""
    port = free_port()
    line = f"{target.in_sources('serve')} --dev-addr 127.0.0.1:{port}"
    page = target.sources / EDITED_PAGE
    url = f"http://127.0.0.1:{port}/{Path(EDITED_PAGE).relative_to('docs').with_suffix('')}/"
    includes, _ = scan_page(page.read_text(), EDITED_PAGE, target.sources)
    example = target.sources / includes[0].path
    start_line = sections_in(example)[str(includes[0].section)][0]
    originals = {path: path.read_text() for path in (page, example)}
    title = next(line.removeprefix("# ") for line in originals[page].splitlines() if line.startswith("# "))
    started = time.perf_counter()
    server = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        cwd=target.sources,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    timings: dict[str, list[float]] = {"page": [], "example": []}
    unseen: set[str] = set()  # edits the server never showed (an old commit watched no examples/)
    try:
        if not wait_for(url, title, server, timeout=300):
            sys.exit(f"{url} did not show the page within 300 s")
        first = time.perf_counter() - started
        for n in range(rounds):
            for kind, path in (("page", page), ("example", example)):
                marker = f"dev-loop-{kind}-{n}-{time.time_ns()}"
                lines = originals[path].splitlines()
                at = len(lines) if kind == "page" else start_line  # inside the section the page shows
                edited = [*lines[:at], f"# {marker}" if kind == "example" else marker, *lines[at:]]
                written = time.perf_counter()
                path.write_text("\n".join(edited) + "\n")
                if wait_for(url, marker, server, timeout=UNSEEN_AFTER):
                    timings[kind].append(time.perf_counter() - written)
                else:
                    unseen.add(kind)
                path.write_text(originals[path])
                # Untimed: the restored page is served again before the next edit, so no rebuild
                # triggered by this one can carry the next edit along.
                if not wait_for(url, marker, server, timeout=UNSEEN_AFTER, shown=False):
                    sys.exit(f"{url} still showed {marker!r} {UNSEEN_AFTER} s after it was undone")
    finally:
        for path, text in originals.items():
            path.write_text(text)
        server.terminate()
        server.wait(timeout=30)

    def result(kind: str) -> dict[str, float] | str:
        return f"not shown within {UNSEEN_AFTER} s" if kind in unseen else spread(timings[kind])

    return {
        "command": line.split(" --dev-addr")[0],
        "first build": round(first, 2),
        "rebuild after editing one page": result("page"),
        f"rebuild after editing {includes[0].path}": result("example"),
    }


def wait_for(url: str, text: str, server: subprocess.Popen[str], timeout: float, shown: bool = True) -> bool:
    """Poll ``url`` until ``text`` is on the page (``shown=False``: is gone); False at the timeout."""

    def as_wanted() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own loopback server
                return (text in response.read().decode()) == shown
        except OSError:
            return False  # not listening yet, or between two builds

    def exited() -> str | None:
        if server.poll() is None:
            return None
        errors = server.stderr.read() if server.stderr else ""
        return f"the dev server exited with {server.returncode}:\n{errors[-4000:]}"

    try:
        eventually_blocking(as_wanted, f"{text!r} on {url}", timeout=timeout, interval=0.05, abort=exited)
    except Aborted as error:
        sys.exit(str(error))
    except TimeoutError:
        return False
    return True


def spread(timings: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(timings), 2),
        "min": round(min(timings), 2),
        "max": round(max(timings), 2),
        "runs": len(timings),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(args: argparse.Namespace, scratch: Path) -> Target:
    if args.here:
        return Target(ROOT, copy_site_sources(ROOT, scratch / "sources"))
    project = scratch / "project"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(project)], check=True)
    subprocess.run(["git", "checkout", "--quiet", args.commit], cwd=project, check=True)
    return Target(project, project)


def publish(label: str, measured: dict[str, Any]) -> Path:
    """Merge this run into results/dev_loop.json under ``label`` (what it skipped stays as measured
    before, so one part can be measured again); redraw dev_loop.md."""
    out = OUTPUT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dev_loop.json"
    known = json.loads(path.read_text())["runs"] if path.is_file() else {}
    known[label] = known.get(label, {}) | measured
    path.write_text(json.dumps({"runs": known}, indent=2) + "\n")
    (out / "dev_loop.md").write_text(table(known))
    return path


def table(runs: dict[str, dict[str, Any]]) -> str:
    def cell(run: dict[str, Any], group: str, name: str) -> str:
        found = run.get(group, {}).get(name)
        if found is None:
            return "–"
        if isinstance(found, str):
            return found
        return (
            f"{found['median']:.1f} s (median of {found['runs']})"
            if isinstance(found, dict)
            else f"{found:.1f} s"
        )

    names = sorted(
        {name for run in runs.values() for name in run.get("serve", {}) if name.startswith("rebuild")}
    )
    rows = [
        ("commit", lambda r: r["commit"]),
        ("date · machine", lambda r: f"{r['date']} · {r['machine']}"),
        (
            "set-up",
            lambda r: f"`{r['setup']['command']}`: {r['setup']['seconds']:.0f} s" if "setup" in r else "–",
        ),
        ("suite command", lambda r: f"`{r['suite']['command']}`" if "suite" in r else "–"),
        (
            "suite, wall clock",
            lambda r: f"{r['suite']['seconds']:.0f} s ({r['suite']['summary']})" if "suite" in r else "–",
        ),
        ("`mkdocs build --strict`", lambda r: cell(r, "builds", "mkdocs build --strict")),
        ("`zensical build`", lambda r: cell(r, "builds", "zensical build")),
        ("dev server command", lambda r: f"`{r['serve']['command']}`" if "serve" in r else "–"),
        ("dev server: first build", lambda r: cell(r, "serve", "first build")),
        *[(f"dev server: {name}", lambda r, name=name: cell(r, "serve", name)) for name in names],
    ]
    labels = list(runs)
    lines = [f"| | {' | '.join(labels)} |", "|---|" + "---|" * len(labels)]
    lines += [f"| {name} | {' | '.join(value(runs[label]) for label in labels)} |" for name, value in rows]
    for label in labels:
        if slowest := runs[label].get("suite", {}).get("slowest"):
            lines += ["", f"Slowest tests, {label}:", "", "| test | seconds |", "|---|---|"]
            lines += [f"| `{entry['test']}` | {entry['seconds']:.1f} |" for entry in slowest]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commit", default="HEAD", help="what to clone and measure (default HEAD)")
    parser.add_argument("--here", action="store_true", help="measure this working tree, not a clone")
    parser.add_argument("--label", default="latest", help="the name of this run in the results")
    parser.add_argument("--rounds", type=int, default=3, help="builds and edits to time (median)")
    parser.add_argument("--tests", help="arguments for the suite instead of the whole of it")
    parser.add_argument("--skip", action="append", default=[], choices=["suite", "build", "serve"])
    args = parser.parse_args(argv)
    date, machine = stamp()
    with tempfile.TemporaryDirectory(prefix="dev-loop-") as folder:
        scratch = Path(folder)
        target = prepare(args, scratch)
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h %s"],
            cwd=target.project,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        measured: dict[str, Any] = {
            "commit": commit + (" (+ working tree)" if args.here else ""),
            "date": date,
            "machine": machine,
        }
        if not args.here:
            seconds = checked(sh(SETUP, target.project, timeout=900), SETUP)
            measured["setup"] = {"command": SETUP, "seconds": round(seconds, 1)}
        if "suite" not in args.skip:
            tests = shlex.join(shlex.split(args.tests)) if args.tests else None
            measured["suite"] = suite(target, scratch, tests)
        if "build" not in args.skip:
            measured["builds"] = builds(target, scratch, args.rounds)
        if "serve" not in args.skip:
            measured["serve"] = rebuilds(target, args.rounds)
    path = publish(args.label, measured)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
