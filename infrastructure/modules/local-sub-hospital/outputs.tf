output "sql_instance_id" {
  description = "Id of the parent's SQL instance."
  value       = local.parent.sql_instance_id
}

output "sql_instance_name" {
  description = "Name of the parent's SQL instance."
  value       = local.parent.sql_instance_name
}

output "sql_private_ip" {
  description = "Private address of the parent's SQL instance."
  value       = local.parent.sql_private_ip
}

output "database_name" {
  description = "The sub-hospital's own database."
  value       = localcloud_sql_database.main.name
}

output "database_user" {
  description = "The sub-hospital's own database user."
  value       = localcloud_sql_user.app.name
}

output "private_bucket" {
  description = "The parent's private bucket."
  value       = local.parent.private_bucket
}

output "public_bucket" {
  description = "The parent's public bucket."
  value       = local.parent.public_bucket
}

output "network_name" {
  description = "The parent's network."
  value       = local.parent.network_name
}

output "connection_secret" {
  description = "Reference of the secret that holds this sub-hospital's connection string."
  value       = localcloud_secret.connection.reference
}
