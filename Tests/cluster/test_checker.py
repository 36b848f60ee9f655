"""checker.py on synthetic histories: each violation class is caught, clean histories pass,
and the edges (equal times, missing ends, empty files, torn lines) are judged as README.md
says."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checker import Options, Report, check_files, main  # noqa: E402

MS = 1_000_000  # records are in nanoseconds; these histories are laid out in milliseconds


def rec(kind: str, t_ms: float, client: str, host: str = "h1", resource: str = "opus", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "t": int(t_ms * MS), "host": host, "client": client, "resource": resource, **extra}


def grant(client: str, asked: float, begin: float, end: float | None, fence: int, cluster_fence: int | None = None,
          host: str = "h1", resource: str = "opus", lost: bool = False) -> list[dict[str, Any]]:
    """A wait, its begin and (unless ``end`` is None) its end, as a holder writes them."""
    common = {"host": host, "resource": resource}
    records = [rec("wait", asked, client, **common),
               rec("begin", begin, client, fence=fence, cluster_fence=cluster_fence, **common)]
    if end is not None:
        records.append(rec("end", end, client, fence=fence, cluster_fence=cluster_fence, lost=lost, **common))
    return records


def write(directory: Path, histories: dict[str, list[dict[str, Any]]]) -> list[str]:
    paths = []
    for client, records in histories.items():
        path = directory / f"{client}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        paths.append(str(path))
    return paths


def run(directory: Path, histories: dict[str, list[dict[str, Any]]], **options: Any) -> Report:
    options.setdefault("limit", 1)
    return check_files(write(directory, histories), Options(**options))


def rules(report: Report) -> set[str]:
    return {violation.rule for violation in report.violations}


def handovers() -> dict[str, list[dict[str, Any]]]:
    """Three clients taking one slot in turns: a clean history for limit 1."""
    return {
        "a": grant("a", 0, 1, 10, fence=1, cluster_fence=100) + grant("a", 11, 31, 40, fence=4, cluster_fence=103),
        "b": grant("b", 0, 11, 20, fence=2, cluster_fence=101) + grant("b", 21, 41, 50, fence=5, cluster_fence=104),
        "c": grant("c", 0, 21, 30, fence=3, cluster_fence=102) + grant("c", 31, 51, 60, fence=6, cluster_fence=105),
    }


def test_a_clean_history_passes(tmp_path: Path) -> None:
    report = run(tmp_path, handovers(), max_wait_ms=100, min_fairness=0.9)
    assert report.ok, report.text()
    assert "opus: 6 grants, at most 1 held at once (limit 1)" in report.text()


def test_limit_plus_one_holders_at_once_is_caught_with_the_time_and_the_records(tmp_path: Path) -> None:
    histories = {
        "a": grant("a", 0, 1, 10, fence=1),
        "b": grant("b", 0, 2, 10, fence=2),
        "c": grant("c", 0, 5, 6, fence=3),
    }
    assert run(tmp_path, histories, limit=3).ok
    report = run(tmp_path, histories, limit=2)
    assert rules(report) == {"limit"}
    [violation] = report.violations
    assert violation.t == 5 * MS
    assert {r.client for r in violation.records} == {"a", "b", "c"}
    text = report.text()
    assert f"at t={5 * MS} (+0.005 s): opus: 3 holders at once, limit 2" in text
    assert "c.jsonl:2" in text  # where the records are


def test_each_episode_over_the_limit_is_reported_once(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 100, fence=1),
                 "b": grant("b", 0, 10, 20, fence=2) + grant("b", 21, 50, 60, fence=3) + grant("b", 61, 62, 63, fence=4)}
    report = run(tmp_path, histories)
    assert [v.t for v in report.violations] == [10 * MS, 50 * MS, 62 * MS]


def test_resources_are_judged_separately_and_can_be_chosen(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=1, resource="opus"),
                 "b": grant("b", 0, 2, 10, fence=2, resource="glm")}
    assert run(tmp_path, histories).ok
    histories["c"] = grant("c", 0, 3, 4, fence=3, resource="glm")
    assert rules(run(tmp_path, histories)) == {"limit"}
    assert run(tmp_path, histories, resources=["opus"]).ok


def test_a_begin_at_the_very_instant_of_another_end_overlaps_it(tmp_path: Path) -> None:
    touching = {"a": grant("a", 0, 1, 10, fence=1), "b": grant("b", 0, 10, 20, fence=2)}
    assert rules(run(tmp_path, touching)) == {"limit"}
    after = {"a": grant("a", 0, 1, 10, fence=1), "b": grant("b", 0, 10.000001, 20, fence=2)}
    assert run(tmp_path, after).ok


def test_a_holder_without_an_end_holds_until_its_cutoff(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, None, fence=1), "b": grant("b", 0, 50, 60, fence=2)}
    report = run(tmp_path, histories)
    assert rules(report) == {"limit"}, "without a cutoff it holds to the end of the run"
    assert any("no end for" in note and "the end of the run" in note for note in report.notes)
    assert run(tmp_path, histories, open_until={"a": 40 * MS}).ok, "reclaimed before b's grant"
    assert rules(run(tmp_path, histories, open_until={"a": 50 * MS})) == {"limit"}
    assert run(tmp_path, histories, open_until={"h1": 40 * MS}).ok, "by host"
    assert run(tmp_path, histories, open_until={"*": 40 * MS}).ok, "for everyone"
    assert rules(run(tmp_path, histories, open_until={"*": 40 * MS, "a": 55 * MS})) == {"limit"}, "client first"


def test_a_lost_lease_is_judged_by_when_its_holder_stopped(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 30, fence=1, lost=True), "b": grant("b", 0, 20, 40, fence=2)}
    report = run(tmp_path, histories)
    assert rules(report) == {"limit"}
    assert "had lost their lease" in report.text()
    # a stopped 10 ms after b's grant (its daemon freed the slot and granted it at once, and
    # told a last): tolerated only with a grace the harness gives, longer than that, and
    # never for a holder that did not lose its lease.
    assert run(tmp_path, histories, lost_grace_ms=11).ok
    assert rules(run(tmp_path, histories, lost_grace_ms=10)) == {"limit"}
    # A lease revoked before its holder even read the grant held nothing.
    assert run(tmp_path, histories, lost_grace_ms=30).ok
    histories["a"][-1]["lost"] = False
    assert rules(run(tmp_path, histories, lost_grace_ms=11)) == {"limit"}


def test_a_repeated_cluster_fence_is_caught_across_hosts(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=1, cluster_fence=7, host="h1"),
                 "b": grant("b", 0, 11, 20, fence=1, cluster_fence=7, host="h2"),
                 "c": grant("c", 0, 21, 30, fence=2, cluster_fence=None, host="h2") + grant("c", 31, 32, 33, fence=3)}
    report = run(tmp_path, histories)
    assert rules(report) == {"cluster_fence"}, report.text()
    assert "cluster_fence 7 granted 2 times" in report.text()


def test_a_cluster_fence_going_back_across_hosts_is_caught(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=1, cluster_fence=9, host="h1"),
                 "b": grant("b", 10.5, 11, 20, fence=1, cluster_fence=8, host="h2")}
    assert rules(run(tmp_path, histories)) == {"cluster_fence"}


def test_a_fence_going_back_on_one_host_is_caught(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=5), "b": grant("b", 10.5, 11, 20, fence=4)}
    report = run(tmp_path, histories)
    assert rules(report) == {"fence"}
    assert "fence went back: 4 granted after 5" in report.text()


def test_fence_order_is_judged_only_where_the_records_prove_it(tmp_path: Path) -> None:
    # b asked before a's grant was read: the daemon may have granted b first (limit 2).
    unprovable = {"a": grant("a", 0, 1, 10, fence=5), "b": grant("b", 0.5, 2, 20, fence=4)}
    assert run(tmp_path, unprovable, limit=2).ok
    # at the very instant a's grant was read: a was granted first.
    same_instant = {"a": grant("a", 0, 1, 10, fence=5), "b": grant("b", 1, 11, 20, fence=4)}
    assert rules(run(tmp_path, same_instant)) == {"fence"}
    # Fences are per host: another host may hand out the same numbers.
    other_host = {"a": grant("a", 0, 1, 10, fence=5), "b": grant("b", 10.5, 11, 20, fence=4, host="h2")}
    assert run(tmp_path, other_host).ok


def test_a_repeated_fence_on_one_host_is_caught(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=3), "b": grant("b", 0, 11, 20, fence=3)}
    assert rules(run(tmp_path, histories)) == {"fence"}


STATUS_AT_REST = {
    "ok": True, "global": {"limit": 3, "in_use": 0, "waiting": 0},
    "modes": {m: {"limit": None, "in_use": 0} for m in ("time", "issue", "mention", "any")},
    "projects": {"p": {"limit": None, "in_use": 0, "mention_limit": None, "mention_in_use": 0}},
    "models": {"anthropic/claude-opus-4": {"limit": 3, "in_use": 0}}, "pools": {}, "leases": [],
}


def test_a_slot_left_held_at_the_end_is_caught(tmp_path: Path) -> None:
    assert run(tmp_path, handovers(), final_status={"d1": STATUS_AT_REST, "etcd": {"opus": 0}}).ok
    held = json.loads(json.dumps(STATUS_AT_REST))
    held["models"]["anthropic/claude-opus-4"]["in_use"] = 1
    report = run(tmp_path, handovers(), final_status={"d1": STATUS_AT_REST, "d2": held})
    assert rules(report) == {"slots"}
    assert "d2 still has slots in use at the end: models.anthropic/claude-opus-4=1" in report.text()
    assert rules(run(tmp_path, handovers(), final_status={"etcd": {"opus": 2}})) == {"slots"}


def test_a_starved_client_is_caught(tmp_path: Path) -> None:
    histories = handovers()
    histories["s"] = [rec("wait", 0, "s"), rec("gave_up", 30, "s", reason="timeout"),
                      rec("wait", 31, "s"), rec("gave_up", 61, "s", reason="timeout")]
    report = run(tmp_path, histories)
    assert rules(report) == {"starved"}
    assert "s waited from" in report.text() and "got nothing while others got a: 2, b: 2, c: 2" in report.text()


def test_a_client_that_got_nothing_while_nobody_got_much_is_not_starved(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 1, 10, fence=1),
                 "s": [rec("wait", 0, "s"), rec("gave_up", 20, "s", reason="timeout")]}
    assert run(tmp_path, histories).ok


def test_fairness_below_the_threshold_is_caught(tmp_path: Path) -> None:
    busy = [r for i in range(8) for r in grant("a", 10 * i, 10 * i + 1, 10 * i + 5, fence=i + 1)]
    histories = {"a": busy, "b": grant("b", 0, 79, 80, fence=9)}
    assert run(tmp_path, histories).ok, "b got something"
    report = run(tmp_path, histories, min_fairness=0.8)
    assert rules(report) == {"starved"}
    assert "Jain's index 0.623 below 0.8 (grants: [1, 8])" in report.text()


def test_a_wait_longer_than_the_bound_is_caught(tmp_path: Path) -> None:
    histories = {"a": grant("a", 0, 150, 160, fence=1), "b": [rec("wait", 0, "b"), rec("gave_up", 90, "b")]}
    assert run(tmp_path, histories, max_wait_ms=200).ok
    report = run(tmp_path, histories, max_wait_ms=100)
    assert rules(report) == {"wait"}
    assert "a waited 150 ms (bound 100 ms) and granted" in report.text()
    # A wait with no outcome counts until the next record of its file, or is not judged.
    histories = {"b": [rec("wait", 0, "b"), rec("wait", 300, "b")]}
    assert rules(run(tmp_path, histories, max_wait_ms=100)) == {"wait"}
    histories = {"b": [rec("wait", 0, "b")]}
    report = run(tmp_path, histories, max_wait_ms=100)
    assert report.ok and any("not judged" in note for note in report.notes)


def test_empty_files_are_empty_histories(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    report = check_files([str(tmp_path)], Options(limit=1))
    assert report.ok, report.text()
    assert "2 files, 0 records" in report.text()


def test_a_torn_last_line_is_skipped_and_mentioned(tmp_path: Path) -> None:
    [path] = write(tmp_path, {"a": grant("a", 0, 1, 10, fence=1)})
    with open(path, "a") as handle:
        handle.write('{"kind":"wait","t":11000')
    report = check_files([path], Options(limit=1))
    assert report.ok, report.text()
    assert any("torn last line" in note and "a.jsonl:4" in note for note in report.notes)


def test_an_unreadable_line_elsewhere_fails_the_check(tmp_path: Path) -> None:
    [path] = write(tmp_path, {"a": grant("a", 0, 1, 10, fence=1)})
    lines = Path(path).read_text().splitlines(keepends=True)
    Path(path).write_text(lines[0] + "garbage\n" + '{"kind":"begin","t":"soon"}\n' + "".join(lines[1:]))
    report = check_files([path], Options(limit=1))
    assert rules(report) == {"records"}
    assert "a.jsonl:2" in report.text() and "begin: t must be an integer" in report.text()


def test_records_that_contradict_themselves_fail_the_check(tmp_path: Path) -> None:
    backwards = {"a": [rec("wait", 10, "a"), rec("begin", 5, "a", fence=1), rec("end", 20, "a", fence=1)]}
    assert rules(run(tmp_path, backwards)) == {"records"}
    orphan_end = {"a": [rec("end", 20, "a", fence=1)]}
    assert rules(run(tmp_path, orphan_end)) == {"records"}
    orphan_give_up = {"a": [rec("gave_up", 20, "a", reason="timeout")]}
    assert rules(run(tmp_path, orphan_give_up)) == {"records"}


def test_the_command_line_exits_non_zero_with_a_readable_report(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    paths = write(tmp_path, {"a": grant("a", 0, 1, 10, fence=1), "b": grant("b", 0, 2, 10, fence=2)})
    assert main(["--limit", "2", "--resource", "opus", *paths]) == 0
    assert capsys.readouterr().out.endswith("OK\n")
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"opus": 1}))
    assert main(["--limit", "1", "--final-status", f"etcd={status}", "--open-until", "a=5", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION limit: 1 found:" in out and "VIOLATION slots: 1 found:" in out
    assert "etcd still has slots in use at the end: opus=1" in out and out.endswith("FAILED\n")


def with_project(records: list[dict[str, Any]], project: str) -> list[dict[str, Any]]:
    """A holder's records as fleet.py writes them when it asks in ``project``."""
    return [{**r, "project": project} if r["kind"] == "begin" else r for r in records]


def test_a_project_cap_is_judged_over_the_holders_that_name_it(tmp_path: Path) -> None:
    # Two holders of project web overlap under a model limit of 3: fine with a cap of 2, a
    # violation with a cap of 1; a third, overlapping holder of another project never counts.
    histories = {
        "a": with_project(grant("a", 0, 1, 20, fence=1, cluster_fence=100), "web"),
        "b": with_project(grant("b", 0, 5, 25, fence=2, cluster_fence=101, host="h2"), "web"),
        "c": with_project(grant("c", 0, 6, 26, fence=3, cluster_fence=102, host="h3"), "docs"),
    }
    clean = run(tmp_path, histories, limit=3, project_limits={"web": 2})
    assert clean.ok, clean.text()
    assert "project web: 2 grants, at most 2 held at once (limit 2)" in clean.summary
    broken = run(tmp_path, histories, limit=3, project_limits={"web": 1})
    assert rules(broken) == {"limit"}
    assert "project web: 2 holders at once, limit 1" in broken.violations[0].message
