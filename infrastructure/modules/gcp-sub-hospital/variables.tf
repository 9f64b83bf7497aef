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
  description = "Deployment environment (dev, staging, prod)."
}

variable "region" {
  type        = string
  description = "Region label of the parent hospital."
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
  description = "Backend type of the parent hospital's state (gcs)."
}

variable "parent_backend_config" {
  type        = map(string)
  description = "Backend settings that locate the parent hospital's state."
  sensitive   = true
}

variable "project_id" {
  type        = string
  description = "GCP project of the parent hospital."
}
