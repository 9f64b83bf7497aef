"""Running Terraform for one client: binary, workspace, events, errors, redaction."""
