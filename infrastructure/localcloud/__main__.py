"""Entry point Terraform starts through the mirror shim (``python -m infrastructure.localcloud``)."""

from tf.runner import run_provider

from infrastructure.localcloud.provider import LocalCloudProvider

if __name__ == "__main__":
    run_provider(LocalCloudProvider())
