"""localcloud: a Terraform provider written in Python, the embedded default cloud.

Objects live as JSON files under ``$LOCALCLOUD_DATA_DIR`` so that editing or deleting
one out of band shows up as drift in ``terraform plan``.
"""

PROVIDER_ADDRESS = "registry.terraform.io/tenantform/localcloud"
"""Where Terraform finds the provider: the modules' ``required_providers`` source
(``tenantform/localcloud``, registry.terraform.io being the default host) and the
engine's filesystem mirror both name it from here."""

PROVIDER_VERSION = "0.1.0"
"""The version the modules require and the engine's mirror serves."""
