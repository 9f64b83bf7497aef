output "sql_instance_id" {
  description = "Name of the Cloud SQL instance (sub-hospitals create their databases on it)."
  value       = google_sql_database_instance.mysql.name
}

output "sql_instance_name" {
  description = "Connection name of the Cloud SQL instance."
  value       = google_sql_database_instance.mysql.connection_name
}

output "sql_private_ip" {
  description = "Private address of the Cloud SQL instance."
  value       = google_sql_database_instance.mysql.private_ip_address
}

output "database_name" {
  description = "The hospital's database."
  value       = google_sql_database.main.name
}

output "database_user" {
  description = "The database user."
  value       = google_sql_user.app.name
}

output "private_bucket" {
  description = "Private bucket."
  value       = google_storage_bucket.private.name
}

output "public_bucket" {
  description = "Public bucket."
  value       = google_storage_bucket.public.name
}

output "network_name" {
  description = "The hospital's VPC."
  value       = google_compute_network.vpc.name
}

output "connection_secret" {
  description = "Secret Manager secret that holds the MySQL connection string."
  value       = google_secret_manager_secret.connection.id
}
