terraform {
  required_version = ">= 1.0.3"
  required_providers {
    oci = {
      source  = "oracle/oci"
      version = ">= 5.0, < 7.0"
    }
  }
}

# Credentials arrive as TF_VAR_* in the worker's environment, mapped from the document's
# OCI_TENANCY_OCID, OCI_USER_OCID, OCI_FINGERPRINT and OCI_PRIVATE_KEY_PATH.
provider "oci" {
  region           = var.region
  tenancy_ocid     = var.tenancy_ocid
  user_ocid        = var.user_ocid
  fingerprint      = var.fingerprint
  private_key_path = var.private_key_path
}
