"""The sweep noun: a reconciliation asked through the API, and the drift it records on
clients. Its rules are in ``service``."""
