"""The errors a cloud raises before and after Terraform. Neither is worth a retry."""

from __future__ import annotations


class PreflightError(Exception):
    """The target cannot work with these inputs or credentials; retrying will not help."""


class ReadbackError(Exception):
    """After apply, the cloud does not show what Terraform reported (an instance missing,
    stopped, or with other addresses); retrying the read will not help."""
