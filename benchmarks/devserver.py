"""The dev server the benchmarks measure against: a SQLite file with the WAL journal."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows import search_attributes


async def start_dev_server(database: Path) -> WorkflowEnvironment:
    temporal = Path(sys.executable).parent / "temporal"
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal if temporal.exists() else shutil.which("temporal")),
        dev_server_database_filename=str(database),
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
        search_attributes=search_attributes.ALL,
        data_converter=pydantic_data_converter,
    )
