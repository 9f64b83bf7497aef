"""The run noun: one flow run acting on one client. ``service`` holds its rules (read,
cancel, approve, reject; what the dispatcher records), ``store`` its registry reads and the
accepting of a new run, ``gate`` what an accepted run waits for before Prefect takes it."""
