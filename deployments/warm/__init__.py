"""Warm starts: flow runs forked from a process that has already imported Prefect and the
flows, behind the process worker's ``command`` (``launch.py``, ``server.py``). Nothing is
imported here: the launcher must start with the standard library alone."""
