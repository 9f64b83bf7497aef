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
