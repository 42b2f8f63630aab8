"""bot.storage owns every SQL statement: no module of the product outside it (and its schema
migrations) imports SQLAlchemy or a database driver, so a query cannot grow anywhere else
unnoticed. The one other owner is the throwaway test server's maintenance (making and dropping
databases), which is no statement of the product's."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("api", "bot", "conversations", "sandbox")
OWNERS = ("bot/storage/", "bot/migrations/", "sandbox/postgres.py")
# The drivers too: a query through asyncpg or sqlite3 is a query all the same.
DATABASE_LIBRARIES = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite", "sqlite3", "psycopg")


def _imports_a_database_library(path: Path) -> list[str]:
    """The database imports of one module, as written (TYPE_CHECKING ones included)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [name for name in names if name.split(".")[0] in DATABASE_LIBRARIES]
    return found


def _product_modules() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith(OWNERS)
    )


def test_no_module_outside_storage_imports_sqlalchemy() -> None:
    offenders = {
        module: imports
        for module in _product_modules()
        if (imports := _imports_a_database_library(ROOT / module))
    }
    assert offenders == {}, "SQL belongs in a repository in bot/storage"


def test_the_check_sees_an_import_where_one_is_written(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.ext.asyncio import AsyncSession\n"
        "def f():\n"
        "    import sqlalchemy as sa\n"
    )
    assert _imports_a_database_library(module) == ["sqlalchemy.ext.asyncio", "sqlalchemy"]


def test_the_check_sees_a_driver_too(tmp_path: Path) -> None:
    module = tmp_path / "driver.py"
    module.write_text("import asyncpg\nfrom sqlite3 import connect\n")
    assert _imports_a_database_library(module) == ["asyncpg", "sqlite3"]
