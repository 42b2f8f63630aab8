"""`concierge community` as an operator runs it: each command, and each refusal in plain
words with nothing saved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main

SINGAPORE = [
    "--name-en", "Marina Gardens", "--name-zh", "滨海花园", "--time-zone", "Asia/Singapore",
    "--phone-region", "SG", "--akubela-project-id", "p-marina", "--tuya-project-id", "t-marina",
    "--servitly-tenant", "marina", "--service-hours", "09:00-18:00",
    "--amenity", "a-pool:grid=60,min=60,max=120,horizon=14",
]  # fmt: skip


@pytest.fixture(autouse=True)
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("AKUBELA_MANAGER_PASSWORD", "settings-manager-secret")
    monkeypatch.setenv("TIMEZONE", "Asia/Shanghai")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_makes_community_1_and_show_keeps_the_password_hidden(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "migrate")
    assert code == 0
    assert "Community 1 was made from the settings" in out
    assert run(capsys, "migrate")[1] == "Database is up to date.\n"
    code, out, _ = run(capsys, "community", "list")
    assert code == 0
    assert out.startswith("1  Community 1 / 社区 1  Asia/Shanghai  p-demo-garden-court")
    code, out, _ = run(capsys, "community", "show", "1")
    assert "service hours:     08:00-20:00" in out
    assert "(password set, not shown)" in out
    assert "settings-manager-secret" not in out


def test_add_edit_and_show_a_second_community(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "migrate")
    code, out, err = run(capsys, "community", "add", *SINGAPORE)
    assert (code, out, err) == (0, "Community 2 added.\n", "")
    code, out, _ = run(capsys, "community", "show", "2")
    assert "Community 2: Marina Gardens / 滨海花园" in out
    assert "time zone:         Asia/Singapore" in out
    assert "amenity a-pool: grid 60 min, 60-120 min, up to 14 days ahead" in out
    assert "amenity defaults:  grid 30 min, 30-120 min, up to 90 days ahead" in out
    code, out, _ = run(capsys, "community", "edit", "2", "--service-hours", "10:00-19:00")
    assert (code, out) == (0, "Community 2 changed.\n")
    assert "service hours:     10:00-19:00" in run(capsys, "community", "show", "2")[1]
    assert "a-pool: grid 60" in run(capsys, "community", "show", "2")[1]  # the rest is kept


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--time-zone", "Asia/Singapur"], "unknown time zone 'Asia/Singapur'"),
        (
            ["--amenity", "a-bbq:grid=60,min=90"],
            "amenity a-bbq: the 60-minute grid does not divide the shortest booking (90 minutes)",
        ),
        (
            ["--amenity", "a-bbq:grid=30,min=150,max=120"],
            "the shortest booking (150 minutes) is longer than the longest (120 minutes)",
        ),
        (
            ["--service-hours", "18:00-09:00"],
            "the service hours end (09:00) before they start (18:00)",
        ),
        (
            ["--akubela-project-id", "p-demo-garden-court"],
            "the Akubela project p-demo-garden-court is already community 1's",
        ),
        (["--service-hours", "9-18"], "'9' is not a time of day such as 08:00"),
        (["--phone-region", "XX"], "unknown phone region 'XX'"),
    ],
)
def test_add_refuses_in_plain_words_and_saves_nothing(
    capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    run(capsys, "migrate")
    code, _, err = run(capsys, "community", "add", *SINGAPORE, *options)
    assert code == 2
    assert err.startswith("Nothing was changed:\n- ")
    assert said in err
    assert "Traceback" not in err
    assert run(capsys, "community", "list")[1].count("\n") == 1


def test_edit_and_show_of_a_community_that_is_not_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "migrate")
    assert run(capsys, "community", "edit", "7", "--name-en", "X")[2] == (
        "Nothing was changed:\n- there is no community 7; add it first\n"
    )
    assert run(capsys, "community", "show", "7")[2].endswith("- there is no community 7\n")


TOML = """
[[community]]
id = 1
name_en = "Garden Court"
name_zh = "花园阁"

