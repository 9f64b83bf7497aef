"""``oci-baremetal``: the Airflow document's OCI request (bare-metal shapes)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.clouds.instances import TaggedInstancesInputs

OCI_ENV_TO_TF_VAR = {
    "OCI_TENANCY_OCID": "TF_VAR_tenancy_ocid",
    "OCI_USER_OCID": "TF_VAR_user_ocid",
    "OCI_FINGERPRINT": "TF_VAR_fingerprint",
    "OCI_PRIVATE_KEY_PATH": "TF_VAR_private_key_path",
}


class OciConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str = Field(pattern=r"^[a-z]{2}-[a-z]+-[0-9]$", examples=["eu-frankfurt-1"])
    shape: str = Field(pattern=r"^BM\.[A-Za-z0-9.]+$", examples=["BM.Standard3.64"])
    compartment_id: str = Field(
        pattern=r"^ocid1\.(compartment|tenancy)\.", examples=["ocid1.compartment.oc1..aaaa"]
    )
    availability_domain: str = Field(min_length=1, examples=["Uocm:EU-FRANKFURT-1-AD-1"])
    subnet_id: str = Field(pattern=r"^ocid1\.subnet\.", examples=["ocid1.subnet.oc1..aaaa"])
    image_id: str = Field(pattern=r"^ocid1\.image\.", examples=["ocid1.image.oc1..aaaa"])


class OciInputs(TaggedInstancesInputs):
    cloud_provider: Literal["oci"]
    provider_config: OciConfig


def oci_terraform_env() -> dict[str, str]:
    """The document's OCI_* variables, handed to the provider as TF_VAR_* (never tfvars)."""
    return {tf_var: os.environ[name] for name, tf_var in OCI_ENV_TO_TF_VAR.items() if os.environ.get(name)}
