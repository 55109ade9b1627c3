"""The checks behind 00-check-setup.ipynb: right answers, and advice where something is missing."""

from __future__ import annotations

from helpers import setup_check
from tests.search_fixtures import FakeStac, fake_stac_api


def test_installed_packages_report_their_versions() -> None:
    checks = setup_check.check_packages()
    assert [c.name for c in checks] == [dist for _, dist in setup_check.PACKAGES]
    assert all(c.ok and c.detail[0].isdigit() for c in checks)


def test_missing_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(setup_check, "PACKAGES", [("no_such_module_rhodes", "no-such-dist")])
    [check] = setup_check.check_packages()
    assert not check.ok and "make setup" in check.fix


def test_unreachable_api_gives_advice() -> None:
    check = setup_check.check_api("http://127.0.0.1:9")
    assert not check.ok
    assert "127.0.0.1:9" in check.detail
    assert "make serve" in check.fix


def test_an_api_that_fails_to_list_its_collections_gives_advice() -> None:
    with fake_stac_api(FakeStac(collections_busy=True)) as fake:
        check = setup_check.check_api(fake.url)
    assert not check.ok
    assert "HTTP 503" in check.detail
    assert "again" in check.fix and "api_url" in check.fix


def test_missing_graphviz_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    check = setup_check.check_graphviz()
    assert not check.ok and "graphviz" in check.fix


def test_report_counts_what_to_fix() -> None:
    checks = [setup_check.Check("a", True, "1.0"), setup_check.Check("b", False, "gone", "do this")]
    text = setup_check.report(checks)
    assert "-> do this" in text and text.endswith("1 thing(s) to fix, see the lines marked MISSING.")
    assert setup_check.report(checks[:1]).endswith("All set for the workshop.")


def test_dask_check_computes() -> None:
    assert setup_check.check_dask().ok
