"""The client noun: a tenant's stack. ``service`` holds its rules (accept, change, retry,
operate, read), ``store`` its registry reads, ``filters`` how the fleet is narrowed."""
