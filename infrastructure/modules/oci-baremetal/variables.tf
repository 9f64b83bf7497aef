variable "client_id" {
  type        = string
  description = "UUID of the client (tenant) that owns this stack."
}

variable "request_id" {
  type        = string
  description = "Id of the provisioning request, tagged on every resource."
}

variable "region" {
  type        = string
  description = "OCI region, e.g. eu-frankfurt-1."
}

variable "instance_name_prefix" {
  type        = string
  description = "Instances are named {prefix}-{n}."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.instance_name_prefix))
    error_message = "The instance_name_prefix must start with a letter and hold only a-z, 0-9 and '-'."
  }
}

variable "instance_count" {
  type        = number
  description = "How many instances to run."
  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 20
    error_message = "The instance_count must be between 1 and 20."
  }
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
