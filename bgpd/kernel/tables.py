"""Kernel routing table names and numbers (iproute2's ``rt_tables``); the standard library only.

The config validates ``[kernel] table`` with it, so it imports nothing else.
"""

from __future__ import annotations

__all__ = ["table_number"]

_NAMED_TABLES = {"main": 254, "local": 255, "default": 253}


#: Where iproute2 keeps table names (the first is the operator's; newer
#: iproute2 ships its defaults in the second).
RT_TABLES = ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables")


def table_number(table: int | str, rt_tables: tuple[str, ...] = RT_TABLES) -> int:
    """A table number from a number or a name (``main``, or one in the ``rt_tables`` files)."""
    if isinstance(table, int):
        return table
    if table.isdigit():
        return int(table)
    if table in _NAMED_TABLES:
        return _NAMED_TABLES[table]
    for path in rt_tables:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split("#", 1)[0].split()
                    if len(parts) == 2 and parts[1] == table and parts[0].isdigit():
                        return int(parts[0])
        except OSError:
            continue
    raise ValueError(f"unknown routing table name {table!r}")
