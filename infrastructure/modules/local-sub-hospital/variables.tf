variable "parent_backend" {
  type        = string
  description = "Backend type of the parent hospital's state (local or pg), from its target's backend policy."
  validation {
    condition     = contains(["local", "pg"], var.parent_backend)
    error_message = "The parent_backend must be one of: local, pg."
  }
}

variable "parent_backend_config" {
  type        = map(string)
  description = "Backend settings that locate the parent hospital's state (no secrets)."
}

variable "parent_backend_secrets" {
  type        = map(string)
  description = "Backend settings of the parent's state that are secrets; set as TF_VAR_parent_backend_secrets, never in a tfvars file."
  sensitive   = true
  default     = {}
}
