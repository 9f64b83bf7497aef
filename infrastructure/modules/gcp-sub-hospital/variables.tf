variable "client_uuid" {
  type        = string
  description = "UUID of the sub-hospital."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.client_uuid))
    error_message = "The client_uuid must be a lowercase UUID."
  }
}

variable "client_name" {
  type        = string
  description = "Sub-hospital name, as registered."
  validation {
    condition     = length(trimspace(var.client_name)) >= 1 && length(var.client_name) <= 255
    error_message = "The client_name must hold 1 to 255 characters."
  }
}

variable "database_name" {
  type        = string
  description = "Database name, sanitised from the sub-hospital name."
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,63}$", var.database_name))
    error_message = "The database_name must start with a letter and hold only a-z, 0-9 and '_'."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment: dev, test, staging or prod."
  validation {
    condition     = contains(["dev", "test", "staging", "prod"], var.environment)
    error_message = "The environment must be dev, test, staging or prod."
  }
}

variable "region" {
  type        = string
  description = "Region label of the parent hospital."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must look like me-central2."
  }
}

variable "password_length" {
  type        = number
  description = "Length of the generated database password."
  default     = 16
  validation {
    condition     = var.password_length >= 8
    error_message = "The password_length must be at least 8."
  }
}

variable "parent_backend" {
  type        = string
  description = "Backend type of the parent hospital's state (gcs), from its target's backend policy."
  validation {
    condition     = contains(["gcs"], var.parent_backend)
    error_message = "The parent_backend must be one of: gcs."
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

variable "project_id" {
  type        = string
  description = "GCP project of the parent hospital."
}
