variable "run_id" {
  type        = string
  description = "Id of the run applying this stack, tagged on every resource as request_id."
}

variable "region" {
  type        = string
  description = "OCI region, e.g. eu-frankfurt-1."
}

variable "shape" {
  type        = string
  description = "A bare-metal shape (BM.*), e.g. BM.Standard3.64."
  validation {
    condition     = can(regex("^BM\\.", var.shape))
    error_message = "The shape must be a bare-metal shape (BM.*)."
  }
}

variable "compartment_id" {
  type        = string
  description = "Compartment OCID the instances are created in."
}

variable "availability_domain" {
  type        = string
  description = "Availability domain, e.g. Uocm:EU-FRANKFURT-1-AD-1."
}

variable "subnet_id" {
  type        = string
  description = "Subnet OCID of the primary VNIC."
}

variable "image_id" {
  type        = string
  description = "Image OCID the instances boot."
}

variable "tenancy_ocid" {
  type        = string
  description = "Tenancy OCID (from OCI_TENANCY_OCID via TF_VAR_tenancy_ocid)."
  default     = null
}

variable "user_ocid" {
  type        = string
  description = "User OCID (from OCI_USER_OCID via TF_VAR_user_ocid)."
  default     = null
}

variable "fingerprint" {
  type        = string
  description = "API key fingerprint (from OCI_FINGERPRINT via TF_VAR_fingerprint)."
  default     = null
}

variable "private_key_path" {
  type        = string
  description = "API private key file (from OCI_PRIVATE_KEY_PATH via TF_VAR_private_key_path)."
  default     = null
}
