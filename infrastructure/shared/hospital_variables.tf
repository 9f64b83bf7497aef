# The variables every hospital module shares, declared once: each module links this file
# (a symlink the engine's workspace copy resolves), so validations cannot drift apart.
variable "client_uuid" {
  type        = string
  description = "UUID of the hospital or sub-hospital; every resource but the database is named from it."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.client_uuid))
    error_message = "The client_uuid must be a lowercase UUID."
  }
}

variable "client_name" {
  type        = string
  description = "Hospital or sub-hospital name, as registered."
  validation {
    condition     = length(trimspace(var.client_name)) >= 1 && length(var.client_name) <= 255
    error_message = "The client_name must hold 1 to 255 characters."
  }
}

variable "database_name" {
  type        = string
  description = "Database name, sanitised from the registered name."
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
  description = "Region of every regional resource (on localcloud, a label)."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must look like me-central2."
  }
}

variable "password_length" {
  type        = number
  description = "Length of the generated database password (the document used 8)."
  default     = 16
  validation {
    condition     = var.password_length >= 8
    error_message = "The password_length must be at least 8."
  }
}