[community.amenities.afa332e]
grid_minutes = 5

[[community]]
id = 2
name_en = "Marina Gardens"
name_zh = "滨海花园"
time_zone = "Asia/Singapore"
phone_region = "SG"
service_hours = ["09:00", "18:00"]

[community.akubela]
project_id = "p-marina"
manager_username = "manager@marina.example"
manager_password_env = "MARINA_PASSWORD"

[community.tuya]
project_id = "t-marina"
room_of_residence = { "r-m-1" = "room-m-1" }

[community.servitly]
tenant = "marina"
location_map = { "room-m-1" = { locationId = "loc-m" } }

[community.amenities.defaults]
horizon_days = 30

[community.amenities.a-pool]
grid_minutes = 60
min_minutes = 60
max_minutes = 120
"""


def test_import_adds_and_updates_by_id(
    capsys: pytest.CaptureFixture[str], deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "migrate")
    monkeypatch.setenv("MARINA_PASSWORD", "marina-secret")
    (deployment / "communities.toml").write_text(TOML, encoding="utf-8")
    code, out, err = run(capsys, "community", "import", "communities.toml")
    assert (code, err) == (0, "")
    assert out == "Community 1 updated.\nCommunity 2 added.\n"
    first = run(capsys, "community", "show", "1")[1]
    assert "Community 1: Garden Court / 花园阁" in first
    assert "amenity afa332e: grid 5 min, 30-120 min" in first
    assert "Akubela:           http://127.0.0.1:8700/akubela project p-demo-garden-court" in first
    second = run(capsys, "community", "show", "2")[1]
    assert "manager login:     manager@marina.example (password set, not shown)" in second
    assert "amenity a-pool: grid 60 min, 60-120 min, up to 30 days ahead" in second
    assert "marina-secret" not in second


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[[community]\nid = 2", "is not valid TOML"),
        ('[[community]]\nname_en = "x"', "every community needs a whole-number id"),
        (
            '[[community]]\nid = 2\n[community.akubela]\nmanager_password = "x"',
            "keep the manager's password out of the file",
        ),
        (
            '[[community]]\nid = 2\n[community.akubela]\nmanager_password_env = "NOPE_X"',
            "the environment has no NOPE_X",
        ),
        ('[[community]]\nid = 1\ncolour = "red"', "unknown setting 'colour'"),
        (
            '[[community]]\nid = 1\ntime_zone = "Mars/Olympus"\n'
            '[[community]]\nid = 2\nname_en = "A"\nname_zh = "甲"\n'
            '[community.akubela]\nproject_id = "p-2"',
            "community 1: unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_import_refuses_in_plain_words_and_saves_nothing(
    capsys: pytest.CaptureFixture[str], deployment: Path, text: str, said: str
) -> None:
    run(capsys, "migrate")
    (deployment / "communities.toml").write_text(text, encoding="utf-8")
    code, _, err = run(capsys, "community", "import", "communities.toml")
    assert code == 2
    assert said in err
    assert run(capsys, "community", "list")[1].startswith("1  Community 1 / 社区 1")
    assert run(capsys, "community", "list")[1].count("\n") == 1


def test_the_readmes_communities_toml_imports_as_shown(
    capsys: pytest.CaptureFixture[str], deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    (deployment / "communities.toml").write_text(example, encoding="utf-8")
    monkeypatch.setenv("MARINA_MANAGER_PASSWORD", "from-the-environment")
    run(capsys, "migrate")
    assert run(capsys, "community", "import", "communities.toml")[:2] == (
        0,
        "Community 2 added.\n",
    )
    shown = run(capsys, "community", "show", "2")[1]
    assert "amenity a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b01: grid 60 min, 60-120 min" in shown
