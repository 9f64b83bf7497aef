variable "client_uuid" {
  type        = string
  description = "UUID of the hospital; every resource but the database is named from it."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.client_uuid))
    error_message = "The client_uuid must be a lowercase UUID."
  }
}

variable "client_name" {
  type        = string
  description = "Hospital name, as registered."
  validation {
    condition     = length(trimspace(var.client_name)) >= 1 && length(var.client_name) <= 255
    error_message = "The client_name must hold 1 to 255 characters."
  }
}

variable "database_name" {
  type        = string
  description = "Database name, sanitised from the hospital name."
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
  description = "GCP region of every regional resource."
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

variable "project_id" {
  type        = string
  description = "GCP project that holds the hospital's resources."
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the Cloud SQL instance (and keep non-empty buckets) on destroy."
  default     = true
}

variable "sql_tier" {
  type        = string
  description = "Cloud SQL machine type; use a production-grade tier in production."
  default     = "db-f1-micro"
}
